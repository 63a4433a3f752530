"""Stop requests: SIGTERM (preemption), SIGUSR1 (the sbatch scripts' time-limit warning) and
SIGUSR2 (submitit's) ask the loop to finish the current step, checkpoint and return; so does
a request made elsewhere in the job (``external``: another task received the signal). The
trainer ranks agree on stopping once per step (:func:`oreal.trainer.ranks.any_rank`), so a
signal that reaches one task stops all of them after the same step.

Slurm signals every process of a job step, children included: the grading workers, the
checkpoint writer's helper process, engine workers. The entry point therefore blocks the stop
signals in its main thread before it starts anything (:func:`receive_stop_signals`): every
child started afterwards inherits the blocked mask and keeps working, one thread waits for
the signals and reports them, and a handler catches those delivered to a thread that already
existed (importing torch starts one), whose default action would kill the process. Without
it (a library call of the trainer), the trainer installs plain handlers instead.
"""

from __future__ import annotations

import signal
import threading
from typing import Callable, Optional

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class _Receiver:
    """The process-wide waiter: a daemon thread in ``sigwait`` on the blocked stop signals."""

    def __init__(self):
        self.received: Optional[int] = None
        self.listeners: list[Callable[[int], None]] = []
        for s in STOP_SIGNALS:
            signal.signal(s, lambda signum, frame: self._report(signum))
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        threading.Thread(target=self._wait, name="oreal-stop-signals", daemon=True).start()

    def _wait(self) -> None:
        while True:
            self._report(signal.sigwait(STOP_SIGNALS))

    def _report(self, signum: int) -> None:
        self.received = signum
        for listener in list(self.listeners):
            listener(signum)


_receiver: Optional[_Receiver] = None


def receive_stop_signals(listener: Optional[Callable[[int], None]] = None) -> None:
    """Block the stop signals in this process (call before starting any thread or child)
    and route them to ``listener`` (and to the trainer's :class:`StopSignal`)."""
    global _receiver
    if threading.current_thread() is not threading.main_thread():
        return
    if _receiver is None:
        _receiver = _Receiver()
    if listener is not None:
        _receiver.listeners.append(listener)


class StopSignal:
    def __init__(self, external: Optional[Callable[[], Optional[str]]] = None):
        self.external = external
        self.signum: Optional[int] = None
        self._external_reason: Optional[str] = None

    def _handle(self, signum, frame=None) -> None:
        self.signum = signum

    def install(self, signals=STOP_SIGNALS) -> "StopSignal":
        """Listen to the process-wide receiver when the entry point set one up (a signal that
        arrived before counts); otherwise handle ``signals`` in the main thread."""
        if _receiver is not None:
            if _receiver.received is not None:
                self.signum = _receiver.received
            _receiver.listeners.append(self._handle)
        elif threading.current_thread() is threading.main_thread():
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
