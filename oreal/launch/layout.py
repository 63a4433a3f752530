"""Where the rollout engines of an allocation run: pure arithmetic, no Slurm, no engine.

A rollout node holds ``engines_per_node`` engines. On GPU nodes that defaults to
``gpus_per_node // rollout.tensor_parallel_size`` and engine ``i`` of a node takes the devices
``[i * tp, (i + 1) * tp)``; on CPU nodes it defaults to one engine, and the node's cores are
split into that many contiguous slices. Engines are numbered node by node, so engine ``e``
sits on rollout node ``e // engines_per_node``. Every user of this layout (the tasks choosing
their role, the trainer waiting for the fleet, ``oreal plan``) computes it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence


@dataclass(frozen=True)
class EngineSlot:
    """One rollout engine: its global index, its node and slot there, and the devices it owns
    (GPU indices into the node's visible devices, or CPU core ids)."""

    index: int
    node: int
    local_index: int
    devices: tuple[int, ...]
    device_kind: str  # "cuda" or "cpu"

    def describe(self) -> str:
        return f"engine {self.index} (rollout node {self.node}, slot {self.local_index}, {self.device_kind}:" \
               f"{','.join(map(str, self.devices))})"


def engines_per_node(gpus_per_node: int, tensor_parallel_size: int, configured: Optional[int] = None) -> int:
    """How many engines one rollout node holds; refuses a count that does not fit the node."""
    if tensor_parallel_size < 1:
        raise ValueError(f"rollout.tensor_parallel_size={tensor_parallel_size} must be >= 1")
    if gpus_per_node == 0:
        return configured or 1
    fits = gpus_per_node // tensor_parallel_size
    if fits == 0:
        raise ValueError(f"rollout.tensor_parallel_size={tensor_parallel_size} is more than cluster.gpus_per_node="
                         f"{gpus_per_node}: one engine must fit on one node")
    if configured is not None and configured > fits:
        raise ValueError(f"rollout.engines_per_node={configured} engines x rollout.tensor_parallel_size="
                         f"{tensor_parallel_size} GPUs do not fit on {gpus_per_node} GPUs per node; at most {fits}")
    return configured or fits


def split_evenly(items: Sequence[int], parts: int) -> list[tuple[int, ...]]:
    """``items`` in ``parts`` contiguous slices whose sizes differ by at most one (the first
    ones larger); empty slices when there are fewer items than parts."""
    n = len(items)
    bounds = [i * n // parts for i in range(parts + 1)]
    return [tuple(items[bounds[i] : bounds[i + 1]]) for i in range(parts)]


def engine_slots(rollout_nodes: int, gpus_per_node: int, tensor_parallel_size: int, configured: Optional[int] = None,
                 cpus: Sequence[int] = (0,)) -> list[EngineSlot]:
    """Every engine of the allocation, in fleet order. ``cpus`` are the core ids of a CPU
    rollout node (the same on every node); with more engines than cores, engines share cores
    round-robin."""
    per = engines_per_node(gpus_per_node, tensor_parallel_size, configured)
    if gpus_per_node:
        devices = [tuple(range(i * tensor_parallel_size, (i + 1) * tensor_parallel_size)) for i in range(per)]
        kind = "cuda"
    else:
        devices = [s or (cpus[i % len(cpus)],) for i, s in enumerate(split_evenly(list(cpus), per))]
        kind = "cpu"
    return [EngineSlot(node * per + i, node, i, devices[i], kind) for node in range(rollout_nodes) for i in range(per)]


def split_prompts(num_prompts: int, num_engines: int) -> list[range]:
    """Contiguous ranges of prompt indices, one per engine (sizes differ by at most one): a
    prompt's whole group goes to one engine, and gathering the ranges in engine order gives
    the prompts back in their order."""
    bounds = [i * num_prompts // num_engines for i in range(num_engines + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(num_engines)]
