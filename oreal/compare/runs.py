"""A sweep's runs, from its run folders (offline) or from the W&B API (online).

A run folder is any folder holding ``metrics.jsonl`` (the trainer writes it beside
``config.yaml`` and ``overrides.yaml``). A run's *variant* is its command-line
overrides without the seed and without those every run of the sweep shares (``algo=grpo``),
so the seeds of one variant group together; a sweep of one variant has the variant ``default``. From W&B, the variant is the run's job type (the
trainer sets it to the variant) and the history is the logged rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from oreal.trainer.identity import recorded_overrides
from oreal.trainer.status import STATUS_FILE, read_status
from oreal.trainer.tracking import MetricsLog

# overrides that say where or how a run ran, not what it is
_NOT_VARIANT = ("seed", "run_dir", "cache_dir", "model.path", "logging.", "hydra.", "cluster", "experiment")


@dataclass
class Run:
    name: str
    variant: str
    seed: int
    config: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)  # one row per logged step, "step" included
    overrides: list[str] = field(default_factory=list)
    state: Optional[str] = None  # running / finished / stopped / failed (status.json, or the W&B run state)
    reason: Optional[str] = None  # why it failed or stopped

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    def series(self, key: str, x: str = "step") -> tuple[list[float], list[float]]:
        """(x, y) for the rows that logged ``key`` (evaluations only happen every N steps)."""
        rows = [r for r in self.history if key in r and x in r]
        return [float(r[x]) for r in rows], [float(r[key]) for r in rows]


def variant_of(overrides: list[str], shared: frozenset = frozenset()) -> str:
    kept = [o for o in overrides if o not in shared and not o.lstrip("+~").startswith(_NOT_VARIANT)]
    return ",".join(sorted(kept)) or "default"


def load_run(folder: Path) -> Run:
    folder = Path(folder)
    cfg_path = folder / "config.yaml"
    config = yaml.safe_load(cfg_path.read_text()) if cfg_path.exists() else {}
    overrides = recorded_overrides(folder) or []
    seed = int(config.get("seed", 0))
    overrides = list(overrides or [])
    status = read_status(folder)
    return Run(folder.name, variant_of(overrides), seed, config, MetricsLog(folder / "metrics.jsonl").read(), overrides,
               status.state if status else None, status.reason if status else None)


def run_folders(sweep: Path) -> list[Path]:
    """Every run folder under ``sweep`` (itself included), in name order: a folder holding
    ``metrics.jsonl`` or ``status.json`` (a run that failed before its first step has only
    the latter)."""
    sweep = Path(sweep)
    if not sweep.exists():
        raise FileNotFoundError(f"no sweep folder {sweep}")
    folders = sorted({p.parent for name in ("metrics.jsonl", STATUS_FILE) for p in sweep.rglob(name)})
    if not folders:
        raise FileNotFoundError(f"no run under {sweep}: a run folder holds metrics.jsonl or {STATUS_FILE}")
    return folders


def load_local(sweep: Path) -> list[Run]:
    """Every run under ``sweep``, in name order."""
    folders = run_folders(sweep)
    runs = [load_run(f) for f in folders]
    shared = frozenset.intersection(*(frozenset(r.overrides) for r in runs)) if len(runs) > 1 else frozenset()
    for r in runs:
        r.variant = variant_of(r.overrides, shared)
    return runs


def load_wandb(project: str, group: Optional[str] = None, api: Any = None) -> list[Run]:
    """Runs of ``entity/project`` (one ``group``: a sweep) from the W&B API (needs the network)."""
    if api is None:
        import wandb

        api = wandb.Api()
    filters = {"group": group} if group else {}
    runs = []
    for r in api.runs(project, filters=filters):
        config = dict(r.config)
        history = [dict(row, step=row.get("_step", row.get("step"))) for row in r.scan_history()]
        state = "failed" if r.state in ("failed", "crashed") else r.state
        runs.append(Run(r.name, r.job_type or "default", int(config.get("seed", 0)), config, history, state=state))
    if not runs:
        raise LookupError(f"no W&B run in {project}" + (f" with group {group!r}" if group else ""))
    return runs
