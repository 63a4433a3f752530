"""One place that starts torch.distributed and says where this process stands."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str = "none"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(timeout_min: float = 60.0) -> DistEnv:
    """Join the process group described by the usual env variables (RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR, MASTER_PORT: torchrun, srun via submitit); a single process
    otherwise. NCCL with CUDA, gloo without; collectives time out after ``timeout_min``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = f"cuda:{local}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local)
    if world == 1:
        return DistEnv(device=device)
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=datetime.timedelta(minutes=timeout_min))
    return DistEnv(rank, world, local, device, backend)


def all_reduce_metrics(sums: dict[str, float], device: str, group=None) -> dict[str, float]:
    """Sum per-rank metric contributions over ``group`` (float64, one collective)."""
    keys = sorted(sums)
    t = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t, group=group)
    return dict(zip(keys, t.tolist()))


def all_reduce_in_buckets(tensors: list[torch.Tensor], group=None, bucket_bytes: int = 64 << 20) -> None:
    """Sum ``tensors`` in place over ``group``, flattened into buckets (one collective each)."""
    _in_buckets(tensors, bucket_bytes, lambda flat: dist.all_reduce(flat, group=group), receives=True)


def broadcast_in_buckets(tensors: list[torch.Tensor], src: int, group=None, bucket_bytes: int = 64 << 20) -> None:
    """Global rank ``src``'s ``tensors`` copied in place to every rank of ``group``, flattened into
    buckets (one collective each)."""
    _in_buckets(tensors, bucket_bytes, lambda flat: dist.broadcast(flat, src=src, group=group),
                receives=dist.get_rank() != src)


def _in_buckets(tensors: list[torch.Tensor], bucket_bytes: int, collective, receives: bool) -> None:
    """``collective`` on each bucket of ``tensors`` flattened; the result copied back where this
    rank ``receives`` one."""
    from oreal.engines.weights import buckets

    for bucket in buckets(((str(i), t) for i, t in enumerate(tensors)), bucket_bytes):
        flat = torch.cat([t.reshape(-1) for _, t in bucket])
        collective(flat)
        if not receives:
            continue
        offset = 0
        for _, t in bucket:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()