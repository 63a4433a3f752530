"""The outcome of a run, recorded in its folder: ``status.json``.

``running`` (training), ``finished`` (all steps done), ``stopped`` (a signal arrived: the run
checkpointed and was requeued or can be resumed), ``failed`` (with a one-line reason and the
task and host that failed). The file is replaced atomically, so a reader never sees half of
it. Within one incarnation of a job (Slurm job id + restart count) ``failed`` is final: the
task that failed writes it, and nothing later in the same incarnation overwrites it.

:class:`FailureWatch` reads the same file from every task of a job: when another task has
failed, this one exits at once instead of waiting in a collective or for a connection until
the job's time limit.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from oreal.trainer.atomic import write_atomic

STATUS_FILE = "status.json"
STATES = ("running", "finished", "stopped", "failed")


def incarnation() -> dict[str, str]:
    """Which job, and which requeue of it, this process belongs to. A heterogeneous job's
    components share the leader's id (``SLURM_HET_JOB_ID``), an array task has its own."""
    job = os.environ.get("SLURM_HET_JOB_ID") or os.environ.get("SLURM_JOB_ID") or "local"
    return {"job_id": job, "restart": os.environ.get("SLURM_RESTART_COUNT", "0")}


def slurm_job() -> Optional[str]:
    """The job as ``sacct``/``scancel`` name it: ``<array job>_<task>`` for an array task (its
    raw ``SLURM_JOB_ID`` can equal the array's own id, which names every task), else the id."""
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_HET_JOB_ID") or os.environ.get("SLURM_JOB_ID")


@dataclass(frozen=True)
class RunStatus:
    state: str
    step: Optional[int] = None
    reason: Optional[str] = None
    task: Optional[str] = None  # "trainer rank 3", "rollout engine 1", "main"
    host: Optional[str] = None
    pid: Optional[int] = None
    job_id: str = "local"
    restart: str = "0"
    time: float = 0.0
    slurm_job: Optional[str] = None  # what sacct / scancel take

    def same_incarnation(self) -> bool:
        return {"job_id": self.job_id, "restart": self.restart} == incarnation()

    def written_by_me(self) -> bool:
        return self.host == socket.gethostname() and self.pid == os.getpid()


def read_status(run_dir: Path) -> Optional[RunStatus]:
    """The recorded status, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads((Path(run_dir) / STATUS_FILE).read_text())
        return RunStatus(**{k: data[k] for k in RunStatus.__dataclass_fields__ if k in data})
    except (FileNotFoundError, json.JSONDecodeError, TypeError, KeyError):
        return None


def write_status(run_dir: Path, state: str, *, step: Optional[int] = None, reason: Optional[str] = None,
                 task: Optional[str] = None) -> bool:
    """Record ``state``; False (nothing written) when this incarnation already failed."""
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}; one of {STATES}")
    run_dir = Path(run_dir)
    current = read_status(run_dir)
    if current is not None and current.state == "failed" and current.same_incarnation():
        return False
    status = RunStatus(state, step, reason, task, socket.gethostname(), os.getpid(), **incarnation(), time=time.time(),
                       slurm_job=slurm_job())
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / STATUS_FILE, json.dumps(asdict(status), indent=2) + "\n")
    return True


class FailureWatch:
    """A daemon thread that ends the process when another task of this incarnation recorded
    a failure. ``on_failure`` (default: print one line, exit 1 without cleanup) runs in the
    thread; the main thread may be blocked in C++ (a collective, ``accept``)."""

    def __init__(self, run_dir: Path, poll_s: float = 2.0, on_failure: Optional[Callable[[RunStatus], None]] = None):
        self.run_dir = Path(run_dir)
        self.poll_s = poll_s
        self.on_failure = on_failure or _exit_after_peer_failure
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="oreal-failure-watch", daemon=True)

    def start(self) -> "FailureWatch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            status = read_status(self.run_dir)
            if status and status.state == "failed" and status.same_incarnation() and not status.written_by_me():
                self.on_failure(status)
                return


def _exit_after_peer_failure(status: RunStatus) -> None:
    print(f"oreal: exiting because {status.task} on {status.host} failed: {status.reason}", file=sys.stderr, flush=True)
    os._exit(1)


class recorded_failure:
    """``with recorded_failure(run_dir, task, step=lambda: n):`` records ``failed`` (one-line
    reason, this task and host) when the block raises anything but a clean exit, then lets
    the exception go on."""

    def __init__(self, run_dir: Path, task: str, step: Optional[Callable[[], Optional[int]]] = None):
        self.run_dir, self.task, self.step = Path(run_dir), task, step

    def __enter__(self) -> "recorded_failure":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            return False
        from oreal.errors import one_line

        step = self.step() if self.step else None
        if step is None and (current := read_status(self.run_dir)) is not None:
            step = current.step
        write_status(self.run_dir, "failed", step=step, reason=one_line(exc), task=self.task)
        return False
