"""Run integrity and the first hour of a new user (issue 15): a run folder never mixes two
configurations, what a run needs is checked before anything is built, a damaged checkpoint or
metrics line does not end a resume, and what was trained can be exported and evaluated."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from oreal.config import load_config
from oreal.trainer import run
from oreal.trainer.identity import RunIdentityError, check_identity, differences, identity
from tests.trainer.conftest import fast_overrides


def entry(overrides, cwd=None, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "oreal.train", *overrides], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env)


# A refusal costs Python's start and oreal's imports, torch among them: 2.4-3.3 CPU seconds
# measured (experiments/bad_inputs/README.md); the issue asks for under 5 s. The bound is on the
# refusing process's CPU time, which a loaded machine hardly changes (its wall time there was 4 to
# 17 s); and transformers and vLLM, which building a tokenizer, a model or a rollout engine
# imports first, must never have been imported.
REFUSAL_CPU_BOUND_S = 5.0
HEAVY_MODULES = ("transformers", "vllm")


def timed(argv, timeout=120):
    """``python -X importtime <argv>``: the process (its stderr without the import report), the
    CPU seconds it used (user + system, its children included), and the heavy modules it imported."""
    import resource

    def cpu():
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    before = cpu()
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, timeout=timeout)
    seconds = cpu() - before
    lines = proc.stderr.splitlines()
    imported = {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")}
    proc.stderr = "".join(line + "\n" for line in lines if not line.startswith("import time:"))
    return proc, seconds, sorted(m for m in imported if m.split(".")[0] in HEAVY_MODULES)


MISSING_DATA_LINE = "oreal: data.train.math_train (path=/nonexistent/train.jsonl): no such file /nonexistent/train.jsonl"


def assert_one_line(proc, code, last):
    assert proc.returncode == code, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == last
    assert "Traceback" not in proc.stderr


# ---- run identity (no model needed) ------------------------------------------------------------
def test_identity_holds_what_shapes_results_and_nothing_else():
    base = identity(load_config([]))
    assert base["algo.name"] == "oreal" and base["seed"] == 0 and "trainer.policy_optim.lr" in base
    same = identity(load_config(["trainer.num_steps=500", "trainer.eval_every=3", "logging.wandb_mode=disabled",
                                 "engine.micro_batch_size_per_rank=2", "cluster=local_slurm", "rollout.request_timeout_s=10"]))
    assert differences(base, same) == []
    changed = identity(load_config(["algo=grpo", "trainer.policy_optim.lr=1e-4"]))
    diffs = differences(base, changed)
    assert "algo.name: 'oreal' -> 'grpo'" in diffs and "trainer.policy_optim.lr: 0.0003 -> 0.0001" in diffs


def test_a_different_config_is_refused_before_anything_loads(tmp_path):
    from oreal.trainer.identity import record_identity

    record_identity(load_config([]), tmp_path)
    check_identity(load_config(["algo=grpo"]), tmp_path)  # it never checkpointed: nothing to mix, the new run takes over
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest").write_text("step_000004\n")
    with pytest.raises(RunIdentityError, match=r"holds a run of another config \(.*algo.name: 'oreal' -> 'grpo'.*\): start a "
                                               r"new run in another folder \(run_dir=...\), or continue this one with the new "
                                               r"values \(trainer.resume_despite_changes=true\)"):
        check_identity(load_config(["algo=grpo"]), tmp_path)
    check_identity(load_config(["algo=grpo", "trainer.resume_despite_changes=true"]), tmp_path)  # explicitly allowed


def test_grpo_over_an_oreal_run_is_refused_in_seconds_by_the_entry_point(tmp_path):
    """The done-when case on the real entry point, over the record an OREAL run that
    checkpointed leaves (the slow test below refuses a real finished run)."""
    from oreal.trainer.identity import record_identity

    overrides = [f"run_dir={tmp_path}", f"cache_dir={tmp_path / 'cache'}"]
    record_identity(load_config(overrides), tmp_path, overrides)
    (tmp_path / "checkpoints" / "step_000004").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step_000004" / "trainer.json").write_text('{"step": 4}')
    (tmp_path / "checkpoints" / "latest").write_text("step_000004\n")
    before = snapshot(tmp_path)
    proc, seconds, heavy = timed(["-m", "oreal.train", *overrides, "algo=grpo"])
    assert_one_line(proc, 1, f"oreal: run folder {tmp_path} holds a run of another config (algo.name: 'oreal' -> 'grpo'): start "
                             "a new run in another folder (run_dir=...), or continue this one with the new values "
                             "(trainer.resume_despite_changes=true)")
    assert heavy == [] and seconds < REFUSAL_CPU_BOUND_S, (heavy, seconds)
    assert snapshot(tmp_path) == before and not (tmp_path / "cache").exists()  # nothing loaded, nothing written


def test_a_run_from_before_a_new_field_resumes_while_the_field_keeps_its_default(tmp_path):
    """A record written before a field existed lacks it: the field's default (which keeps the
    old behaviour) matches, any other value is a difference like any other."""
    import json

    from oreal.trainer.identity import IDENTITY_FILE, record_identity

    cfg = load_config(["algo=oreal"])
    record_identity(cfg, tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest").write_text("step_000004\n")
    old = json.loads((tmp_path / IDENTITY_FILE).read_text())
    del old["algo.schedule_after_freeze"], old["trainer.policy_optim.betas"]
    (tmp_path / IDENTITY_FILE).write_text(json.dumps(old))
    check_identity(cfg, tmp_path)  # both at their defaults: the same run
    with pytest.raises(RunIdentityError, match=r"algo\.schedule_after_freeze: '\(unset\)' -> True"):
        check_identity(load_config(["algo=oreal", "algo.schedule_after_freeze=true"]), tmp_path)
    with pytest.raises(RunIdentityError, match=r"trainer\.policy_optim\.betas: '\(unset\)' -> \[0\.9, 0\.999\]"):
        check_identity(load_config(["algo=oreal", "trainer.policy_optim.betas=[0.9,0.999]"]), tmp_path)


# ---- preflight: fails in seconds, one line, before any model ----------------------------------
def test_a_missing_dataset_is_refused_in_one_line_before_any_model(tmp_path):
    proc, seconds, heavy = timed(["-m", "oreal.train", f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}",
                                  "data=math_train", "data.train.math_train.path=/nonexistent/train.jsonl"])
    assert_one_line(proc, 1, MISSING_DATA_LINE)
    assert not (tmp_path / "cache").exists()  # on a cold cache: no tiny model built, no SFT started
    assert heavy == [] and seconds < REFUSAL_CPU_BOUND_S, (heavy, seconds)
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and status["reason"].startswith("data.train.math_train")


def test_a_malformed_row_names_the_file_and_line(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"problem": "1+1", "answer": "2"}\n{"problem": "2+2"}\n')
    proc = entry([f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", "data=math_train",
                  f"data.train.math_train.path={data}", "data.train.math_train.sha256=null"])
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == f"oreal: data.train.math_train (path={data}): {data}:2: missing field 'answer'"


@pytest.mark.parametrize("command", [["-m", "oreal.train"], ["-m", "oreal.cli", "config"]], ids=["train", "config"])
def test_prompts_that_do_not_fit_the_model_fail_before_any_model_is_built(tmp_path, command):
    """data=math_train's system prompt (about 1.8k tokens) on the tiny model (1,024 positions),
    found with the tokenizer the tiny model would be built with; `oreal config` runs the same check."""
    proc = subprocess.run([sys.executable, *command, f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}",
                           "data=math_train", f"model.path={tmp_path / 'cache' / 'tiny'}"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("oreal: data.system_prompt=oreal with data.chat_template=tokenizer takes ") and "no room within" in last
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "cache" / "tiny").exists() and not (tmp_path / "cache" / "sft").exists()


def test_an_empty_data_file_is_refused_in_one_line(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = entry([f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", "data=math_train",
                  f"data.train.math_train.path={empty}", "data.train.math_train.sha256=null"])
    assert_one_line(proc, 1, f"oreal: data.train.math_train (path={empty}): data source '{empty}' has no rows")


@pytest.mark.parametrize("command", [["-m", "oreal.train"], ["-m", "oreal.cli", "config"]], ids=["train", "config"])
def test_a_run_folder_that_cannot_be_written_is_refused_in_one_line(tmp_path, command):
    """A run_dir under a regular file: unwritable even for root (chmod is not). For the entry
    point the check comes before Hydra, which would otherwise fail creating the folder."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc, seconds, heavy = timed([*command, f"run_dir={blocker / 'run'}", f"cache_dir={tmp_path / 'cache'}"])
    assert_one_line(proc, 1, f"oreal: run_dir={blocker / 'run'}: cannot write in {blocker} (Not a directory); choose a "
                             "writable run_dir (on a file system every node of the job shares)")
    assert heavy == [] and seconds < REFUSAL_CPU_BOUND_S, (heavy, seconds)
    assert blocker.read_text() == "" and not (tmp_path / "cache").exists()


