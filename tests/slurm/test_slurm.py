"""Launching through a real Slurm cluster (tests/slurm/local_cluster.sh: two virtual nodes of
4 CPUs each), at the shapes the shipped configs use, scaled down.

Each test submits with the command a user types (``python -m oreal.train -m cluster=local_slurm
...`` through submitit, or ``sbatch`` on a rendered script) from its own folder (job ids
restart on a fresh cluster, so submitit folders are never shared), and checks the job's
state in ``sacct`` and the run folder it leaves. The virtual nodes are this machine's
processes: a test finds a job's tasks (and anything they started) in ``/proc`` by the Slurm
variables they carry, to kill one or to check that none outlives the job.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.trainer.conftest import fast_overrides
from tests.trainer.wandb_reader import exit_code, offline_runs, run_info

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE")
# the losses, rewards and evaluations of a step (perf/ and time/ differ between runs by nature)
COMPARED = ("loss/positive", "loss/negative", "loss/kl", "loss/token_rm", "kl/ref", "entropy/mean", "reward/mean",
            "token_rm/accuracy", "eval/cpu_heldout/pass@1")


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    if shutil.which("sinfo") is None:
        pytest.skip("no Slurm here: as root, `tests/slurm/local_cluster.sh start` starts one (.ci/run does)")
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True)
    if nodes.returncode != 0 or len(nodes.stdout.split("\n")) < 2:
        pytest.skip(f"the Slurm cluster does not answer (`sinfo`: {nodes.stderr.strip() or nodes.stdout.strip()}); "
                    "start it with `tests/slurm/local_cluster.sh start`")


# ---- helpers -----------------------------------------------------------------------------------
def sweep_command(sweep_dir: Path, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "oreal.train", "-m", "cluster=local_slurm", f"hydra.sweep.dir={sweep_dir}", *overrides]


def tiny_run(model_dir, steps: int, rollout: str = "hf", extra=()) -> list[str]:
    """The trainer tests' few-second run, without a fixed run_dir (the sweep names it)."""
    out = [o for o in fast_overrides(model_dir, "unused", steps=steps, extra=extra) if not o.startswith("run_dir=")]
    return [f"rollout={rollout}" if o == "rollout=hf" else o for o in out]


VLLM = ["rollout.kv_cache_gb=0.25", "rollout.max_model_len=512"]
# 2 nodes x 4 tasks: node 1 runs two vLLM engines (tasks 3-4 have nothing to do), node 2 four
# trainer ranks of Megatron at TP 2 x DP 2
FLEET_MEGATRON = ["cluster.tasks_per_node=4", "rollout.engines_per_node=2", "engine=megatron", "engine.tensor_parallel_size=2"]
# issue 19's second reproduction: 2 tasks per node, set on the launcher itself. Node 1 serves one
# HF engine (its second task has nothing to do), node 2 holds two data-parallel torch trainer ranks.
TWO_TASKS_PER_NODE = "hydra.launcher.tasks_per_node=2"
# A job one of whose tasks was SIGKILLed: sacct reports the job FAILED with the signal's number as
# its exit code (9, measured on the local Slurm 22.05), whatever the other tasks' exit codes.
KILLED = ("FAILED", f"{int(signal.SIGKILL)}:0")


def grpo_run(model_dir, steps: int, extra=()) -> list[str]:
    """``tiny_run`` with GRPO (no token RM, so no actor freeze), as issue 19 reproduced it."""
    out = [o for o in tiny_run(model_dir, steps, extra=extra) if not o.startswith("algo.actor_freeze_steps=")]
    return [*out, "algo=grpo", "algo.actor_freeze_steps=0"]


def run_folders(sweep_dir: Path) -> list[Path]:
    return sorted({p.parent for name in ("metrics.jsonl", "status.json") for p in sweep_dir.glob(f"*/{name}")})


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def by_step(rows: list[dict]) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for r in rows:
        assert r["step"] not in out, f"step {r['step']} logged twice: only trainer rank 0 writes metrics"
        out[r["step"]] = r
    return out


