"""Atomic checkpoints in the run folder, keeping the last N.

A checkpoint is a directory ``checkpoints/step_000010/`` holding ``engine.pt`` (policy,
token RM, both optimisers and schedulers) and ``trainer.json`` (step, sampler position, W&B
run id) plus ``rng.pt``. It is written under a temporary name and renamed into place, then
``checkpoints/latest`` (a one-line file, itself replaced atomically) points at it: a crash
or SIGKILL at any moment leaves the previous checkpoint as the latest complete one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Optional

import torch

LATEST = "latest"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointManager:
    def __init__(self, run_dir: Path, keep_last: int = 2):
        self.root = Path(run_dir) / "checkpoints"
        self.keep_last = keep_last

    def save(self, step: int, engine_state: dict, trainer_state: dict) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"step_{step:06d}"
        tmp = self.root / f".step_{step:06d}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        torch.save(engine_state, tmp / "engine.pt")
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / "trainer.json").write_text(json.dumps({**trainer_state, "step": step}, indent=2))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        _fsync_dir(self.root)
        _write_atomic(self.root / LATEST, final.name + "\n")
        self._prune()
        return final

    def latest(self) -> Optional[Path]:
        pointer = self.root / LATEST
        if not pointer.exists():
            return None
        path = self.root / pointer.read_text().strip()
        return path if (path / "trainer.json").exists() else None

    def load(self, path: Path) -> tuple[dict, dict]:
        """``(engine_state, trainer_state)``; also restores the RNG states."""
        trainer_state = json.loads((path / "trainer.json").read_text())
        engine_state = torch.load(path / "engine.pt", weights_only=False)
        set_rng_state(torch.load(path / "rng.pt", weights_only=False))
        return engine_state, trainer_state

    def _prune(self) -> None:
        steps = sorted(p for p in self.root.glob("step_*") if p.is_dir())
        for old in steps[: max(0, len(steps) - self.keep_last)]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.root.glob(".step_*.tmp-*"):  # left by a killed writer
            if not stale.name.endswith(f"-{os.getpid()}"):
                shutil.rmtree(stale, ignore_errors=True)
