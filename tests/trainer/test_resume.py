"""Preemption: a run stopped by SIGTERM, or killed by SIGKILL in the middle of writing a
checkpoint, restarts in the same run folder and ends with the metrics of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oreal.config import load_config
from oreal.launch.task import EXIT_STOPPED
from oreal.trainer import run
from tests.trainer.conftest import fast_overrides
from tests.trainer.test_trainer import comparable, records
from tests.trainer.wandb_reader import offline_runs, run_info

pytestmark = pytest.mark.slow
STEPS = 6


@pytest.fixture(scope="module")
def uninterrupted(warm_model_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("straight")
    run(load_config(fast_overrides(warm_model_dir, run_dir, steps=STEPS)))
    return records(run_dir)


def start(overrides, prelude=""):
    code = prelude + "import sys; from oreal.train import main; sys.argv = ['oreal.train', *sys.argv[1:]]; main()"
    return subprocess.Popen([sys.executable, "-c", code, *overrides], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def wait_for(predicate, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def logged_steps(run_dir):
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(l)["step"] for l in path.read_text().splitlines()] if path.exists() else []


def test_sigterm_checkpoints_and_the_restart_matches(warm_model_dir, tmp_path, uninterrupted):
    overrides = fast_overrides(warm_model_dir, tmp_path, steps=STEPS, extra=["trainer.checkpoint_every=100"])
    proc = start(overrides)
    wait_for(lambda: 2 in logged_steps(tmp_path) or proc.poll() is not None)
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == EXIT_STOPPED, out  # "resume me": what the sbatch scripts requeue on
    assert "stopped" in out
    stopped_at = max(logged_steps(tmp_path))
    assert 2 <= stopped_at < STEPS
    # checkpoint_every=100: the only checkpoint is the one the signal asked for
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == f"step_{stopped_at:06d}"

    proc = start(overrides)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0 and "finished" in out, out
    assert comparable(records(tmp_path)) == comparable(uninterrupted)
    ids = {run_info(f)["id"] for f in offline_runs(tmp_path)}
    assert len(offline_runs(tmp_path)) == 2 and len(ids) == 1  # two attempts, one W&B run


KILL_PRELUDE = """
import time, torch
_save = torch.save
def _slow_save(obj, f, *a, **k):
    _save(obj, f, *a, **k)
    if ".step_000004.tmp" in str(f) and str(f).endswith("engine.pt"):
        print("CHECKPOINT-4-HALF-WRITTEN", flush=True)
        time.sleep(600)
torch.save = _slow_save
"""


def test_sigkill_during_a_checkpoint_write_resumes_from_the_previous_one(warm_model_dir, tmp_path, uninterrupted):
    overrides = fast_overrides(warm_model_dir, tmp_path, steps=STEPS)
    proc = start(overrides, KILL_PRELUDE)
    for line in proc.stdout:
        if "CHECKPOINT-4-HALF-WRITTEN" in line:
            break
    else:
        pytest.fail("the run ended before writing checkpoint 4")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_000003"

    proc = start(overrides)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0 and "finished" in out, out
    assert comparable(records(tmp_path)) == comparable(uninterrupted)


def test_a_damaged_latest_checkpoint_and_a_partial_metrics_line_are_survived(warm_model_dir, tmp_path, uninterrupted):
    """What a kill can leave: the newest checkpoint's engine.pt cut short (a disk that filled
    up, a copy interrupted) and half a metrics line. The resume reports both, falls back to the
    checkpoint before, and ends like the uninterrupted run."""
    overrides = fast_overrides(warm_model_dir, tmp_path, steps=STEPS)
    proc = start(overrides)
    wait_for(lambda: 4 in logged_steps(tmp_path) or proc.poll() is not None)
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == EXIT_STOPPED, out
    latest = (tmp_path / "checkpoints" / "latest").read_text().strip()
    engine = tmp_path / "checkpoints" / latest / "engine.pt"
    engine.write_bytes(engine.read_bytes()[: engine.stat().st_size // 2])
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 99, "reward/me')

    proc = start(overrides)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0 and "finished" in out, out
    stopped_at = int(latest.split("_")[1])
    assert f"oreal: checkpoint {tmp_path / 'checkpoints' / latest} cannot be loaded" in out
    assert f"oreal: resuming {tmp_path} from step {stopped_at - 1} (checkpoints/step_{stopped_at - 1:06d})" in out
    assert "dropped a partial last line" in out
    assert comparable(records(tmp_path)) == comparable(uninterrupted)