def assert_same_metrics(rows: dict[int, dict], reference: dict[int, dict], steps, tol=2e-5):
    for step in steps:
        for key in COMPARED:
            if key in reference[step]:
                assert rows[step][key] == pytest.approx(reference[step][key], rel=tol, abs=tol), (step, key)


def job_id(run_dir: Path) -> str:
    """The run's job as sacct and scancel name it (an array task's raw id can name the array)."""
    return json.loads((run_dir / "status.json").read_text())["slurm_job"]


def raw_job(run_dir: Path) -> str:
    """The ``SLURM_JOB_ID`` the run's tasks see (an array task's own id, not ``<array>_<task>``)."""
    return json.loads((run_dir / "status.json").read_text())["job_id"]


def sacct(job: str, timeout_s: float = 120) -> tuple[str, str]:
    """The job's final state and exit code (``FAILED``, ``1:0``) once Slurm has settled."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = subprocess.run(["sacct", "-j", job, "-X", "-n", "-P", "-o", "State,ExitCode"], capture_output=True, text=True).stdout
        state, _, code = out.strip().splitlines()[0].partition("|") if out.strip() else ("", "", "")
        if state.split()[0:1] and state.split()[0] in FINAL_STATES:
            return state.split()[0], code
        assert time.monotonic() < deadline, f"job {job} still {state!r} after {timeout_s:.0f} s"
        time.sleep(1)


def submit(tmp_path: Path, name: str, overrides: list[str], expect_ok: bool = True) -> Path:
    sweep = tmp_path / name
    proc = subprocess.run(sweep_command(sweep, overrides), cwd=tmp_path, capture_output=True, text=True, timeout=1500)
    if expect_ok:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:] + job_logs(sweep)
    return sweep


def job_logs(sweep: Path) -> str:
    return "".join(f"\n--- {p}\n{p.read_text()[-3000:]}" for p in sorted(sweep.glob(".submitit/*/*_log.err")))


def wait_for_step(sweep: Path, step: int, alive=lambda: True, timeout_s=900) -> Path:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = [r for r in run_folders(sweep) if (r / "metrics.jsonl").exists()]
        if runs and any(row["step"] >= step for row in metrics(runs[0]) if "train/num_samples" in row):
            return runs[0]
        assert alive() and time.monotonic() < deadline, f"the job never reached step {step}" + job_logs(sweep)
        time.sleep(1)


def reference_run(tmp_path: Path, overrides: list[str]) -> dict[int, dict]:
    """The same config in one local process (torch engine, one in-process engine)."""
    run_dir = tmp_path / "reference"
    local = [o for o in overrides if not o.startswith(("cluster.", "rollout.engines_per_node", "engine"))]
    proc = subprocess.run([sys.executable, "-m", "oreal.train", f"run_dir={run_dir}", *local], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return by_step(metrics(run_dir))


def first_status(seen: list[dict], state: str, restart: str = "0") -> dict:
    found = [r for r in seen if r["state"] == state and r["restart"] == restart]
    assert found, f"status.json never said {state!r} in incarnation {restart}: " \
                  f"{[(r['state'], r['step'], r['restart']) for r in seen]}"
    return found[0]


class StatusHistory:
    """The records a run's ``status.json`` goes through while a job runs, polled from a thread:
    what a requeued job's first incarnation wrote (``stopped`` at step N) before the next one
    replaced it."""

    def __init__(self, run_dir: Path, poll_s: float = 0.2):
        self.run_dir, self.poll_s = run_dir, poll_s
        self.seen: list[dict] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True, name="status-history")

    def __enter__(self) -> "StatusHistory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self._record()  # the last word

    def _poll(self) -> None:
        while not self._done.wait(self.poll_s):
            self._record()

    def _record(self) -> None:
        try:
            record = json.loads((self.run_dir / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return
        if not self.seen or record != self.seen[-1]:
            self.seen.append(record)


def assert_saved_by_every_rank(ckpt: Path, step: int, num_ranks: int = 4) -> None:
    """A complete sharded checkpoint of ``step``: the trainer state, each rank's RNG state, and a
    dist-checkpoint shard file (``__<rank>_<i>.distcp``) from every rank."""
    assert json.loads((ckpt / "trainer.json").read_text())["step"] == step, ckpt
    assert sorted(p.name for p in ckpt.glob("rng_*.pt")) == [f"rng_{r}.pt" for r in range(num_ranks)], ckpt
    assert {p.name.split("_")[2] for p in (ckpt / "engine").glob("__*_*.distcp")} == {str(r) for r in range(num_ranks)}, ckpt


# ---- the processes of a job (the virtual nodes are this machine's processes) --------------------
def _slurm_env(pid: int) -> dict[str, str]:
    """The Slurm variables ``pid`` started with (none for a zombie, a vanished or a foreign process)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (v.partition("=") for v in raw.decode(errors="replace").split("\0"))
    return {k: v for k, _, v in pairs if k.startswith("SLURM_")}


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def job_processes(job: str) -> dict[int, dict[str, str]]:
    """pid -> Slurm variables of every live process of job ``job`` (its raw id): the batch script,
    srun, the tasks and whatever they started (grading workers, W&B's service, engine workers)."""
    pids = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return {pid: env for pid in pids if pid != os.getpid() and (env := _slurm_env(pid)).get("SLURM_JOB_ID") == job}


