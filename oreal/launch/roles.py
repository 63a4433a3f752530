"""Which role a task of a Slurm allocation plays.

A job of N nodes is split by ``cluster.rollout_nodes``: on the first nodes, task ``i`` of a
node serves rollout engine slot ``i`` (:mod:`oreal.launch.layout`; tasks beyond the node's
engines have nothing to do and end at once), the other nodes train. Trainer tasks form their
own torch.distributed world (rank, world size and master address exclude the rollout tasks),
so the policy engine never sees the rollout nodes. A heterogeneous job names the role of
each component instead (``OREAL_ROLE``). Outside a multi-task Slurm job, one process does
everything.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Optional

from oreal.config.schema import Config
from oreal.launch.layout import EngineSlot, engine_slots


@dataclass(frozen=True)
class Role:
    name: str  # "all" (one process does everything), "rollout", "idle" or "trainer" (reaches the fleet)
    node: int = 0
    engine: Optional[EngineSlot] = None  # the slot a rollout task serves


def _hostnames(nodelist: str) -> list[str]:
    out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
    return out.stdout.split()


def tasks_per_node() -> int:
    """Tasks on each node of this (homogeneous) job step."""
    raw = os.environ.get("SLURM_NTASKS_PER_NODE") or os.environ.get("SLURM_TASKS_PER_NODE", "1")
    return int(raw.split("(")[0].split(",")[0])


def cpus_of_this_task() -> list[int]:
    """Core ids this task may run on (Slurm's binding when it binds, else the node's)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def fleet(cfg: Config, cpus: Optional[list[int]] = None) -> list[EngineSlot]:
    """The rollout engines this config runs on its cluster."""
    c = cfg.cluster
    return engine_slots(c.rollout_nodes, c.gpus_per_node, cfg.rollout.tensor_parallel_size, cfg.rollout.engines_per_node,
                        cpus if cpus is not None else cpus_of_this_task())


def _rollout_role(cfg: Config, node: int) -> Role:
    local = int(os.environ.get("SLURM_LOCALID", "0"))
    slots = [s for s in fleet(cfg) if s.node == node]
    return Role("rollout", node, engine=slots[local]) if local < len(slots) else Role("idle", node)


def role_of_this_task(cfg: Config) -> Role:
    """``OREAL_ROLE`` (set by the heterogeneous sbatch script per component) wins; otherwise
    the node index within the allocation decides."""
    forced = os.environ.get("OREAL_ROLE")
    node = int(os.environ.get("SLURM_NODEID", "0"))
    if forced == "rollout":
        return _rollout_role(cfg, node)
    if forced == "trainer":
        _export_trainer_world(skipped_tasks=0, master_node_index=0)
        return Role("trainer", node)
    if forced:
        raise ValueError(f"OREAL_ROLE={forced!r}: expected 'rollout' or 'trainer'")
    nodes = int(os.environ.get("SLURM_JOB_NUM_NODES", "1"))
    if cfg.cluster.rollout_nodes == 0 or nodes == 1 or "SLURM_NODEID" not in os.environ:
        return Role("all")
    if nodes != cfg.cluster.nodes:
        raise RuntimeError(f"the allocation has {nodes} nodes but cluster.nodes={cfg.cluster.nodes}")
    if node < cfg.cluster.rollout_nodes:
        return _rollout_role(cfg, node)
    _export_trainer_world(skipped_tasks=cfg.cluster.rollout_nodes * tasks_per_node(), master_node_index=cfg.cluster.rollout_nodes)
    return Role("trainer", node)


def _export_trainer_world(skipped_tasks: int, master_node_index: int) -> None:
    """RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE / MASTER_ADDR / MASTER_PORT of the
    trainer tasks only (the first ``skipped_tasks`` tasks of the step serve rollouts)."""
    os.environ["RANK"] = str(int(os.environ["SLURM_PROCID"]) - skipped_tasks)
    os.environ["WORLD_SIZE"] = str(int(os.environ["SLURM_NTASKS"]) - skipped_tasks)
    os.environ["LOCAL_RANK"] = os.environ.get("SLURM_LOCALID", "0")
    os.environ["LOCAL_WORLD_SIZE"] = str(tasks_per_node())
    nodelist = os.environ.get("SLURM_STEP_NODELIST") or os.environ["SLURM_JOB_NODELIST"]
    os.environ["MASTER_ADDR"] = _hostnames(nodelist)[master_node_index]
    os.environ.setdefault("MASTER_PORT", str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000))
