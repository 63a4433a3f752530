"""The trainer's view of the rollout engines of its allocation: one rollout engine made of many.

:class:`RolloutFleet` implements the rollout protocol over every engine the layout places on
the rollout nodes. A step's prompts are split into contiguous ranges, one per engine (a
prompt's whole group stays on one engine); every engine gets its request before any answer
is awaited, so they generate in parallel, and the answers are gathered in engine order, so
the result does not depend on which engine finished first. Each prompt samples with its own
seed (its index in the step), so it does not matter which engine served it either.

New weights go to every engine at once through one collective (:mod:`oreal.engines.weight_group`:
NCCL on GPUs, gloo on CPU); the older path that streams pickled buckets over each control
connection remains as ``rollout.weight_transport=socket``. Every wait has a deadline from
config, and a dead or hung engine is named (host, engine index, last heartbeat) in a
:class:`RolloutEngineError`.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch

from oreal.config.schema import RolloutConfig
from oreal.engines import weight_group
from oreal.engines.protocols import RolloutGroup, SamplingSettings
from oreal.errors import RolloutEngineError
from oreal.launch.layout import split_prompts
from oreal.launch.rendezvous import Rendezvous
from oreal.launch.rollout_service import recv, send


class EngineClient:
    """The control connection to one engine."""

    def __init__(self, entry: dict, rendezvous: Rendezvous):
        self.entry, self.index, self.rendezvous = entry, entry["index"], rendezvous
        self.conn: Connection = Client((entry["host"], entry["port"]), authkey=bytes.fromhex(entry["authkey"]))

    def describe(self) -> str:
        beat = self.rendezvous.last_heartbeat(self.index)
        last = "never" if beat is None else f"{beat:.0f} s ago"
        return f"rollout engine {self.index} on {self.entry['host']} ({self.entry['devices']}; last heartbeat {last})"

    def request(self, kind: str, payload: Any = None) -> None:
        try:
            send(self.conn, (kind, payload))
        except OSError as exc:
            raise RolloutEngineError(f"{self.describe()} is gone ({exc}) while sending {kind!r}") from None

    def answer(self, kind: str, timeout_s: float) -> Any:
        try:
            status, value = recv(self.conn, timeout_s)
        except TimeoutError:
            raise RolloutEngineError(f"{self.describe()} did not answer {kind!r} within {timeout_s:.0f} s") from None
        except (EOFError, OSError):
            raise RolloutEngineError(f"{self.describe()} died during {kind!r} (its connection closed)") from None
        if status != "ok":
            raise RolloutEngineError(f"{self.describe()} failed during {kind!r}: {value}")
        return value

    def call(self, kind: str, payload: Any = None, timeout_s: float = 60.0) -> Any:
        self.request(kind, payload)
        return self.answer(kind, timeout_s)


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


class RolloutFleet:
    def __init__(self, clients: list[EngineClient], cfg: RolloutConfig, group: Optional[weight_group.WeightGroup]):
        self.clients, self.cfg, self.group = clients, cfg, group

    @classmethod
    def connect(cls, run_dir: Path, num_engines: int, cfg: RolloutConfig) -> "RolloutFleet":
        """Wait for every engine to announce itself, connect, and form the weight group."""
        rendezvous = Rendezvous(run_dir)
        entries = rendezvous.wait_for_engines(num_engines, cfg.connect_timeout_s)
        clients = [EngineClient(e, rendezvous) for e in entries]
        group = None
        if cfg.weight_transport == "collective":
            cuda = torch.cuda.is_available()
            group = weight_group.host(socket.gethostname(), 1 + sum(e["group_ranks"] for e in entries),
                                      "nccl" if cuda else "gloo", cfg.sync_timeout_s,
                                      f"cuda:{torch.cuda.current_device()}" if cuda else "cpu")
            base = 1
            for c in clients:
                c.request("join", (group.spec.as_dict(), base))
                base += c.entry["group_ranks"]
            try:
                group.connect()
            except RuntimeError as exc:
                cls._name_failure(clients, "join", exc)
            for c in clients:
                c.answer("join", cfg.sync_timeout_s)
        return cls(clients, cfg, group)

    # ---- the rollout protocol -------------------------------------------------------------
    def generate(self, prompts: Sequence[list[int]], n: int, sampling: SamplingSettings) -> list[RolloutGroup]:
        ranges = split_prompts(len(prompts), len(self.clients))
        busy = [(c, r) for c, r in zip(self.clients, ranges) if len(r)]
        for client, r in busy:
            client.request("generate", ([list(prompts[i]) for i in r], n, dataclasses.replace(sampling, prompt_offset=r.start)))
        deadline = time.monotonic() + self.cfg.request_timeout_s
        groups: list[RolloutGroup] = []
        for client, _ in busy:
            for group in client.answer("generate", _remaining(deadline)):
                group.engine = client.index
                groups.append(group)
        return groups

    def update_weights(self, buckets: Iterator[list[tuple[str, torch.Tensor]]]) -> None:
        kind = "weights" if self.group is not None else "weights_socket"
        for c in self.clients:
            c.request(kind)
        if self.group is not None:
            try:
                self.group.send(buckets)
            except RuntimeError as exc:  # a receiver died or hung mid-broadcast
                self._name_failure(self.clients, "weights", exc)
        else:
            for bucket in buckets:
                cpu = [(name, t.detach().cpu()) for name, t in bucket]
                for c in self.clients:
                    c.request("bucket", cpu)
            for c in self.clients:
                c.request("end")
        deadline = time.monotonic() + self.cfg.sync_timeout_s
        for c in self.clients:
            c.answer(kind, _remaining(deadline))

    def close(self) -> None:
        for c in self.clients:
            try:
                c.call("close", timeout_s=30.0)
            except RolloutEngineError:
                pass
            c.conn.close()
        self.clients = []
        if self.group is not None:
            self.group.close()

    @staticmethod
    def _name_failure(clients: list[EngineClient], kind: str, exc: Exception) -> None:
        """A collective failed: find the engine whose connection is gone and name it."""
        for c in clients:
            if c.conn.poll(0):
                try:
                    c.answer(kind, 0)
                except RolloutEngineError as named:
                    raise named from exc
        raise RolloutEngineError(f"the weight group failed during {kind!r} ({type(exc).__name__}: {exc}); "
                                 f"engines: {'; '.join(c.describe() for c in clients)}") from exc