def task_pids(job: str) -> dict[int, int]:
    """SLURM_PROCID -> pid of each live task of the job's step: the processes slurmstepd started
    (the batch script and srun have no SLURM_STEP_ID; a task's children have the task as parent)."""
    procs = job_processes(job)
    return {int(env["SLURM_PROCID"]): pid for pid, env in procs.items()
            if "SLURM_STEP_ID" in env and _parent(pid) not in procs}


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"


def assert_no_process_left(job: str, grace_s: float = 30) -> None:
    """Once the job has ended, no process of it lives on (a few seconds' grace for children that
    notice their parent's exit, such as W&B's service)."""
    deadline = time.monotonic() + grace_s
    while left := job_processes(job):
        assert time.monotonic() < deadline, f"processes of job {job} outlived it by {grace_s:.0f} s: " + "; ".join(
            f"{pid} (task {env.get('SLURM_PROCID', '?')}): {_command(pid)}" for pid, env in left.items())
        time.sleep(1)


def venv_env() -> dict:
    """sbatch passes the environment on: the jobs find this interpreter's ``python`` first."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")


# ---- a fleet and many trainer ranks ------------------------------------------------------------
@pytest.fixture(scope="module")
def fleet_overrides(warm_model_dir):
    return tiny_run(warm_model_dir, steps=4, rollout="vllm",
                    extra=[*VLLM, "trainer.checkpoint_every=2", "trainer.keep_last_checkpoints=5"])


@pytest.fixture(scope="module")
def reference(fleet_overrides, tmp_path_factory):
    return reference_run(tmp_path_factory.mktemp("reference"), fleet_overrides)


class Preempted(NamedTuple):
    run: Path
    statuses: list[dict]  # every status.json record seen from the signal on (StatusHistory)


@pytest.fixture(scope="module")
def preempted_fleet_run(fleet_overrides, tmp_path_factory):
    """Two vLLM engines + Megatron TP 2 x DP 2, sent submitit's time-limit signal (USR2) after step 2."""
    tmp = tmp_path_factory.mktemp("fleet")
    sweep = tmp / "sweep"
    launcher = subprocess.Popen(sweep_command(sweep, [*fleet_overrides, *FLEET_MEGATRON]), cwd=tmp,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run = wait_for_step(sweep, 2, alive=lambda: launcher.poll() is None)
        with StatusHistory(run) as history:
            subprocess.run(["scancel", "--signal=USR2", job_id(run)], check=True)
            output, _ = launcher.communicate(timeout=1500)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, output[-3000:] + job_logs(sweep)
    return Preempted(run, history.seen)


def test_a_fleet_and_megatron_ranks_train_like_one_process_through_a_requeue(preempted_fleet_run, reference):
    run = preempted_fleet_run.run
    assert sacct(job_id(run)) == ("COMPLETED", "0:0")
    status = json.loads((run / "status.json").read_text())
    assert (status["state"], status["step"], status["restart"]) == ("finished", 4, "1")  # requeued exactly once
    rows = by_step(metrics(run))
    assert sorted(rows) == [0, 1, 2, 3, 4]
    # both engines answered every step, and each was in sync with the policy after every weight sync
    for step in range(1, 5):
        assert rows[step]["rollout/engine0/num_prompts"] == rows[step]["rollout/engine1/num_prompts"] == 3
        assert rows[step]["rollout/engine0/logprob_gap"] < 1e-3 and rows[step]["rollout/engine1/logprob_gap"] < 1e-3
        assert rows[step]["perf/weight_sync_gb_per_s"] > 0
    # each engine pinned to its own core, in both incarnations of the job
    for incarnation in sorted((run / "rendezvous").iterdir()):
        seen = [json.loads((incarnation / f"engine-{i}.json").read_text())["visible"] for i in (0, 1)]
        assert seen[0] != seen[1] and all(s.startswith("cpus=") for s in seen), seen
    # the first incarnation stopped after the step in progress when USR2 came (step 3: the signal
    # followed step 2's metrics) and saved it; the periodic saves are steps 2 and 4
    stopped = first_status(preempted_fleet_run.statuses, "stopped")
    assert stopped["step"] == 3 and "USR2" in stopped["reason"], stopped
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == ["step_000002", "step_000003", "step_000004"]
    # every trainer rank wrote its part of each sharded checkpoint, the one the stop saved included
    for step in (2, 3, 4):
        assert_saved_by_every_rank(run / "checkpoints" / f"step_{step:06d}", step)
    # Megatron TP 2 x DP 2 with two remote engines and a requeue == one process with one local engine
    assert_same_metrics(rows, reference, range(5))


def test_an_sbatch_job_resumes_at_another_layout_and_requeues_on_usr1(preempted_fleet_run, reference, warm_model_dir, tmp_path):
    """The TP 2 x DP 2 checkpoint of step 2, resumed at TP 1 x DP 4 by the plain sbatch script
    with four tasks per node, signalled like a time limit (USR1) while step 3 is in progress: it
    stops after step 3, every rank saves it, and the requeued job trains step 4 from there."""
    fleet_run = preempted_fleet_run.run
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copytree(fleet_run / "checkpoints" / "step_000002", run_dir / "checkpoints" / "step_000002")
    (run_dir / "checkpoints" / "latest").write_text("step_000002\n")
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics(fleet_run) if r["step"] <= 2))
    overrides = [*tiny_run(warm_model_dir, steps=4, rollout="vllm", extra=[*VLLM, "trainer.checkpoint_every=2"]),
                 "cluster.tasks_per_node=4", "engine=megatron", "engine.tensor_parallel_size=1"]
    rendered = subprocess.run([sys.executable, "-m", "oreal.cli", "sbatch", "cluster=local_slurm", *overrides],
                              capture_output=True, text=True, check=True).stdout
    script = tmp_path / "job.sbatch"
    script.write_text(rendered)

    def logs() -> str:
        return "".join(p.read_text()[-3000:] for p in tmp_path.glob("*.out"))

    with StatusHistory(run_dir) as history:
        out = subprocess.run(["sbatch", "--parsable", str(script), f"run_dir={run_dir}"], cwd=tmp_path, env=venv_env(),
                             capture_output=True, text=True, check=True)
        job = out.stdout.strip().split(";")[0]
        # signal once the engine serves and the four trainer ranks have met (every task is past the
        # entry point's signal set-up) and before the trainer can have generated: step 3, the first
        # this job trains, is in progress
        engine = run_dir / "rendezvous" / f"{job}.0" / "engine-0.json"
        ranks = run_dir / ".ranks" / f"{job}.0"
        deadline = time.monotonic() + 900
        while not (engine.exists() and len(list(ranks.glob("*"))) == 4):
            assert time.monotonic() < deadline, "the sbatch job's engine and trainer ranks never started" + logs()
            time.sleep(0.5)
        subprocess.run(["scancel", "--signal=USR1", job], check=True)
        state = sacct(job, timeout_s=900)
    assert state == ("COMPLETED", "0:0"), logs()
    stopped = first_status(history.seen, "stopped")
    assert (stopped["job_id"], stopped["step"]) == (job, 3) and "USR1" in stopped["reason"], stopped
    # the stop's save (step 3: the copied checkpoint is step 2, the periodic one step 4) and the
    # requeued job's final one hold every rank's part
    for step in (3, 4):
        assert_saved_by_every_rank(run_dir / "checkpoints" / f"step_{step:06d}", step)
    status = json.loads((run_dir / "status.json").read_text())
    assert (status["state"], status["step"], status["restart"]) == ("finished", 4, "1")
    rows = by_step(metrics(run_dir))
    assert sorted(rows) == [0, 1, 2, 3, 4]
    assert_same_metrics(rows, reference, range(5))


