"""Which role a task of a multi-node allocation plays, from its node index.

A job of N nodes is split by ``cluster.rollout_nodes``: the first nodes roll out (one vLLM
engine server each), the rest train. Trainer tasks form their own torch.distributed world
(rank, world size and master address exclude the rollout tasks), so the policy engine never
sees the rollout nodes. Outside a multi-node Slurm job everything runs in one process.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from oreal.config.schema import Config


@dataclass(frozen=True)
class Role:
    name: str  # "all" (one process does everything), "rollout" or "trainer"
    node: int = 0
    remote_rollout: bool = False  # a trainer that reaches its rollout engine over the network


def _hostnames(nodelist: str) -> list[str]:
    out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
    return out.stdout.split()


def role_of_this_task(cfg: Config) -> Role:
    """``OREAL_ROLE`` (set by the heterogeneous sbatch script per component) wins; otherwise
    the node index within the allocation decides."""
    forced = os.environ.get("OREAL_ROLE")
    if forced == "rollout":
        return Role("rollout", int(os.environ.get("SLURM_NODEID", "0")))
    if forced == "trainer":
        _export_trainer_world(skipped_nodes=0)
        return Role("trainer", int(os.environ.get("SLURM_NODEID", "0")), remote_rollout=True)
    if forced:
        raise ValueError(f"OREAL_ROLE={forced!r}: expected 'rollout' or 'trainer'")
    nodes = int(os.environ.get("SLURM_JOB_NUM_NODES", "1"))
    if cfg.cluster.rollout_nodes == 0 or nodes == 1 or "SLURM_NODEID" not in os.environ:
        return Role("all")
    if nodes != cfg.cluster.nodes:
        raise RuntimeError(f"the allocation has {nodes} nodes but cluster.nodes={cfg.cluster.nodes}")
    node = int(os.environ["SLURM_NODEID"])
    if node < cfg.cluster.rollout_nodes:
        return Role("rollout", node)
    _export_trainer_world(skipped_nodes=cfg.cluster.rollout_nodes)
    return Role("trainer", node, remote_rollout=True)


def _export_trainer_world(skipped_nodes: int) -> None:
    """RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT of the trainer tasks only
    (the step's first ``skipped_nodes`` nodes serve rollouts)."""
    tasks_per_node = int(os.environ.get("SLURM_NTASKS_PER_NODE", os.environ.get("SLURM_TASKS_PER_NODE", "1").split("(")[0]))
    skipped = skipped_nodes * tasks_per_node
    os.environ["RANK"] = str(int(os.environ["SLURM_PROCID"]) - skipped)
    os.environ["WORLD_SIZE"] = str(int(os.environ["SLURM_NTASKS"]) - skipped)
    os.environ["LOCAL_RANK"] = os.environ.get("SLURM_LOCALID", "0")
    os.environ["MASTER_ADDR"] = _hostnames(os.environ.get("SLURM_STEP_NODELIST", os.environ["SLURM_JOB_NODELIST"]))[skipped_nodes]
    os.environ.setdefault("MASTER_PORT", str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000))
