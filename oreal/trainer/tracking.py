"""Metrics go to ``metrics.jsonl`` in the run folder and, when enabled, to W&B.

The JSONL file is the source of truth (nothing depends on W&B being reachable); W&B runs
offline by default and keeps one run id per run folder, so a resumed job continues the same
W&B run. Secrets never reach either: the config is redacted before it is logged, and keys are
only ever read from the environment.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

from oreal.config.schema import Config
from oreal.errors import OrealError
from oreal.trainer.atomic import write_atomic

_SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password)$", re.IGNORECASE)


def redact(value: Any, key: str = "") -> Any:
    """Config as plain data with any secret-looking value replaced (``*_env`` names stay:
    they name an environment variable, not its value)."""
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, key) for v in value]
    if _SECRET_KEY.search(key) and value:
        return "<redacted>"
    return value


def git_sha() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class MetricsLog:
    """Append-only JSONL of ``{"step": n, ...metrics}`` records."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def truncate_after(self, step: int) -> None:
        """Drop records of steps after ``step`` (they are redone after a resume), and a partial
        last line (what a kill in the middle of a write leaves), with a warning."""
        if not self.path.exists():
            return
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        rows = self.read()
        if len(rows) < len(lines):
            print(f"oreal: {self.path}: dropped a partial last line (the previous run was killed while writing it)",
                  file=sys.stderr, flush=True)
        keep = [json.dumps(r) for r in rows if r["step"] <= step]
        write_atomic(self.path, "".join(line + "\n" for line in keep))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict]:
        """The records; a partial last line (a run killed mid-write) is skipped, any other bad
        line is an error naming the file and the line."""
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        rows = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if n == len(lines):
                    break
                raise ValueError(f"{self.path}:{n}: not a JSON row ({exc.msg})") from None
        return rows


def wandb_mode(cfg: Config) -> str:
    """``WANDB_MODE`` from the environment when set (W&B's own convention), else
    ``logging.wandb_mode``."""
    mode = os.environ.get("WANDB_MODE") or cfg.logging.wandb_mode
    if mode not in ("online", "offline", "disabled"):
        raise OrealError(f"WANDB_MODE={mode!r} in the environment: expected online, offline or disabled")
    return mode


class Tracker:
    """JSONL always, W&B when ``logging.wandb_mode`` is not ``disabled``; a disabled tracker
    (trainer ranks other than 0) writes nothing at all."""

    def __init__(self, cfg: Config, run_dir: Path, run_id: str, extra_config: Optional[dict] = None, enabled: bool = True):
        self.log = MetricsLog(Path(run_dir) / "metrics.jsonl") if enabled else None
        self.run = None
        self.mode = wandb_mode(cfg)
        if not enabled or self.mode == "disabled":
            return
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        lg = cfg.logging
        config = redact({**asdict(cfg), **(extra_config or {})})
        # Each process keeps its W&B service to itself. wandb publishes the service address in
        # WANDB_SERVICE, which child processes inherit; a child run attached to its parent's
        # service and then SIGKILLed leaves its run id held there ("run ID is in use"), so the
        # requeued run could never resume it. Ignore an inherited address and hide our own.
        os.environ.pop("WANDB_SERVICE", None)
        self.run = wandb.init(
            project=lg.project, entity=lg.entity, group=lg.group or cfg.name, job_type=lg.job_type or cfg.algo.name,
            name=lg.run_name or f"{cfg.name}-{cfg.algo.name}-seed{cfg.seed}", tags=list(lg.tags), config=config,
            id=run_id, resume="allow", dir=str(run_dir), mode=self.mode, settings=wandb.Settings(console="off", silent=True),
        )
        os.environ.pop("WANDB_SERVICE", None)
        self._samples_tables = 0

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if self.log is None:
            return
        self.log.write(step, metrics)
        if self.run is not None:
            self.run.log(metrics, step=step)

    def table(self, key: str, rows: list[dict], step: int) -> None:
        if self.run is None or not rows:
            return
        import wandb

        columns = list(rows[0])
        self.run.log({key: wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])}, step=step)

    def finish(self, exit_code: int = 0) -> None:
        """Close the W&B run; a non-zero ``exit_code`` marks it failed. An offline run says
        how to upload it."""
        if self.run is not None:
            folder = getattr(self.run, "dir", None)
            self.run.finish(exit_code=exit_code)
            self.run = None
            if self.mode == "offline" and folder:
                print(f"oreal: W&B run saved offline; upload it with `wandb sync {Path(folder).parent}`", file=sys.stderr)