def test_oreal_config_refuses_a_missing_data_file_as_a_run_does(tmp_path):
    proc, seconds, heavy = timed(["-m", "oreal.cli", "config", f"run_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}",
                                  "data=math_train", "data.train.math_train.path=/nonexistent/train.jsonl"])
    assert_one_line(proc, 1, MISSING_DATA_LINE)
    assert "path: /nonexistent/train.jsonl" in proc.stdout  # the resolved config is printed first
    assert heavy == [] and seconds < REFUSAL_CPU_BOUND_S, (heavy, seconds)


def test_an_unreachable_judge_stops_the_run_in_one_line(tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = entry([f"run_dir={tmp_path / 'run'}", "reward=rule_judge", f"reward.judge.base_url=http://127.0.0.1:{port}/v1"])
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"oreal: reward.judge.base_url=http://127.0.0.1:{port}/v1: no answer from the judge server within")


def test_a_step_whose_judge_failed_too_often_stops_the_run():
    from oreal.reward.judge import JudgeUnavailable
    from oreal.reward.pool import Grade
    from oreal.trainer.loop import check_judge_errors

    judge = load_config(["reward=rule_judge"]).reward.judge
    ok = [Grade.of("correct"), Grade.of("judge_incorrect"), Grade.of("judge_correct")]
    check_judge_errors(ok + [Grade.of("judge_error", detail="timeout")] * 0, judge)
    with pytest.raises(JudgeUnavailable, match=r"failed on 2 of the 4 answers it was asked about this step \(more than "
                                               r"reward.judge.max_error_rate=0.2; last error: HTTP 503\)"):
        check_judge_errors(ok + [Grade.of("judge_error", detail="HTTP 502"), Grade.of("judge_error", detail="HTTP 503")], judge)


