"""One task of a job, whatever launched it: its role, its outcome, and what Slurm does next.

``python -m oreal.train`` runs :func:`run_task` in every task (Hydra's submitit launcher,
the sbatch scripts' ``srun``, or a plain process). The task's role comes from its place in the
allocation (:mod:`oreal.launch.roles`):

* a **rollout** task pins itself to its slot's devices and serves one engine
  (:mod:`oreal.launch.rollout_service`); tasks of a rollout node beyond its engines end at once;
* a **trainer** task trains its rank's part; rank 0 reaches the engines as one fleet
  (:mod:`oreal.launch.fleet`).

In a multi-task job every task watches the run's ``status.json`` and exits when another task
failed, and every task turns the time-limit / preemption signals into a stop request that
the trainer ranks agree on at the end of the step. After the stop, every rank has saved;
trainer rank 0 then requeues the job once (``scontrol requeue``), under submitit and under the
plain sbatch scripts alike.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from oreal.config.schema import Config
from oreal.launch.layout import EngineSlot, split_evenly
from oreal.launch.rendezvous import Rendezvous
from oreal.launch.roles import Role, role_of_this_task
from oreal.trainer.signals import receive_stop_signals
from oreal.trainer.status import FailureWatch, read_status, recorded_failure, write_status

EXIT_STOPPED = 75  # EX_TEMPFAIL: stopped by a signal and not requeued, resume me


def in_slurm_job() -> bool:
    return "SLURM_JOB_ID" in os.environ and "SLURM_PROCID" in os.environ


def run_task(cfg: Config, overrides: Sequence[str] = ()) -> str:
    """Play this task's role; returns its outcome ("finished", "stopped", "requeued",
    "served", "idle"). Failures are recorded in the run folder and raised. ``overrides``
    (the command line) are recorded in the run folder."""
    run_dir = Path(cfg.run_dir)
    role = role_of_this_task(cfg)
    if role.name == "idle":
        return "idle"
    _limit_threads()
    if role.name == "all":
        from oreal.trainer import run

        outcome = run(cfg, run_dir, overrides=overrides)
        return requeue(cfg, run_dir) if outcome == "stopped" else outcome
    rendezvous = Rendezvous(run_dir)
    _forward_stop_signals(rendezvous)
    watch = FailureWatch(run_dir).start()
    try:
        if role.name == "rollout":
            return serve_rollouts(cfg, run_dir, role)
        return train_remote(cfg, run_dir, rendezvous, overrides)
    finally:
        watch.stop()


def _limit_threads() -> None:
    """One intra-op thread per CPU Slurm gave the task (torch would take the whole host)."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus:
        import torch

        torch.set_num_threads(int(cpus))


def _forward_stop_signals(rendezvous: Rendezvous) -> None:
    """A stop signal that reaches any task becomes a stop request in the rendezvous, which
    the trainer ranks read at the end of the step (a rollout task itself keeps serving until
    the trainer closes it)."""
    receive_stop_signals(lambda signum: rendezvous.request_stop(f"{signal.Signals(signum).name} at {os.uname().nodename}"))


# ---- rollout tasks ----------------------------------------------------------------------------
def pin_to_slot(slot: EngineSlot, tensor_parallel_size: int) -> str:
    """Restrict this process to its slot's devices before any engine starts; returns what
    it now sees (recorded in the rendezvous, checked by the tests)."""
    if slot.device_kind == "cuda":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(max(slot.devices) + 1)]
        if max(slot.devices) >= len(ids):
            raise RuntimeError(f"{slot.describe()} needs GPU {max(slot.devices)} but this task sees {len(ids)} "
                               f"(CUDA_VISIBLE_DEVICES={visible}); give each rollout task the whole node's GPUs")
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids[d] for d in slot.devices)
        return f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}"
    import torch

    os.sched_setaffinity(0, slot.devices)
    torch.set_num_threads(len(slot.devices))
    # vLLM's CPU backend binds its OpenMP threads itself: one core list per worker
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "|".join(",".join(map(str, part)) or str(slot.devices[0])
                                                        for part in split_evenly(list(slot.devices), tensor_parallel_size))
    return f"cpus={','.join(map(str, sorted(os.sched_getaffinity(0))))}"


def serve_rollouts(cfg: Config, run_dir: Path, role: Role) -> str:
    from oreal.engines.factory import build_rollout_engine
    from oreal.launch.rollout_service import RolloutServer
    from oreal.trainer.setup import starting_model

    slot = role.engine
    with recorded_failure(run_dir, f"rollout engine {slot.index}"):
        seen = pin_to_slot(slot, cfg.rollout.tensor_parallel_size)
        print(f"oreal: {slot.describe()} on {os.uname().nodename}: {seen}", file=sys.stderr, flush=True)
        engine = build_rollout_engine(cfg, starting_model(cfg, progress=False))
        try:
            RolloutServer(engine, run_dir, slot, cfg.rollout, visible=seen).serve()
        finally:
            engine.close()
    return "served"


# ---- trainer tasks ----------------------------------------------------------------------------
def train_remote(cfg: Config, run_dir: Path, rendezvous: Rendezvous, overrides: Sequence[str]) -> str:
    from oreal.launch.fleet import RolloutFleet
    from oreal.launch.roles import fleet
    from oreal.trainer import run

    num_engines = len(fleet(cfg))
    outcome = run(cfg, run_dir, rollout_builder=lambda: RolloutFleet.connect(run_dir, num_engines, cfg.rollout),
                  stop_requested=rendezvous.stop_requested, overrides=overrides)
    if outcome == "stopped" and int(os.environ.get("RANK", "0")) == 0:
        return requeue(cfg, run_dir)
    return outcome


def requeue(cfg: Config, run_dir: Path) -> str:
    """Put the job back in the queue (every rank has saved); "requeued", or "stopped" when
    this job may not requeue (not in Slurm, or ``cluster.max_requeues`` reached)."""
    job, restarts = os.environ.get("SLURM_JOB_ID"), int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    if not in_slurm_job() or job is None:
        return "stopped"
    if restarts >= cfg.cluster.max_requeues:
        _note(run_dir, f"not requeued: {restarts} requeues already (cluster.max_requeues={cfg.cluster.max_requeues})")
        return "stopped"
    done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        _note(run_dir, f"`scontrol requeue {job}` failed: {(done.stderr or done.stdout).strip()}")
        return "stopped"
    _note(run_dir, f"requeued job {job} (restart {restarts + 1})")
    return "requeued"


def _note(run_dir: Path, text: str) -> None:
    status = read_status(run_dir)
    write_status(run_dir, "stopped", step=status.step if status else None, task="trainer rank 0",
                 reason=((status.reason + "; ") if status and status.reason else "") + text)
    print(f"oreal: {text}", file=sys.stderr, flush=True)
