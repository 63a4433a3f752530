"""The optimiser state split over data-parallel ranks (ZeRO stage 1), for the Megatron engine.

Megatron-core's own ``DistributedOptimizer`` cannot run here: in megatron-core 0.16 its gradient
buffers are allocated on ``torch.cuda.current_device()`` (``distributed/param_and_grad_buffer.py``)
and it refuses any parameter that is not a ``torch.cuda.*Tensor`` (``optimizer/distrib_optimizer.py``),
so it needs CUDA and NCCL. This is the same idea at the granularity of whole parameters, on any
device and backend (gloo included), so one code path is tested on CPU and runs on GPUs:

- every data-parallel rank *owns* a set of whole parameters (:func:`assign_owners`: largest first,
  each to the least-loaded rank), and keeps the fp32 master weights and both AdamW moments of
  those only: the 12 bytes per parameter of optimiser state are divided by the data-parallel size;
- gradients are still summed over data-parallel ranks (all-reduce, as without sharding); each rank
  steps the parameters it owns, then every owner broadcasts its updated parameters
  (:func:`share_updates`), bucket by bucket, so all replicas hold the same weights again.

The result equals the unsharded optimiser's up to the summation order of the gradient norm.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist

from oreal.engines.distributed import broadcast_in_buckets


def assign_owners(sizes: dict[str, int], ranks: int) -> dict[str, int]:
    """The data-parallel rank that steps each parameter, from ``{name: numel}`` in a fixed order
    (every rank of a data-parallel group has the same names and shapes, so all agree): largest
    parameter first, each to the rank holding the fewest elements so far (the lowest on ties)."""
    load = [0] * ranks
    owners: dict[str, int] = {}
    for name in sorted(sizes, key=lambda n: -sizes[n]):  # sorted() is stable: ties keep their order
        rank = min(range(ranks), key=lambda r: (load[r], r))
        owners[name] = rank
        load[rank] += sizes[name]
    return owners


def share_updates(params: dict[str, torch.Tensor], owners: dict[str, int], group: Optional[dist.ProcessGroup],
                  bucket_bytes: int = 256 << 20) -> None:
    """Every owner broadcasts its parameters to the other ranks of the data-parallel ``group``,
    flattened into buckets of at most ``bucket_bytes`` (a parameter larger than that is a bucket
    of its own)."""
    with torch.no_grad():
        for owner, src in enumerate(dist.get_process_group_ranks(group)):
            broadcast_in_buckets([p for n, p in params.items() if owners[n] == owner], src, group, bucket_bytes)
