"""The RL trainer: the loop (phases), its components, checkpoints, tracking and warm start."""

from oreal.trainer.loop import Trainer
from oreal.trainer.run import run

__all__ = ["Trainer", "run"]
