"""Train one run (or this rank's part of it) from a typed config; what ``oreal.launch.task``
and the tests call."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from oreal.config.schema import Config
from oreal.engines.distributed import DistEnv, init_distributed
from oreal.engines.protocols import RolloutEngine
from oreal.trainer.loop import Trainer
from oreal.trainer.setup import RunComponents
from oreal.trainer.signals import StopSignal
from oreal.trainer.status import recorded_failure, write_status


def run(cfg: Config, run_dir: Optional[Path] = None, *, dist_env: Optional[DistEnv] = None,
        rollout_builder: Optional[Callable[[], RolloutEngine]] = None,
        stop_requested: Optional[Callable[[], Optional[str]]] = None) -> str:
    """Train, resuming from the run folder's latest checkpoint; "finished" or "stopped".

    ``rollout_builder`` (called on rank 0) supplies the rollout engine when it is not built
    here (a fleet on other nodes); ``stop_requested`` reports a stop asked for elsewhere
    (a signal that reached another task of the job). The outcome is recorded in
    ``status.json``: by rank 0, or by whichever rank fails."""
    import torch

    run_dir = Path(run_dir or cfg.run_dir)
    dist_env = dist_env or init_distributed(cfg.cluster.collective_timeout_min)
    task = f"trainer rank {dist_env.rank}" if dist_env.is_distributed else "main"
    trainer: Optional[Trainer] = None
    with recorded_failure(run_dir, task, step=lambda: trainer.step if trainer else None):
        torch.manual_seed(cfg.seed)
        if dist_env.is_main:
            write_status(run_dir, "running", task=task)
        parts = RunComponents(cfg, run_dir, dist_env, rollout_builder=rollout_builder)
        stop = StopSignal(stop_requested).install()  # after the engines exist: ours must be the last handler set
        try:
            trainer = Trainer(cfg, parts, stop)
            outcome = trainer.fit()
        except BaseException:
            parts.close(exit_code=1)
            raise
        parts.close()
        if dist_env.is_main:
            write_status(run_dir, outcome, step=trainer.step, task=task,
                         reason=f"signal: {stop.reason}" if outcome == "stopped" else None)
        return outcome
