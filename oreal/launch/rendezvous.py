"""How the tasks of one job find each other: files in the (shared) run folder.

Everything lives under ``<run_dir>/rendezvous/<job id>.<restart>/``, so a requeued job never
reads the entries of the incarnation before it:

* ``engine-<i>.json``: rollout engine ``i``'s address, auth key (the file is mode 0600),
  host, slot and devices, written once it serves;
* ``engine-<i>.alive``: touched by the engine every few seconds; its mtime is the engine's
  last heartbeat, named in the error when the engine stops answering;
* ``stop``: a stop request from whichever task received the time-limit or preemption
  signal; the trainer ranks agree on it at the end of the step.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

from oreal.errors import RolloutEngineError
from oreal.trainer.atomic import write_atomic
from oreal.trainer.status import incarnation


class Rendezvous:
    def __init__(self, run_dir: Path):
        inc = incarnation()
        self.dir = Path(run_dir) / "rendezvous" / f"{inc['job_id']}.{inc['restart']}"

    # ---- rollout engines ------------------------------------------------------------------
    def publish_engine(self, index: int, info: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        info = {**info, "index": index, "pid": os.getpid(), **incarnation()}
        write_atomic(self.dir / f"engine-{index}.json", json.dumps(info), mode=0o600)  # it holds the auth key
        self.heartbeat(index)

    def engine(self, index: int) -> Optional[dict]:
        try:
            return json.loads((self.dir / f"engine-{index}.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def wait_for_engines(self, count: int, timeout_s: float, poll_s: float = 0.5) -> list[dict]:
        """Every engine's entry, in index order; the error names those that never appeared."""
        deadline = time.monotonic() + timeout_s
        while True:
            entries = [self.engine(i) for i in range(count)]
            if all(entries):
                return entries  # type: ignore[return-value]
            if time.monotonic() > deadline:
                missing = [i for i, e in enumerate(entries) if e is None]
                raise RolloutEngineError(
                    f"rollout engine(s) {missing} of {count} did not announce themselves in {self.dir} within "
                    f"{timeout_s:.0f} s (rollout.connect_timeout_s); see the rollout tasks' logs")
            time.sleep(poll_s)

    def heartbeat(self, index: int) -> None:
        (self.dir / f"engine-{index}.alive").touch()

    def last_heartbeat(self, index: int) -> Optional[float]:
        """Seconds since engine ``index`` last showed a sign of life (None: never)."""
        try:
            return time.time() - (self.dir / f"engine-{index}.alive").stat().st_mtime
        except FileNotFoundError:
            return None

    # ---- stop requests --------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "stop").write_text(reason + "\n")

    def stop_requested(self) -> Optional[str]:
        try:
            return (self.dir / "stop").read_text().strip() or "stop"
        except FileNotFoundError:
            return None
