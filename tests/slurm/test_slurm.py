"""Launching through a real Slurm cluster (tests/slurm/local_cluster.sh: two virtual nodes).

Each test submits with the same command a user types, ``python -m oreal.train -m
cluster=local_slurm ...``, from its own folder (job ids restart on a fresh cluster, so
submitit folders must never be shared), and checks the run folders the jobs leave.
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.trainer.conftest import fast_overrides
from tests.trainer.wandb_reader import offline_runs, run_info

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    if shutil.which("sinfo") is None:
        pytest.skip("no Slurm here: as root, `tests/slurm/local_cluster.sh start` starts one (.ci/run does)")
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True)
    if nodes.returncode != 0 or len(nodes.stdout.split("\n")) < 2:
        pytest.skip(f"the Slurm cluster does not answer (`sinfo`: {nodes.stderr.strip() or nodes.stdout.strip()}); "
                    "start it with `tests/slurm/local_cluster.sh start`")


def sweep_command(sweep_dir: Path, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "oreal.train", "-m", "cluster=local_slurm", f"hydra.sweep.dir={sweep_dir}", *overrides]


def tiny_run(model_dir, steps: int, rollout: str = "hf", extra=()) -> list[str]:
    """The trainer tests' few-second run, without a fixed run_dir (the sweep names it)."""
    out = [o for o in fast_overrides(model_dir, "unused", steps=steps, extra=extra) if not o.startswith("run_dir=")]
    return [f"rollout={rollout}" if o == "rollout=hf" else o for o in out]


def run_folders(sweep_dir: Path) -> list[Path]:
    return sorted(p.parent for p in sweep_dir.glob("*/metrics.jsonl"))


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def submit(tmp_path: Path, name: str, overrides: list[str]) -> Path:
    sweep = tmp_path / name
    proc = subprocess.run(sweep_command(sweep, overrides), cwd=tmp_path, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:] + job_logs(sweep)
    return sweep


def job_logs(sweep: Path) -> str:
    return "".join(f"\n--- {p}\n{p.read_text()[-3000:]}" for p in sorted(sweep.glob(".submitit/*/*_log.err")))


def test_two_node_job_rolls_out_on_one_node_and_trains_on_the_other(tmp_path, warm_model_dir):
    sweep = submit(tmp_path, "two_nodes", tiny_run(warm_model_dir, steps=2, rollout="vllm",
                                                   extra=["rollout.kv_cache_gb=0.25", "rollout.max_model_len=512"]))
    [run] = run_folders(sweep)
    # named from the overrides, cut with a hash where they would make too long a file name
    assert run.name.startswith("algo.actor_freeze_steps=1,data.cpu_task.levels=[1],") and len(run.name) == 120
    rows = metrics(run)
    assert [r["step"] for r in rows if "train/num_samples" in r] == [1, 2]
    server = json.loads((run / "rendezvous" / "rollout.json").read_text())
    trainer = json.loads((run / "run_info.json").read_text())["slurm"]
    assert (server["node"], trainer["node"]) == ("n1", "n2")
    assert server["job_id"] == trainer["job_id"]
    # weights went over the network every step, and vLLM on n1 then samples what the policy on n2 scores
    assert all(r["perf/weight_sync_s"] > 0 for r in rows if "perf/weight_sync_s" in r)
    assert rows[-1]["rollout/logprob_gap"] < 1e-3


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


def test_signalled_job_requeues_and_ends_like_an_uninterrupted_one(tmp_path, warm_model_dir):
    overrides = tiny_run(warm_model_dir, steps=6)
    sweep = tmp_path / "requeued"
    submitter = subprocess.Popen(sweep_command(sweep, overrides), cwd=tmp_path, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 900
        while not (runs := run_folders(sweep)) or max((r["step"] for r in metrics(runs[0])), default=0) < 2:
            assert submitter.poll() is None and time.monotonic() < deadline, "the job never reached step 2"
            time.sleep(1)
        job_id = json.loads((runs[0] / "run_info.json").read_text())["slurm"]["job_id"]
        # what Slurm sends before a time limit or preemption; submitit checkpoints and requeues
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
        output, _ = submitter.communicate(timeout=1500)
    finally:
        if submitter.poll() is None:
            submitter.kill()
    assert submitter.returncode == 0, output[-3000:] + job_logs(sweep)
    [run] = run_folders(sweep)
    assert json.loads((run / "run_info.json").read_text())["slurm"]["restart"] == "1"
    reference = run_folders(submit(tmp_path, "uninterrupted", overrides))[0]

    def final(path):
        last = metrics(path)[-1]
        return {k: v for k, v in last.items() if not k.startswith(("perf/", "time/"))}

    assert final(run)["step"] == 6
    assert final(run) == pytest.approx(final(reference), rel=1e-6, abs=1e-9)
    # the W&B run continued under one id (the killed incarnation's file may end before its run record)
    run_id = (run / "wandb_run_id").read_text().strip()
    files = offline_runs(run)
    assert len(files) == 2 and {Path(f).parent.name.rsplit("-", 1)[1] for f in files} == {run_id}
    assert run_info(files[-1])["id"] == run_id
