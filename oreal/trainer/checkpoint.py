"""Atomic checkpoints in the run folder, written by every trainer rank together, keeping the last N.

A checkpoint is a directory ``checkpoints/step_000010/`` holding what the policy engine
writes (``engine.pt`` for the torch engine; ``engine/``, one shard file per rank, for the
Megatron engine), ``trainer.json`` (step, sampler position, W&B run id) and one
``rng_<rank>.pt`` per rank. All ranks write into one temporary folder (named after the job
incarnation, so every rank agrees on it); after a barrier rank 0 renames it into place, then
``checkpoints/latest`` (a one-line file, itself replaced atomically) points at it: a crash or
SIGKILL of any rank at any moment leaves the previous checkpoint as the latest complete one.
Temporary folders of earlier incarnations are removed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.distributed as dist

from oreal.engines.distributed import DistEnv
from oreal.errors import OrealError
from oreal.trainer.atomic import fsync_dir, write_atomic
from oreal.trainer.status import incarnation

LATEST = "latest"


class CheckpointError(OrealError):
    """No checkpoint of the run folder can be loaded."""


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        fsync_dir(path)


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


def _barrier(env: DistEnv) -> None:
    if env.is_distributed:
        dist.barrier()


class CheckpointManager:
    def __init__(self, run_dir: Path, keep_last: int = 2, env: DistEnv = DistEnv()):
        self.root = Path(run_dir) / "checkpoints"
        self.keep_last = keep_last
        self.env = env
        inc = incarnation()
        self._tmp_suffix = f".tmp-{inc['job_id']}.{inc['restart']}"

    def save(self, step: int, write_engine: Callable[[Path], None], trainer_state: dict) -> Path:
        """Collective: every rank calls it; ``write_engine(folder)`` writes the engine's part."""
        final = self.root / f"step_{step:06d}"
        tmp = self.root / f".step_{step:06d}{self._tmp_suffix}"
        if self.env.is_main:
            self.root.mkdir(parents=True, exist_ok=True)
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
        _barrier(self.env)
        write_engine(tmp)
        torch.save(rng_state(), tmp / f"rng_{self.env.rank}.pt")
        _barrier(self.env)
        if self.env.is_main:
            (tmp / "trainer.json").write_text(json.dumps({**trainer_state, "step": step}, indent=2))
            _fsync_tree(tmp)
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            fsync_dir(self.root)
            write_atomic(self.root / LATEST, final.name + "\n")
            self._prune()
        _barrier(self.env)
        return final

    def latest(self) -> Optional[Path]:
        pointer = self.root / LATEST
        if not pointer.exists():
            return None
        path = self.root / pointer.read_text().strip()
        return path if (path / "trainer.json").exists() else None

    def candidates(self) -> list[Path]:
        """Complete checkpoints, the one ``latest`` names first, then the others, newest first."""
        steps = sorted((p for p in self.root.glob("step_*") if (p / "trainer.json").exists()), reverse=True)
        latest = self.latest()
        return ([latest] if latest else []) + [p for p in steps if p != latest]

    def load_latest(self, read_engine: Callable[[Path], None]) -> Optional[tuple[Path, dict]]:
        """Collective: load the newest checkpoint every rank can read; a damaged one (a kill
        that left a truncated file, a full disk) is reported and the one before it used.
        ``(path, trainer state)``, or None when the run has no checkpoint."""
        from oreal.errors import one_line
        from oreal.trainer.ranks import any_rank

        tried = []
        for path in self.candidates():
            error = None
            try:
                state = self.load(path, read_engine)
            except Exception as exc:  # noqa: BLE001 - any unreadable piece makes the checkpoint unusable
                error = exc
            if not any_rank(error is not None, self.env):
                return path, state
            reason = one_line(error) if error else "unreadable on another rank"
            # the summary below names every checkpoint: each reason's first sentence only (torch's
            # message for a truncated file goes on with 200 characters of advice)
            tried.append(f"{path.name}: {reason.split('. ', 1)[0]}")
            if self.env.is_main:
                print(f"oreal: checkpoint {path} cannot be loaded ({reason}); trying the one before", file=sys.stderr, flush=True)
        if tried:
            raise CheckpointError(f"no checkpoint in {self.root} can be loaded ({'; '.join(tried)}); move the folder away "
                                  "to start the run afresh")
        return None

    def load(self, path: Path, read_engine: Callable[[Path], None]) -> dict:
        """Collective: the trainer state; ``read_engine(folder)`` restores the engine. Also
        restores this rank's RNG state (rank 0's when the checkpoint had fewer ranks)."""
        trainer_state = json.loads((path / "trainer.json").read_text())
        read_engine(path)
        rng = path / f"rng_{self.env.rank}.pt"
        set_rng_state(torch.load(rng if rng.exists() else path / "rng_0.pt", weights_only=False))
        return trainer_state

    def _prune(self) -> None:
        steps = sorted(p for p in self.root.glob("step_*") if p.is_dir())
        for old in steps[: max(0, len(steps) - self.keep_last)]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.root.glob(".step_*.tmp-*"):  # left by a killed earlier incarnation
            if not stale.name.endswith(self._tmp_suffix):
                shutil.rmtree(stale, ignore_errors=True)
