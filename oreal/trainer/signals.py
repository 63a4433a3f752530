"""Stop requests: SIGTERM (preemption), SIGUSR1 (the sbatch scripts' time-limit warning) and
SIGUSR2 (submitit's) ask the loop to finish the current step, checkpoint and return; so does
a request made elsewhere in the job (``external``: another task received the signal). The
trainer ranks agree on stopping once per step (:func:`oreal.trainer.ranks.any_rank`), so a
signal that reaches one task stops all of them after the same step.
"""

from __future__ import annotations

import signal
import threading
from typing import Callable, Optional

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class StopSignal:
    def __init__(self, external: Optional[Callable[[], Optional[str]]] = None):
        self.external = external
        self.signum: Optional[int] = None
        self._external_reason: Optional[str] = None

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def install(self, signals=STOP_SIGNALS) -> "StopSignal":
        """Handle ``signals`` in this process (replacing submitit's own USR2 handler, which
        would requeue from whichever task is global rank 0 without the trainer saving)."""
        if threading.current_thread() is threading.main_thread():
            for s in signals:
                signal.signal(s, self._handle)
        return self

    @property
    def requested(self) -> bool:
        """A signal reached this process, or a stop was requested elsewhere in the job."""
        if self.signum is None and self._external_reason is None and self.external is not None:
            self._external_reason = self.external()
        return self.signum is not None or self._external_reason is not None

    @property
    def reason(self) -> str:
        if self.signum is not None:
            return signal.Signals(self.signum).name
        return self._external_reason or "requested by another task"
