"""One rollout engine served to the trainer: the server a rollout task runs, and the wire.

A rollout task builds its engine on the devices of its slot (:mod:`oreal.launch.layout`),
listens on a TCP port and announces itself in the rendezvous (:mod:`oreal.launch.rendezvous`)
with an auth key; a thread touches its heartbeat file. The trainer connects once and sends
requests on that control connection: ``generate`` (prompts as token ids), ``join`` (the
weight group's address) and ``weights`` (receive the broadcast that follows), the socket
fallback ``weights_socket`` (buckets on the control connection itself), ``ping`` and
``close``. The server ends when the trainer says close (exit 0), or with an error when no
trainer connects within ``rollout.connect_timeout_s`` or the connection drops (the trainer
died), so no rollout task waits for the job's time limit.
"""

from __future__ import annotations

import pickle
import secrets
import socket
import threading
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any, Iterator, Optional

from oreal.config.schema import RolloutConfig
from oreal.engines.protocols import RolloutEngine
from oreal.engines.weight_group import WeightGroup, join
from oreal.errors import RolloutEngineError
from oreal.launch.layout import EngineSlot
from oreal.launch.rendezvous import Rendezvous


# ---- the wire: plain pickle over an authenticated Connection --------------------------------
def send(conn: Connection, obj: Any) -> None:
    """Plain pickle: ``Connection.send`` uses multiprocessing's pickler, for which torch
    registers shared-memory tensor reductions that only work between processes of one host."""
    conn.send_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def recv(conn: Connection, timeout_s: Optional[float] = None) -> Any:
    """The next message; ``TimeoutError`` when none arrives in time, ``EOFError`` when the
    peer closed or died."""
    if timeout_s is not None and not conn.poll(timeout_s):
        raise TimeoutError(f"no answer within {timeout_s:.0f} s")
    return pickle.loads(conn.recv_bytes())


def _accept(listener: Listener, timeout_s: float) -> Connection:
    """``listener.accept()`` with a deadline (the accept runs in a daemon thread, which a
    failing server leaves behind as it exits)."""
    box: list = []
    thread = threading.Thread(target=lambda: box.append(listener.accept()), daemon=True, name="oreal-accept")
    thread.start()
    thread.join(timeout_s)
    if not box:
        raise RolloutEngineError(f"no trainer connected within {timeout_s:.0f} s (rollout.connect_timeout_s); "
                                 "the trainer tasks failed to start or never reached the rollout phase")
    return box[0]


class _Heartbeat:
    def __init__(self, rendezvous: Rendezvous, index: int, every_s: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(rendezvous, index, every_s), daemon=True,
                                        name="oreal-heartbeat")
        self._thread.start()

    def _run(self, rendezvous: Rendezvous, index: int, every_s: float) -> None:
        while not self._stop.wait(every_s):
            rendezvous.heartbeat(index)

    def stop(self) -> None:
        self._stop.set()


class RolloutServer:
    """Serves ``engine`` (slot ``slot``) to one trainer connection."""

    def __init__(self, engine: RolloutEngine, run_dir: Path, slot: EngineSlot, cfg: RolloutConfig, visible: str = ""):
        self.engine, self.slot, self.cfg, self.visible = engine, slot, cfg, visible
        self.rendezvous = Rendezvous(run_dir)
        self.group: Optional[WeightGroup] = None  # when the server process itself receives

    def serve(self) -> None:
        authkey = secrets.token_bytes(32)
        with Listener(("0.0.0.0", 0), authkey=authkey) as listener:
            self.rendezvous.publish_engine(self.slot.index, {
                "host": socket.gethostname(), "port": listener.address[1], "authkey": authkey.hex(),
                "slot": self.slot.local_index, "devices": self.slot.describe(), "visible": self.visible,
                "group_ranks": getattr(self.engine, "weight_group_ranks", 1)})
            heartbeat = _Heartbeat(self.rendezvous, self.slot.index, self.cfg.heartbeat_s)
            try:
                with _accept(listener, self.cfg.connect_timeout_s) as conn:
                    self._loop(conn)
            finally:
                heartbeat.stop()

    def _loop(self, conn: Connection) -> None:
        handlers = {"generate": lambda p: self.engine.generate(*p), "join": lambda p: self._join(*p),
                    "weights": lambda p: self._receive_weights(), "weights_socket": lambda p: self._socket_weights(conn),
                    "ping": lambda p: None}
        while True:
            try:
                kind, payload = recv(conn)
            except EOFError:
                raise RolloutEngineError(f"{self.slot.describe()}: the trainer's connection dropped "
                                         "(the trainer died or was killed)") from None
            if kind == "close":
                send(conn, ("ok", None))
                return
            if kind not in handlers:
                raise RolloutEngineError(f"{self.slot.describe()}: unknown request {kind!r}")
            try:
                result = handlers[kind](payload)
            except Exception as exc:
                send(conn, ("error", f"{type(exc).__name__}: {exc}"))
                raise
            send(conn, ("ok", result))

    def _join(self, spec: dict, base_rank: int) -> None:
        if hasattr(self.engine, "join_weight_group"):
            self.engine.join_weight_group(spec, base_rank)
        else:
            self.group = join(spec, base_rank)

    def _receive_weights(self) -> None:
        if self.group is None:
            self.engine.receive_weights_from_group()
        else:
            self.engine.update_weights(self.group.receive())

    def _socket_weights(self, conn: Connection) -> None:
        def buckets() -> Iterator:
            while True:
                kind, bucket = recv(conn)
                if kind == "end":
                    return
                yield bucket

        self.engine.update_weights(buckets())
