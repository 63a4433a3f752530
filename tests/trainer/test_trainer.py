"""The training loop end to end on CPU (HF rollouts for determinism; vLLM in the slow test)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oreal.config import load_config
from oreal.trainer import run
from tests.trainer.conftest import fast_overrides
from tests.trainer.wandb_reader import history, offline_runs, run_info

REQUIRED = [
    "reward/mean", "reward/pass_rate", "reward/all_correct_frac", "reward/all_wrong_frac", "advantage/mean", "advantage/std",
    "loss/positive", "loss/negative", "loss/kl", "loss/token_rm", "token_rm/accuracy", "kl/ref", "entropy/mean",
    "response/mean_length", "response/truncation_rate", "reward/reason/correct", "reward/reason/incorrect",
    "reward/reason/timeout", "reward/timeout_rate", "perf/time/rollout", "perf/time/grade", "perf/time/update",
    "perf/time/sync", "perf/rollout_tokens_per_s", "perf/weight_sync_s", "rollout/logprob_gap", "optim/policy_lr",
    "optim/token_rm_lr", "optim/policy_grad_norm", "optim/token_rm_grad_norm",
]


def records(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def comparable(rows):
    """Everything but wall-clock figures."""
    return [{k: v for k, v in r.items() if not k.startswith(("perf/", "time/"))} for r in rows]


@pytest.fixture(scope="module")
def finished_run(warm_model_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    assert run(load_config(fast_overrides(warm_model_dir, run_dir))) == "finished"
    return run_dir


def test_every_named_metric_is_logged_to_jsonl_and_wandb(finished_run):
    rows = records(finished_run)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    trained = [r for r in rows[2:] if "loss/positive" in r]  # after the frozen first step
    assert trained, "no step had a mixed group to train on"
    for key in REQUIRED:
        assert key in trained[0], key
    assert rows[1]["train/policy_frozen"] == 1.0 and rows[2]["train/policy_frozen"] == 0.0
    assert "eval/cpu_heldout/pass@1" in rows[0] and "eval/cpu_heldout/pass@1" in rows[2] and "eval/math500_100/pass@1" in rows[4]
    # HF rollouts share the policy's weights after every sync: the gap is float noise
    assert all(r["rollout/logprob_gap"] < 1e-4 for r in trained)

    [wandb_file] = offline_runs(finished_run)
    logged = {row["_step"]: row for row in history(wandb_file)}
    for r in rows:
        for key in REQUIRED + ["eval/cpu_heldout/pass@1"]:
            if key in r:
                assert logged[r["step"]][key] == pytest.approx(r[key]), key
    info = run_info(wandb_file)
    assert info["group"] == "default_cpu" and info["job_type"] == "oreal"
    assert info["config"]["algo"]["name"] == "oreal" and len(info["config"]["git_sha"]) >= 7


def test_run_folder_holds_config_trajectories_and_evals(finished_run):
    assert (finished_run / "config.yaml").exists() and json.loads((finished_run / "run_info.json").read_text())["git_sha"]
    traj = [json.loads(l) for l in (finished_run / "trajectories" / "step_2.jsonl").read_text().splitlines()]
    assert len(traj) == 24 and {"problem", "response", "reward", "advantage", "kept", "reason"} <= traj[0].keys()
    kept = [t for t in traj if t["kept"]]
    assert all(t["reward"] in (1.0, -1.0) for t in traj)
    # OREAL's pair filter: per kept group one correct and one incorrect sample
    assert sum(t["reward"] > 0 for t in kept) == sum(t["reward"] < 0 for t in kept)
    assert (finished_run / "eval" / "step_000002_cpu_heldout.summary.json").exists()
    assert (finished_run / "checkpoints" / "latest").read_text().strip() == "step_000004"


def test_same_seed_same_metrics(warm_model_dir, finished_run, tmp_path):
    run(load_config(fast_overrides(warm_model_dir, tmp_path)))
    assert comparable(records(tmp_path)) == comparable(records(finished_run))
    other = tmp_path / "seed1"
    run(load_config(fast_overrides(warm_model_dir, other, steps=2, extra=["seed=1"])))
    assert comparable(records(other))[1] != comparable(records(tmp_path))[1]


def test_resuming_a_finished_run_does_nothing_more(warm_model_dir, finished_run):
    before = records(finished_run)
    assert run(load_config(fast_overrides(warm_model_dir, finished_run))) == "finished"
    assert records(finished_run) == before


def test_secrets_never_reach_the_run_folder(warm_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("OREAL_JUDGE_API_KEY", "sk-judge-MARKER-1234")
    monkeypatch.setenv("WANDB_API_KEY", "wandb-key-MARKER-5678")
    run(load_config(fast_overrides(warm_model_dir, tmp_path, steps=2, extra=["trainer.eval_at_start=false"])))
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"MARKER-1234" not in data and b"MARKER-5678" not in data, path
