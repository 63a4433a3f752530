"""Run one training job from a typed config (what ``python -m oreal.train`` calls)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from oreal.config.schema import Config
from oreal.engines.distributed import init_distributed
from oreal.trainer.loop import Trainer
from oreal.trainer.setup import RunComponents
from oreal.trainer.signals import StopSignal


def run(cfg: Config, run_dir: Optional[Path] = None) -> str:
    """Train (resuming from the run folder's latest checkpoint); "finished" or "stopped"."""
    import torch

    torch.manual_seed(cfg.seed)
    parts = RunComponents(cfg, Path(run_dir or cfg.run_dir), init_distributed())
    stop = StopSignal().install()  # after the engines exist: ours must be the last handler set
    try:
        return Trainer(cfg, parts, stop).fit()
    finally:
        parts.close()
