"""The run's outcome file, the failure watch, and the stop-signal receiver."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from oreal.errors import ModelPathError, one_line
from oreal.trainer.status import FailureWatch, read_status, recorded_failure, write_status


@pytest.fixture
def job(monkeypatch):
    for key in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_HET_JOB_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "12")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")


def test_failed_is_final_within_an_incarnation_and_cleared_by_the_next(tmp_path, job, monkeypatch):
    write_status(tmp_path, "running", step=3, task="trainer rank 0")
    with pytest.raises(ModelPathError):
        with recorded_failure(tmp_path, "trainer rank 2"):
            raise ModelPathError("model.path=x: no such folder")
    status = read_status(tmp_path)
    # the step is the last one recorded; the reason is the one line a user sees
    assert (status.state, status.step, status.task, status.reason) == ("failed", 3, "trainer rank 2", "model.path=x: no such folder")
    assert (status.job_id, status.restart, status.slurm_job) == ("12", "0", "12")
    assert write_status(tmp_path, "finished", step=4) is False and read_status(tmp_path).state == "failed"
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # the requeued job starts afresh
    assert write_status(tmp_path, "running") is True and read_status(tmp_path).state == "running"


def test_a_clean_exit_is_not_a_failure(tmp_path, job):
    with pytest.raises(SystemExit):
        with recorded_failure(tmp_path, "main"):
            sys.exit(0)
    assert read_status(tmp_path) is None


def test_array_tasks_are_named_as_sacct_names_them(tmp_path, job, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "9")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    write_status(tmp_path, "running")
    assert read_status(tmp_path).slurm_job == "9_1"


def test_one_line_names_unexpected_errors_by_type_and_keeps_expected_ones_as_written():
    assert one_line(RuntimeError("size mismatch\nat line 3")) == "RuntimeError: size mismatch"
    assert one_line(ModelPathError("model.path=x: no such folder")) == "model.path=x: no such folder"
    assert len(one_line(ValueError("v" * 1000))) == 300


def test_the_watch_reacts_to_another_tasks_failure_only(tmp_path, job):
    mine, other = [], []
    watches = [FailureWatch(tmp_path / "a", poll_s=0.05, on_failure=mine.append).start(),
               FailureWatch(tmp_path / "b", poll_s=0.05, on_failure=other.append).start()]
    write_status(tmp_path / "a", "failed", reason="mine", task="me")  # written by this process: not a peer's failure
    peer = subprocess.run([sys.executable, "-c", "from oreal.trainer.status import write_status; import sys;"
                           "write_status(sys.argv[1], 'failed', reason='boom', task='trainer rank 1')", str(tmp_path / "b")],
                          capture_output=True, text=True)
    assert peer.returncode == 0, peer.stderr
    deadline = time.monotonic() + 5
    while not other and time.monotonic() < deadline:
        time.sleep(0.05)
    for w in watches:
        w.stop()
    assert mine == [] and [(s.task, s.reason) for s in other] == [("trainer rank 1", "boom")]


RECEIVER = r"""
import os, signal, subprocess, sys, time
from oreal.trainer.signals import StopSignal, receive_stop_signals
receive_stop_signals()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
stop = StopSignal().install()
print(child.pid, flush=True)
deadline = time.time() + 20
while not stop.requested and time.time() < deadline:
    time.sleep(0.05)
print(stop.reason, child.poll(), flush=True)
child.kill()
"""


def test_stop_signals_reach_the_trainer_but_not_the_children(tmp_path):
    """What Slurm does (signal every process of the step): the entry process records the stop,
    its child keeps running (it inherited the blocked signals)."""
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    for pid in (proc.pid, child):
        os.kill(pid, signal.SIGUSR2)
    out, _ = proc.communicate(timeout=30)
    assert out.split() == ["SIGUSR2", "None"]  # the child was still running when the trainer saw the stop


EARLY_THREAD = r"""
import os, signal, threading, time
ready = threading.Event()
def early():  # a thread that exists before the entry point blocks the signals (torch starts one)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])
    ready.set(); time.sleep(30)
threading.Thread(target=early, daemon=True).start(); ready.wait()
from oreal.trainer.signals import StopSignal, receive_stop_signals
receive_stop_signals()
stop = StopSignal().install()
print("ready", flush=True)
deadline = time.time() + 20
while not stop.requested and time.time() < deadline:
    time.sleep(0.05)
print(stop.reason, flush=True)
"""


def test_a_stop_signal_delivered_to_an_older_thread_does_not_kill_the_process():
    proc = subprocess.Popen([sys.executable, "-c", EARLY_THREAD], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    for _ in range(5):  # the kernel picks a thread that does not block it: the early one
        os.kill(proc.pid, signal.SIGUSR1)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.strip() == "SIGUSR1"


@pytest.mark.parametrize("configured,env,world,want", [
    (3, {"SLURM_CPUS_PER_TASK": "16"}, 4, 3),  # the config wins
    (0, {"SLURM_CPUS_PER_TASK": "16"}, 4, 16),  # Slurm's --cpus-per-task
    (0, {"LOCAL_WORLD_SIZE": "4"}, 4, 8 // 4),  # a share of the node's 8 cores per local rank
    (0, {"LOCAL_WORLD_SIZE": "16"}, 16, 1),  # never fewer than one
    (0, {}, 1, 8),  # a single process: every core
])
def test_each_rank_grades_with_its_share_of_the_node(monkeypatch, configured, env, world, want):
    from oreal.engines.distributed import DistEnv
    from oreal.trainer.ranks import grading_workers

    for name in ("SLURM_CPUS_PER_TASK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert grading_workers(configured, DistEnv(rank=0, world_size=world)) == want
