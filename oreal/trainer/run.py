"""Run one training job from a typed config (what ``python -m oreal.train`` calls)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Optional

from oreal.config.schema import Config
from oreal.engines.distributed import init_distributed
from oreal.launch.roles import role_of_this_task
from oreal.trainer.loop import Trainer
from oreal.trainer.setup import RunComponents, starting_model
from oreal.trainer.signals import StopSignal


def run(cfg: Config, run_dir: Optional[Path] = None) -> str:
    """Train (resuming from the run folder's latest checkpoint); "finished" or "stopped".
    In a multi-node allocation, tasks on rollout nodes serve rollouts to the trainer instead."""
    import torch

    run_dir = Path(run_dir or cfg.run_dir)
    role = role_of_this_task(cfg)
    if role.name == "rollout":
        return serve_rollouts(cfg, run_dir)
    torch.manual_seed(cfg.seed)
    parts = RunComponents(cfg, run_dir, init_distributed(), remote_rollout=role.remote_rollout)
    stop = StopSignal().install()  # after the engines exist: ours must be the last handler set
    try:
        return Trainer(cfg, parts, stop).fit()
    finally:
        parts.close()


def serve_rollouts(cfg: Config, run_dir: Path) -> str:
    """A rollout node: the configured engine on the starting weights, served to the trainer."""
    from oreal.engines.factory import build_rollout_engine
    from oreal.launch.remote_rollout import serve

    # the time-limit signal is for the trainer, which finishes its step and then closes us
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    engine = build_rollout_engine(cfg, starting_model(cfg, progress=False))
    try:
        serve(engine, run_dir)
    finally:
        engine.close()
    return "served rollouts"
