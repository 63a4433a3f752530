"""``oreal compare``: a sweep's runs grouped by variant, as a table and learning curves."""

from oreal.compare.runs import Run, load_local, load_wandb
from oreal.compare.table import Summary, config_differences, summarize

__all__ = ["Run", "Summary", "config_differences", "load_local", "load_wandb", "summarize"]