# ---- the command line ------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "config", "init-tiny", "grade", "eval", "plan", "submit", "sbatch", "passrate",
                                     "compare", "status", "export"])
def test_every_subcommand_has_help(command):
    proc = subprocess.run([sys.executable, "-m", "oreal.cli", command, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage" in proc.stdout.lower() or "USAGE" in proc.stdout


def test_submit_dry_run_validates_every_point_and_submits_nothing():
    proc = subprocess.run([sys.executable, "-m", "oreal.cli", "submit", "--dry-run", "cluster=slurm", "experiment=oreal_7b",
                           "algo=oreal,grpo", "engine.tensor_parallel_size=4,3"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stdout.splitlines()
    assert lines[0] == "4 job(s) would be submitted:" and lines[-1] == "nothing submitted (--dry-run); 2 invalid point(s)"
    assert sum(" INVALID " in line for line in lines) == 2
    assert "4 node(s) x 8 task(s), 8 rollout engine(s)" in lines[1]


def test_wandb_mode_from_the_environment_wins(monkeypatch):
    from oreal.trainer.tracking import wandb_mode

    cfg = load_config(["logging=wandb_online"])
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode(cfg) == "disabled"
    monkeypatch.delenv("WANDB_MODE")
    assert wandb_mode(cfg) == "online"


# ---- runs: refusals leave the folder alone, damaged state is survived, export/eval ------------
@pytest.fixture(scope="module")
def finished_run(warm_model_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("integrity")
    overrides = fast_overrides(warm_model_dir, run_dir, steps=2)
    assert run(load_config(overrides), overrides=overrides) == "finished"  # as the entry point calls it
    return run_dir


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_another_variant_in_a_finished_run_folder_is_refused_and_touches_nothing(finished_run, warm_model_dir):
    before = snapshot(finished_run)
    proc, seconds, heavy = timed(["-m", "oreal.train", *fast_overrides(warm_model_dir, finished_run, steps=2), "algo=grpo",
                                  "algo.actor_freeze_steps=0"])
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(f"oreal: run folder {finished_run} holds a run of another config")
    assert snapshot(finished_run) == before  # nothing loaded, nothing written, the run's status still its own
    assert heavy == [] and seconds < REFUSAL_CPU_BOUND_S, (heavy, seconds)


def test_a_run_whose_every_checkpoint_is_damaged_stops_in_one_line(tmp_path, tiny_model_dir):
    """Each checkpoint is reported and the one before tried; when none is left the run stops
    with one line, before any step, and leaves the checkpoints as they were for inspection."""
    run_dir = tmp_path / "run"
    torch.save({"policy": {"w": torch.zeros(1 << 20)}}, tmp_path / "whole.pt")
    whole = (tmp_path / "whole.pt").read_bytes()
    for step in (1, 2):
        ckpt = run_dir / "checkpoints" / f"step_{step:06d}"
        ckpt.mkdir(parents=True)
        (ckpt / "trainer.json").write_text(json.dumps({"step": step}))
        (ckpt / "engine.pt").write_bytes(whole[: len(whole) // 2])  # cut short, as a kill or a full disk leaves it
    (run_dir / "checkpoints" / "latest").write_text("step_000002\n")
    before = snapshot(run_dir / "checkpoints")
    proc = entry(fast_overrides(tiny_model_dir, run_dir, steps=2, extra=["logging.wandb_mode=disabled"]))
    root = run_dir / "checkpoints"
    # the summary keeps the first sentence of torch's message; each checkpoint's own line has all of it
    error = "RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory"
    assert_one_line(proc, 1, f"oreal: no checkpoint in {root} can be loaded (step_000002: {error}; step_000001: {error}); move "
                             "the folder away to start the run afresh")
    assert f"oreal: checkpoint {root / 'step_000002'} cannot be loaded ({error}. This is" in proc.stderr
    assert snapshot(run_dir / "checkpoints") == before and not (run_dir / "metrics.jsonl").exists()  # no step taken
    assert json.loads((run_dir / "status.json").read_text())["state"] == "failed"


@pytest.mark.slow
def test_export_and_eval_of_a_run_folder_reproduce_the_run(finished_run, warm_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    assert (finished_run / "final_model" / "config.json").exists()  # every finished run exports its policy
    proc = subprocess.run([sys.executable, "-m", "oreal.cli", "export", str(finished_run), str(tmp_path / "hf")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").state_dict()
    final = AutoModelForCausalLM.from_pretrained(finished_run / "final_model").state_dict()
    saved = torch.load(finished_run / "checkpoints" / "step_000002" / "engine.pt", weights_only=False)["policy"]
    assert all(torch.equal(exported[k], saved[k]) and torch.equal(final[k], saved[k]) for k in saved)
    # `oreal eval --model <run folder>` evaluates what the run trained with the run's own settings
    proc = subprocess.run([sys.executable, "-m", "oreal.cli", "eval", "--model", str(finished_run), "--sets", "cpu_heldout",
                           "--out", str(tmp_path / "eval")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = json.loads((tmp_path / "eval" / "eval_cpu_heldout.summary.json").read_text())["metrics"]
    last = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["step"] == 2
    for key in ("eval/cpu_heldout/pass@1", "eval/cpu_heldout/maj@2", "eval/cpu_heldout/mean_length"):
        assert ours[key] == pytest.approx(last[key], abs=1e-9), key