# ---- two tasks per node, data-parallel trainer ranks --------------------------------------------
def test_two_tasks_per_node_train_with_two_data_parallel_ranks_like_one_process(tmp_path, warm_model_dir):
    """Issue 19's second reproduction, which crashed at the first update: one HF engine (and an
    idle task) on node 1, two data-parallel torch trainer ranks on node 2, GRPO, 3 steps."""
    overrides = grpo_run(warm_model_dir, steps=3)
    sweep = submit(tmp_path, "dp2", [*overrides, TWO_TASKS_PER_NODE])
    [run] = run_folders(sweep)
    assert sacct(job_id(run)) == ("COMPLETED", "0:0")
    status = json.loads((run / "status.json").read_text())
    assert (status["state"], status["step"], status["task"]) == ("finished", 3, "trainer rank 0"), status
    # the layout: one engine announced itself, and both trainer ranks took part
    [incarnation] = (run / "rendezvous").iterdir()
    assert sorted(p.name for p in incarnation.glob("engine-*.json")) == ["engine-0.json"]
    assert sorted(p.name for p in (run / ".ranks" / incarnation.name).iterdir()) == ["0", "1"]
    # one row per step, each once (by_step): trainer rank 0 alone writes metrics
    rows = by_step(metrics(run))
    assert sorted(rows) == [0, 1, 2, 3]
    assert [rows[step]["train/num_samples"] for step in (1, 2, 3)] == [6 * 4] * 3  # one draw of prompts for both ranks
    shown = subprocess.run([sys.executable, "-m", "oreal.cli", "status", str(sweep)], capture_output=True, text=True)
    assert shown.returncode == 0 and " finished  3/3 " in shown.stdout, shown.stdout + shown.stderr
    # two data-parallel ranks and a remote engine == one process with a local engine
    assert_same_metrics(rows, reference_run(tmp_path, overrides), range(4))


