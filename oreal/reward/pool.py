"""A pool of grading processes that survives its workers being killed.

Each check runs in a worker process under a wall-clock timeout (default 5 s) and a memory
cap. When a check overruns, the parent kills that worker (SIGKILL), starts a fresh one and
records ``timeout``; a worker that dies (memory, segfault) is replaced and its answer counted
as ``parse_error``. No signals are used in the caller, so :meth:`GradingPool.check` is safe
from any thread; :meth:`GradingPool.check_batch` keeps every worker busy.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from oreal.reward.checker import CORRECT_REASONS, REASONS
from multiprocessing.connection import Connection

from oreal.reward.extract import DEFAULT_THINKING_MARKERS

WORKER_START_TIMEOUT_S = 120.0
# So that `python -m oreal.reward.worker` imports this very copy of oreal.
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class Grade:
    """The verdict on one response. ``reason`` is one of :data:`oreal.reward.checker.REASONS`."""

    correct: bool
    reason: str
    extracted: Optional[str] = None
    latency_s: float = 0.0
    detail: str = ""

    @staticmethod
    def of(reason: str, extracted: Optional[str] = None, latency_s: float = 0.0, detail: str = "") -> "Grade":
        if reason not in REASONS:
            raise ValueError(f"unknown grade reason {reason!r}")
        return Grade(reason in CORRECT_REASONS, reason, extracted, latency_s, detail)

    @property
    def reward(self) -> float:
        return 1.0 if self.correct else -1.0


class _Worker:
    """A ``python -m oreal.reward.worker`` subprocess talking over a socket pair (a plain
    subprocess, not multiprocessing: the caller's ``__main__`` is never re-imported)."""

    def __init__(self, memory_mb: int, markers: Sequence[str]):
        ours, theirs = socket.socketpair()
        cmd = [sys.executable, "-m", "oreal.reward.worker", str(theirs.fileno()), str(memory_mb), json.dumps(list(markers))]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_SOURCE_ROOT, os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)
        theirs.close()
        self.conn = Connection(ours.detach())

    def wait_ready(self) -> None:
        if not self.conn.poll(WORKER_START_TIMEOUT_S) or self.conn.recv() != "ready":
            self.kill()
            raise RuntimeError(f"grading worker did not start within {WORKER_START_TIMEOUT_S:.0f} s")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.conn.close()


def reason_rates(counts: dict[str, float]) -> dict[str, float]:
    """From ``reward/reason/<r>`` counts: the number graded, the timeout and parse-error rates
    among all answers, and the judge's error rate among the answers it was asked about."""
    n = {r: counts.get(f"reward/reason/{r}", 0.0) for r in REASONS}
    total, judged = sum(n.values()), n["judge_correct"] + n["judge_incorrect"] + n["judge_error"]
    return {"reward/num_graded": total, "reward/timeout_rate": n["timeout"] / total if total else 0.0,
            "reward/parse_error_rate": n["parse_error"] / total if total else 0.0,
            "reward/judge_error_rate": n["judge_error"] / judged if judged else 0.0}


class GradingPool:
    """``num_workers`` processes (0: one per CPU core), ``timeout_s`` per answer, ``memory_mb`` each."""

    def __init__(self, num_workers: int = 0, timeout_s: float = 5.0, memory_mb: int = 2048,
                 thinking_markers: Sequence[str] = DEFAULT_THINKING_MARKERS):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.num_workers = num_workers or os.cpu_count() or 1
        self.timeout_s = timeout_s
        self._spec = (memory_mb, tuple(thinking_markers))
        self._idle: "queue.Queue[_Worker]" = queue.Queue()
        self._lock = threading.Lock()
        self._reasons: Counter = Counter()
        self._latencies: list[float] = []
        self._closed = False
        workers = [_Worker(*self._spec) for _ in range(self.num_workers)]
        for w in workers:
            w.wait_ready()
            self._idle.put(w)

    def check(self, response: str, gold: str, record: bool = True) -> Grade:
        """Rule-check one pair in a worker; blocks until a worker is free and the check is done.
        ``record=False`` leaves it out of :meth:`stats` (the caller records the final verdict)."""
        if self._closed:
            raise RuntimeError("the grading pool is closed")
        worker = self._idle.get()
        start = time.perf_counter()
        try:
            worker.conn.send((response, gold))
            if worker.conn.poll(self.timeout_s):
                reason, extracted, detail = worker.conn.recv()
            else:
                worker.kill()
                worker = self._replacement()
                reason, extracted, detail = "timeout", None, f"no verdict within {self.timeout_s:g} s"
        except (EOFError, OSError, BrokenPipeError) as exc:
            worker.kill()
            worker = self._replacement()
            reason, extracted, detail = "parse_error", None, f"grading worker died ({type(exc).__name__})"
        finally:
            self._idle.put(worker)
        grade = Grade.of(reason, extracted, time.perf_counter() - start, detail)
        if record:
            self.record(grade)
        return grade

    def check_batch(self, pairs: Iterable[tuple[str, str]], progress: Optional[str] = None) -> list[Grade]:
        pairs = list(pairs)
        with ThreadPoolExecutor(self.num_workers, thread_name_prefix="oreal-grade") as ex:
            futures = [ex.submit(self.check, r, g) for r, g in pairs]
            return [f.result() for f in _progress(futures, progress)]

    def record(self, grade: Grade) -> None:
        with self._lock:
            self._reasons[grade.reason] += 1
            self._latencies.append(grade.latency_s)

    def stats(self, reset: bool = False) -> dict[str, float]:
        """Counts by reason, timeout rate and p50/p99 latency since the last reset."""
        with self._lock:
            reasons, lat = dict(self._reasons), sorted(self._latencies)
            if reset:
                self._reasons.clear()
                self._latencies.clear()
        out = {f"reward/reason/{r}": float(reasons.get(r, 0)) for r in REASONS}
        out.update(reason_rates(out))
        if lat:
            out["perf/grade_latency_p50_ms"] = 1000 * lat[len(lat) // 2]
            out["perf/grade_latency_p99_ms"] = 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        return out

    def _replacement(self) -> _Worker:
        w = _Worker(*self._spec)
        w.wait_ready()
        return w

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                w = self._idle.get_nowait()
            except queue.Empty:
                break
            try:
                w.conn.send(None)
            except OSError:
                pass
            w.kill()

    def __enter__(self) -> "GradingPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _progress(futures, desc: Optional[str]):
    if desc is None:
        return futures
    from tqdm import tqdm

    return tqdm(futures, desc=desc, unit="answer", leave=False)
