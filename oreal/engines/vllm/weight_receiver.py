"""Methods added to every vLLM worker (``LLM(worker_extension_cls=...)``): join the trainer's
weight group and load the weights it broadcasts (:mod:`oreal.engines.weight_group`).

They run inside each worker, in-process or in vLLM's worker processes alike, so a
tensor-parallel engine's workers each receive the full tensors through the collective and
shard them with vLLM's own loaders. Only the group's address (a dict of plain values)
crosses ``collective_rpc``.
"""

from __future__ import annotations

import torch

from oreal.engines.weight_group import join
from oreal.engines.weights import flatten


class WeightReceiver:
    def oreal_join_weight_group(self, spec: dict, base_rank: int) -> int:
        """Join as ``base_rank`` + this worker's rank in its engine; returns the group rank."""
        rank = base_rank + self.rank
        device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
        self._oreal_weight_group = join(spec, rank, device)
        return rank

    def oreal_receive_weights(self) -> int:
        """Load every bucket the trainer broadcasts until its end marker; returns the tensors."""
        count = 0

        def counted():
            nonlocal count
            for name, tensor in flatten(self._oreal_weight_group.receive()):
                count += 1
                yield name, tensor

        self.reload_weights(weights_iterator=counted())
        return count