# ---- failures ----------------------------------------------------------------------------------
def kill_a_task_after_step_1(sweep: Path, overrides: list[str], victim) -> tuple[Path, str, tuple, float]:
    """Submit a one-point sweep, and once it has logged step 1 SIGKILL the task whose pid
    ``victim(run, tasks, engines, trainer_pid)`` returns (``tasks``: pid by SLURM_PROCID;
    ``engines``: the rendezvous entries; ``trainer_pid``: rank 0's, from its "running" status).
    Returns the run folder, the job, its final sacct state and the seconds it took to end."""
    launcher = subprocess.Popen(sweep_command(sweep, overrides), cwd=sweep.parent, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        run = wait_for_step(sweep, 1, alive=lambda: launcher.poll() is None)
        job = raw_job(run)
        [incarnation] = (run / "rendezvous").iterdir()
        engines = [json.loads(p.read_text()) for p in sorted(incarnation.glob("engine-*.json"))]
        trainer_pid = json.loads((run / "status.json").read_text())["pid"]
        os.kill(victim(run, task_pids(job), engines, trainer_pid), signal.SIGKILL)  # virtual nodes: this machine's processes
        killed_at = time.monotonic()
        state = sacct(job_id(run), timeout_s=300)
        ended_in = time.monotonic() - killed_at
        launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    return run, job, state, ended_in


def test_a_killed_engine_fails_the_job_within_the_timeout(tmp_path, warm_model_dir):
    """Two HF engines, two data-parallel trainer ranks; engine 1 is killed after step 1."""
    overrides = tiny_run(warm_model_dir, steps=6, extra=["cluster.tasks_per_node=2", "rollout.engines_per_node=2",
                                                         "rollout.request_timeout_s=120", "trainer.checkpoint_every=100"])

    def engine_1(run, tasks, engines, trainer_pid):
        # every task of the job as Slurm started it: engines 0-1 on node 1, trainer ranks 0-1 on node 2
        assert sorted(tasks) == [0, 1, 2, 3] and [tasks[0], tasks[1], tasks[2]] == [e["pid"] for e in engines] + [trainer_pid]
        return engines[1]["pid"]

    run, job, state, ended_in = kill_a_task_after_step_1(tmp_path / "killed", overrides, engine_1)
    assert state == KILLED, state
    assert ended_in < 120, f"the job took {ended_in:.0f} s to end after the engine died"
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and "rollout engine 1 on" in status["reason"], status
    assert "last heartbeat" in status["reason"]
    assert_no_process_left(job)  # neither engine, neither trainer rank, nothing they started
    # what was trained is saved and loads: the checkpoint the failure wrote is the last logged step
    latest = (run / "checkpoints" / "latest").read_text().strip()
    saved_step = json.loads((run / "checkpoints" / latest / "trainer.json").read_text())["step"]
    assert saved_step == max(r["step"] for r in metrics(run)) >= 1
    import torch

    state_dict = torch.load(run / "checkpoints" / latest / "engine.pt", weights_only=False)
    assert {"policy", "policy_opt", "token_rm"} <= set(state_dict)
    [wandb_file] = offline_runs(run)
    assert exit_code(wandb_file) == 1  # the W&B run is marked failed


def test_a_killed_trainer_rank_fails_the_whole_job_within_a_minute(tmp_path, warm_model_dir):
    """Issue 19's second layout (one HF engine and an idle task on node 1, two data-parallel torch
    trainer ranks on node 2); trainer rank 1 is SIGKILLed after step 1. Rank 0 finds its peer gone
    at its next collective and records the failure; the engine's task follows."""
    overrides = [*grpo_run(warm_model_dir, steps=6), TWO_TASKS_PER_NODE]
    sweep = tmp_path / "rank_killed"

    def trainer_rank_1(run, tasks, engines, trainer_pid):
        # the tasks as Slurm started them: the engine (task 0), trainer ranks 0 and 1 (tasks 2, 3);
        # node 1's second task (1) had nothing to do and may have ended already
        assert {0, 2, 3} <= set(tasks) and [tasks[0], tasks[2]] == [engines[0]["pid"], trainer_pid], tasks
        return tasks[3]

    run, job, state, ended_in = kill_a_task_after_step_1(sweep, overrides, trainer_rank_1)
    assert state == KILLED, state
    assert ended_in < 60, f"the job took {ended_in:.0f} s to end after trainer rank 1 died" + job_logs(sweep)
    # the rank that found its peer gone says so, with its host (all virtual nodes are this machine)
    status = json.loads((run / "status.json").read_text())
    assert (status["state"], status["task"], status["host"]) == ("failed", "trainer rank 0", socket.gethostname()), status
    assert status["reason"] and status["step"] >= 1, status
    shown = subprocess.run([sys.executable, "-m", "oreal.cli", "status", str(sweep)], capture_output=True, text=True)
    assert shown.returncode == 1, shown.stdout + shown.stderr
    [line] = shown.stdout.splitlines()[1:]
    assert " failed " in line and f"trainer rank 0 on {status['host']}: " in line, line
    assert_no_process_left(job)  # the engine, both trainer ranks, nothing they started
    [wandb_file] = offline_runs(run)
    assert exit_code(wandb_file) == 1  # the W&B run is marked failed


def test_a_sweep_with_a_failing_point_fails_that_point_only(tmp_path, warm_model_dir):
    overrides = [o for o in tiny_run(warm_model_dir, steps=2) if not o.startswith("model.path=")]
    sweep = submit(tmp_path, "sweep", [*overrides, f"model.path={warm_model_dir},/nonexistent/model"], expect_ok=False)
    ok, bad = sorted(run_folders(sweep), key=lambda p: "nonexistent" in (p / "overrides.yaml").read_text())
    assert sacct(job_id(ok)) == ("COMPLETED", "0:0")
    bad_status = json.loads((bad / "status.json").read_text())
    assert bad_status["state"] == "failed" and bad_status["step"] is None
    assert bad_status["reason"] == "model.path=/nonexistent/model: no such folder, and not a Hugging Face hub id " \
                                   "(like Qwen/Qwen2.5-7B); give a local model folder or a hub id"
    assert sacct(bad_status["slurm_job"]) == ("FAILED", "1:0")
    shown = subprocess.run([sys.executable, "-m", "oreal.cli", "status", str(sweep)], capture_output=True, text=True)
    assert shown.returncode == 1  # a failed run in the sweep
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()[1:]}
    assert " finished  2/2 " in lines[ok.name] and " failed " in lines[bad.name] and "no such folder" in lines[bad.name]
    compared = subprocess.run([sys.executable, "-m", "oreal.cli", "compare", str(sweep)], capture_output=True, text=True)
    assert compared.returncode == 0, compared.stderr
    assert compared.stdout.startswith("1 runs, 1 variants") and "1 failed run(s), not in the table:" in compared.stdout
    [wandb_file] = offline_runs(ok)
    assert run_info(wandb_file)["group"] == "default_cpu" and exit_code(wandb_file) == 0


