"""SIGTERM / SIGUSR1 (Slurm's preemption and time-limit warnings) ask the loop to finish the
current step, checkpoint and return; a second signal is honoured the same way."""

from __future__ import annotations

import signal
import threading


class StopSignal:
    def __init__(self):
        self.requested = False
        self.signum = None

    def _handle(self, signum, frame) -> None:
        self.requested = True
        self.signum = signum

    def install(self, signals=(signal.SIGTERM, signal.SIGUSR1)) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():
            for s in signals:
                signal.signal(s, self._handle)
        return self
