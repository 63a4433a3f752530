"""Train one run (or this rank's part of it) from a typed config; what ``oreal.launch.task``
and the tests call."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from oreal.config.schema import Config
from oreal.engines.distributed import DistEnv, init_distributed
from oreal.engines.protocols import RolloutEngine
from oreal.trainer.identity import check_identity, record_identity
from oreal.trainer.loop import Trainer
from oreal.trainer.ranks import check_shared_folder
from oreal.trainer.setup import RunComponents
from oreal.trainer.signals import StopSignal
from oreal.trainer.status import recorded_failure, write_status


def run(cfg: Config, run_dir: Optional[Path] = None, *, dist_env: Optional[DistEnv] = None,
        rollout_builder: Optional[Callable[[], RolloutEngine]] = None,
        stop_requested: Optional[Callable[[], Optional[str]]] = None, overrides: Optional[Sequence[str]] = None) -> str:
    """Train, resuming from the run folder's latest checkpoint; "finished" or "stopped".

    ``rollout_builder`` (called on rank 0) supplies the rollout engine when it is not built
    here (a fleet on other nodes); ``stop_requested`` reports a stop asked for elsewhere
    (a signal that reached another task of the job). The outcome is recorded in
    ``status.json``: by rank 0, or by whichever rank fails. ``overrides`` (the command line)
    are recorded beside the run's identity."""
    import torch

    run_dir = Path(run_dir or cfg.run_dir)
    dist_env = dist_env or init_distributed(cfg.cluster.collective_timeout_min)
    task = f"trainer rank {dist_env.rank}" if dist_env.is_distributed else "main"
    trainer: Optional[Trainer] = None
    # before anything loads or is written: the folder holds another run, whose status stays its own
    check_identity(cfg, run_dir)
    if dist_env.is_main:
        record_identity(cfg, run_dir, overrides)
    with recorded_failure(run_dir, task, step=lambda: trainer.step if trainer else None):
        check_shared_folder(run_dir, dist_env)
        _preflight(cfg, run_dir, dist_env)
        torch.manual_seed(cfg.seed)
        if dist_env.is_main:
            write_status(run_dir, "running", task=task)
        parts = RunComponents(cfg, run_dir, dist_env, rollout_builder=rollout_builder)
        stop = StopSignal(stop_requested).install()  # after the engines exist: ours must be the last handler set
        try:
            trainer = Trainer(cfg, parts, stop)
            outcome = trainer.fit()
            if outcome == "finished" and (exported := parts.export_final_model()) and dist_env.is_main:
                print(f"oreal: the trained policy is in {exported} (a Hugging Face model folder)", file=sys.stderr)
        except BaseException:
            parts.close(exit_code=1)
            raise
        parts.close()
        if dist_env.is_main:
            write_status(run_dir, outcome, step=trainer.step, task=task,
                         reason=f"signal: {stop.reason}" if outcome == "stopped" else None)
        return outcome


def _preflight(cfg: Config, run_dir: Path, dist_env: DistEnv) -> None:
    """Rank 0 checks what the run needs (oreal/trainer/preflight.py); every rank gets its verdict."""
    from oreal.errors import OrealError
    from oreal.trainer.preflight import PreflightError, preflight
    from oreal.trainer.ranks import broadcast_from_main

    problem = None
    if dist_env.is_main:
        try:
            preflight(cfg, run_dir)
        except OrealError as exc:  # a ModelPathError too: every rank must hear of it, or the others wait here
            problem = str(exc)
    problem = broadcast_from_main(problem, dist_env)
    if problem:
        raise PreflightError(problem)
