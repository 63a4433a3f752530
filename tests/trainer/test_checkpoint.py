import json
import os
import signal
import subprocess
import sys
import time

import torch

from oreal.trainer.checkpoint import CheckpointManager


def test_keeps_the_last_n_and_points_at_the_newest(tmp_path):
    m = CheckpointManager(tmp_path, keep_last=2)
    for step in (1, 2, 3):
        m.save(step, {"w": torch.full((2,), float(step))}, {"sampler": {"pos": step}})
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*")) == ["step_000002", "step_000003"]
    engine, state = m.load(m.latest())
    assert state == {"sampler": {"pos": 3}, "step": 3} and torch.equal(engine["w"], torch.full((2,), 3.0))


def test_rng_states_are_restored(tmp_path):
    m = CheckpointManager(tmp_path)
    torch.manual_seed(5)
    m.save(1, {}, {})
    expected = torch.rand(3)
    torch.manual_seed(99)
    m.load(m.latest())
    assert torch.equal(torch.rand(3), expected)


WRITER = r"""
import sys, time, torch
from oreal.trainer.checkpoint import CheckpointManager
m = CheckpointManager(sys.argv[1], keep_last=3)
m.save(1, {"w": torch.ones(4)}, {"n": 1})
original = torch.save
def slow_save(obj, f, *a, **k):
    original(obj, f, *a, **k)
    if "step_000002" in str(f):
        print("writing", flush=True)
        time.sleep(60)
torch.save = slow_save
m.save(2, {"w": torch.ones(1 << 20)}, {"n": 2})
"""


def test_sigkill_during_a_write_leaves_the_previous_checkpoint(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    m = CheckpointManager(tmp_path, keep_last=3)
    assert m.latest().name == "step_000001"
    assert m.load(m.latest())[1]["n"] == 1
    assert list((tmp_path / "checkpoints").glob(".step_000002.tmp-*"))  # the half-written one is there...
    m.save(2, {"w": torch.zeros(1)}, {"n": 2})  # ...and is cleaned up by the next save
    assert not list((tmp_path / "checkpoints").glob(".step_*.tmp-*"))
    assert json.loads((m.latest() / "trainer.json").read_text())["n"] == 2
