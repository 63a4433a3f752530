"""A collective weight transport: the trainer broadcasts new weights to every rollout worker.

The trainer's sending rank (rank 0 of the group) and every worker of every rollout engine
(one per tensor-parallel rank of a vLLM engine, or the serving process itself for engines
without workers) join one process group of their own, built from a ``TCPStore`` that the
trainer hosts: NCCL between GPUs, gloo on CPU. It is separate from the trainer's and vLLM's
own groups, so neither is disturbed. Each bucket crosses as three broadcasts: its size, its
description (names, dtypes, shapes; a few KB) and its bytes in one flat buffer, so the
number of collectives does not grow with the number of tensors. Every receiver gets the full
tensors (a tensor-parallel engine's loader shards them itself), and nothing but small
picklable arguments ever crosses an RPC.
"""

from __future__ import annotations

import datetime
import pickle
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

import torch
import torch.distributed as dist

ALIGN = 64  # bytes: every tensor starts at an aligned offset of the flat buffer (dtype views)


@dataclass(frozen=True)
class GroupSpec:
    """Where the group meets; picklable (it travels in the control messages)."""

    host: str
    port: int
    world_size: int
    backend: str  # "gloo" or "nccl"
    timeout_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def _padded(nbytes: int) -> int:
    return (nbytes + ALIGN - 1) // ALIGN * ALIGN


def _process_group(store: dist.Store, rank: int, spec: GroupSpec):
    prefixed = dist.PrefixStore("oreal-weights", store)
    if spec.backend == "nccl":
        return dist.ProcessGroupNCCL(prefixed, rank, spec.world_size)
    return dist.ProcessGroupGloo(prefixed, rank, spec.world_size, datetime.timedelta(seconds=spec.timeout_s))


class WeightGroup:
    """One member of the weight group; rank 0 (the trainer) hosts the store and sends.
    Build with :func:`host` (rank 0) or :func:`join` (receivers); every member's
    :meth:`connect` blocks until all have joined."""

    def __init__(self, spec: GroupSpec, rank: int, store: dist.Store, device: str = "cpu"):
        self.spec, self.rank, self.store, self.device = spec, rank, store, torch.device(device)
        self.pg = None

    def connect(self) -> "WeightGroup":
        self.pg = _process_group(self.store, self.rank, self.spec)
        return self

    def _broadcast(self, t: torch.Tensor) -> torch.Tensor:
        opts = dist.BroadcastOptions()
        opts.rootRank = 0
        self.pg.broadcast([t], opts).wait()
        return t

    # ---- rank 0 ---------------------------------------------------------------------------
    def send(self, buckets: Iterable[list[tuple[str, torch.Tensor]]]) -> int:
        """Broadcast every bucket, then the end marker; returns the payload bytes sent."""
        total = 0
        for bucket in buckets:
            meta, offset = [], 0
            for name, t in bucket:
                nbytes = t.numel() * t.element_size()
                meta.append((name, str(t.dtype).removeprefix("torch."), tuple(t.shape), offset, nbytes))
                offset += _padded(nbytes)
            flat = torch.empty(offset, dtype=torch.uint8, device=self.device)
            for (name, t), (_, _, _, start, nbytes) in zip(bucket, meta):
                flat[start : start + nbytes].copy_(t.detach().contiguous().reshape(-1).view(torch.uint8))
            blob = torch.frombuffer(bytearray(pickle.dumps(meta)), dtype=torch.uint8).to(self.device)
            self._broadcast(torch.tensor([blob.numel(), flat.numel()], dtype=torch.int64, device=self.device))
            self._broadcast(blob)
            self._broadcast(flat)
            total += sum(m[4] for m in meta)
        self._broadcast(torch.zeros(2, dtype=torch.int64, device=self.device))
        return total

    # ---- receivers ------------------------------------------------------------------------
    def receive(self) -> Iterator[list[tuple[str, torch.Tensor]]]:
        """The buckets rank 0 sends, one at a time, until its end marker."""
        while True:
            sizes = self._broadcast(torch.zeros(2, dtype=torch.int64, device=self.device)).tolist()
            if sizes == [0, 0]:
                return
            blob = self._broadcast(torch.empty(sizes[0], dtype=torch.uint8, device=self.device))
            flat = self._broadcast(torch.empty(sizes[1], dtype=torch.uint8, device=self.device))
            meta = pickle.loads(blob.cpu().numpy().tobytes())
            yield [(name, flat[start : start + nbytes].view(getattr(torch, dtype)).reshape(shape))
                   for name, dtype, shape, start, nbytes in meta]

    def close(self) -> None:
        self.pg = None
        self.store = None


def host(host: str, world_size: int, backend: str, timeout_s: float, device: str = "cpu") -> WeightGroup:
    """The sending side (rank 0): a store on a free port of this host; connect once the
    receivers have been told ``group.spec``."""
    store = dist.TCPStore("0.0.0.0", 0, world_size, True, timeout=datetime.timedelta(seconds=timeout_s),
                          wait_for_workers=False)
    return WeightGroup(GroupSpec(host, store.port, world_size, backend, timeout_s), 0, store, device)


def join(spec: GroupSpec | dict, rank: int, device: str = "cpu") -> WeightGroup:
    """A receiver joins the group described by ``spec`` as ``rank`` (>= 1), connected."""
    spec = spec if isinstance(spec, GroupSpec) else GroupSpec(**spec)
    if rank < 1:
        raise ValueError(f"weight group rank {rank}: rank 0 is the trainer")
    store = dist.TCPStore(spec.host, spec.port, spec.world_size, False, timeout=datetime.timedelta(seconds=spec.timeout_s))
    return WeightGroup(spec, rank, store, device).connect()