def test_multirun_of_two_variants_completes_as_one_wandb_group(tmp_path, warm_model_dir):
    # GRPO has no token RM to warm up, so neither variant freezes the policy
    overrides = [o for o in tiny_run(warm_model_dir, steps=2) if not o.startswith("algo.actor_freeze_steps=")]
    sweep = submit(tmp_path, "variants", [*overrides, "algo.actor_freeze_steps=0", "algo=oreal,grpo"])
    runs = run_folders(sweep)
    assert len(runs) == 2 and {("algo=grpo" in r.name) for r in runs} == {True, False}
    infos = []
    for run in runs:
        assert [r["step"] for r in metrics(run) if "train/num_samples" in r] == [1, 2]
        [wandb_file] = offline_runs(run)
        infos.append(run_info(wandb_file))
    assert {i["group"] for i in infos} == {"default_cpu"}
    assert sorted(i["job_type"] for i in infos) == ["grpo", "oreal"]
    assert len({i["id"] for i in infos}) == 2


def test_the_heterogeneous_job_script_runs_to_the_end(tmp_path, warm_model_dir):
    run_dir = tmp_path / "het"
    overrides = tiny_run(warm_model_dir, steps=2)
    out = subprocess.run(["sbatch", "--parsable", str(REPO / "sbatch" / "local_slurm_hetjob.sbatch"), *overrides,
                          f"run_dir={run_dir}"], cwd=tmp_path, env=venv_env(), capture_output=True, text=True, check=True)
    job = out.stdout.strip().split(";")[0].split("+")[0]
    assert sacct(job, timeout_s=900) == ("COMPLETED", "0:0"), "".join(p.read_text()[-3000:] for p in tmp_path.glob("*.out"))
    assert [r["step"] for r in metrics(run_dir) if "train/num_samples" in r] == [1, 2]
    status = json.loads((run_dir / "status.json").read_text())
    [incarnation] = (run_dir / "rendezvous").iterdir()
    # both components agreed on the rendezvous key (the leader's job id): the trainer found the engine there
    assert status["state"] == "finished" and incarnation.name == f"{job}.0" and (incarnation / "engine-0.json").exists()
