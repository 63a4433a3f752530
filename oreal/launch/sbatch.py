"""Plain sbatch scripts for people who do not use submitit, rendered from the same config.

    oreal sbatch experiment=oreal_7b cluster=slurm > sbatch/oreal_7b.sbatch
    oreal sbatch --hetjob experiment=oreal_7b cluster=slurm > sbatch/oreal_7b_hetjob.sbatch
    sbatch sbatch/oreal_7b.sbatch [more overrides]

Both are thin: resources, environment, ``srun python -m oreal.train``. The single-allocation
script lets each task pick its role from its node index (oreal/launch/roles.py); the
heterogeneous variant gives rollout and training nodes their own components and names each
srun's role. On the time-limit signal (``USR1``, sent to every task) the trainer ranks finish
their step and save together, and trainer rank 0 requeues the job (:mod:`oreal.launch.task`),
which resumes from the same run folder; the script only passes the exit status on.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Sequence

from oreal.config.schema import Config


def _time(minutes: int) -> str:
    return f"{minutes // 1440}-{minutes % 1440 // 60:02d}:{minutes % 60:02d}:00"


def _resources(cfg: Config, nodes: int, tasks_per_node: int) -> list[str]:
    c = cfg.cluster
    lines = [f"#SBATCH --nodes={nodes}", f"#SBATCH --ntasks-per-node={tasks_per_node}", f"#SBATCH --cpus-per-task={c.cpus_per_task}",
             f"#SBATCH --mem={c.mem_gb}G"]
    if c.gpus_per_node:
        lines.append(f"#SBATCH --gpus-per-node={c.gpus_per_node}")
    lines += [f"#SBATCH --{flag}={value}" for flag, value in (("partition", c.partition), ("account", c.account), ("qos", c.qos)) if value]
    return lines


def _header(cfg: Config, command: str) -> list[str]:
    c = cfg.cluster
    return ["#!/bin/bash", f"# Rendered by `{command}`: change the config and render again rather than editing.",
            f"#SBATCH --job-name=oreal-{cfg.name}", f"#SBATCH --time={_time(c.timeout_min)}",
            f"#SBATCH --signal=USR1@{c.signal_margin_s}", "#SBATCH --requeue", "#SBATCH --open-mode=append", "#SBATCH --output=%x-%j.out"]


def _environment(cfg: Config) -> list[str]:
    return ["set -uo pipefail", *cfg.cluster.setup, 'export WANDB_MODE="${WANDB_MODE:-' + cfg.logging.wandb_mode + '}"']


def render(cfg: Config, overrides: Sequence[str], hetjob: bool = False) -> str:
    args = " ".join(shlex.quote(o) for o in overrides)
    command = "oreal sbatch " + ("--hetjob " if hetjob else "") + args
    c = cfg.cluster
    tasks = c.num_tasks_per_node
    train = f'python -m oreal.train {args} "$@"'
    if not hetjob:
        lines = _header(cfg, command) + _resources(cfg, c.nodes, tasks) + [""] + _environment(cfg) + [
            "# the first cluster.rollout_nodes nodes serve rollouts, the others train (chosen per task)",
            f"srun --kill-on-bad-exit=1 {train}"]
    else:
        lines = _header(cfg, command) + ["# component 0: rollout nodes"] + _resources(cfg, c.rollout_nodes, tasks) + [
            "#SBATCH hetjob", "# component 1: training nodes"] + _resources(cfg, c.nodes - c.rollout_nodes, tasks) + [
            ""] + _environment(cfg) + [
            f"OREAL_ROLE=rollout srun --het-group=0 {train} &",
            f"OREAL_ROLE=trainer srun --het-group=1 --kill-on-bad-exit=1 {train}", "status=$?",
            "wait  # the rollout servers end when the trainer closes them, or on their own failure", 'exit "$status"']
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    from oreal.config.load import ConfigError, load_config

    ap = argparse.ArgumentParser(prog="oreal sbatch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 usage="oreal sbatch [--hetjob] OVERRIDES... > job.sbatch")
    ap.add_argument("--hetjob", action="store_true", help="a heterogeneous job: rollout and training nodes as two components")
    args, overrides = ap.parse_known_args(list(argv))
    hetjob = args.hetjob
    try:
        cfg = load_config(overrides)
    except ConfigError as exc:
        print(f"oreal sbatch: {exc}", file=sys.stderr)
        return 2
    if cfg.cluster.rollout_nodes < 1 and hetjob:
        print("oreal sbatch: --hetjob needs cluster.rollout_nodes >= 1", file=sys.stderr)
        return 2
    sys.stdout.write(render(cfg, overrides, hetjob))
    return 0
