"""A rollout engine on another node of the same allocation, reached through the run folder.

The rollout node runs :func:`serve`: it builds the configured rollout engine, listens on a TCP
port, and writes ``<run_dir>/rendezvous/rollout.json`` (host, port, a random auth key; mode
0600) tagged with the Slurm job id and restart count, so a requeued job never connects to the
previous incarnation's server. The trainer's :class:`RemoteRolloutEngine` waits for that file,
connects, and implements the rollout protocol over the connection: generation requests, and
weight sync streamed one bucket at a time (TCP on CPU clusters; the protocol is the same
where NCCL would carry the tensors). The server exits when the trainer closes the engine or
its connection drops.
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
import socket
import time
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch

from oreal.engines.protocols import RolloutEngine, RolloutGroup, SamplingSettings

RENDEZVOUS = "rendezvous/rollout.json"


def incarnation() -> dict:
    """Which job (and which requeue of it) this process belongs to."""
    return {"job_id": os.environ.get("SLURM_JOB_ID", "local"), "restart": os.environ.get("SLURM_RESTART_COUNT", "0")}


def _publish(run_dir: Path, address: tuple[str, int], authkey: bytes) -> None:
    path = run_dir / RENDEZVOUS
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"host": address[0], "port": address[1], "authkey": authkey.hex(), "node": os.environ.get("SLURMD_NODENAME"),
                   **incarnation()}, f)
    os.replace(tmp, path)


def _send(conn: Connection, obj) -> None:
    """Plain pickle: ``Connection.send`` uses multiprocessing's pickler, for which torch
    registers shared-memory tensor reductions that only work between processes of one host."""
    conn.send_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _recv(conn: Connection):
    return pickle.loads(conn.recv_bytes())


def _received_buckets(conn: Connection) -> Iterator[list[tuple[str, torch.Tensor]]]:
    while True:
        kind, payload = _recv(conn)
        if kind == "end":
            return
        yield payload


def serve(engine: RolloutEngine, run_dir: Path, host: Optional[str] = None) -> None:
    """Serve ``engine`` to one trainer until it says goodbye or disconnects."""
    authkey = secrets.token_bytes(32)
    with Listener(("0.0.0.0", 0), authkey=authkey) as listener:
        _publish(Path(run_dir), (host or socket.gethostname(), listener.address[1]), authkey)
        with listener.accept() as conn:
            while True:
                try:
                    kind, payload = _recv(conn)
                except EOFError:
                    return
                if kind == "generate":
                    _send(conn, engine.generate(*payload))
                elif kind == "update_weights":
                    engine.update_weights(_received_buckets(conn))
                    _send(conn, "ok")
                elif kind == "close":
                    _send(conn, "bye")
                    return
                else:
                    raise ValueError(f"unknown rollout request {kind!r}")


class RemoteRolloutEngine:
    """The rollout protocol, answered by :func:`serve` on another node."""

    def __init__(self, run_dir: Path, timeout_s: float = 1800.0):
        path = Path(run_dir) / RENDEZVOUS
        deadline = time.monotonic() + timeout_s
        want = incarnation()
        while True:
            info = self._read(path)
            if info and all(info.get(k) == v for k, v in want.items()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"no rollout server of job {want['job_id']} (restart {want['restart']}) published "
                                   f"{path} within {timeout_s:.0f} s; see the rollout node's log in the submitit folder")
            time.sleep(0.5)
        self.conn = Client((info["host"], info["port"]), authkey=bytes.fromhex(info["authkey"]))

    @staticmethod
    def _read(path: Path) -> Optional[dict]:
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def generate(self, prompts: Sequence[list[int]], n: int, sampling: SamplingSettings) -> list[RolloutGroup]:
        _send(self.conn, ("generate", (list(prompts), n, sampling)))
        return _recv(self.conn)

    def update_weights(self, buckets: Iterator[list[tuple[str, torch.Tensor]]]) -> None:
        _send(self.conn, ("update_weights", None))
        for bucket in buckets:
            _send(self.conn, ("bucket", [(name, t.detach().cpu()) for name, t in bucket]))
        _send(self.conn, ("end", None))
        if _recv(self.conn) != "ok":
            raise RuntimeError("the rollout server did not confirm the weight update")

    def close(self) -> None:
        try:
            _send(self.conn, ("close", None))
            _recv(self.conn)
        except (EOFError, OSError):
            pass
        self.conn.close()


class MainRankRollout:
    """A rollout engine held by trainer rank 0 only, shared with the other trainer ranks:
    rank 0 generates and broadcasts the responses; every rank runs the policy's weight export
    (it may gather across ranks) and rank 0 forwards it."""

    def __init__(self, engine: Optional[RolloutEngine], is_main: bool):
        self.engine, self.is_main = engine, is_main

    def generate(self, prompts: Sequence[list[int]], n: int, sampling: SamplingSettings) -> list[RolloutGroup]:
        import torch.distributed as dist

        box = [self.engine.generate(prompts, n, sampling) if self.is_main else None]
        if dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def update_weights(self, buckets: Iterator[list[tuple[str, torch.Tensor]]]) -> None:
        if self.is_main:
            self.engine.update_weights(buckets)
        else:
            for _ in buckets:  # take part in the export's collectives
                pass

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
