import json
import os
import signal
import subprocess
import sys
import time

import torch

from oreal.trainer.checkpoint import CheckpointManager


def writer(state):
    """An engine's ``save``: its state as engine.pt in the checkpoint folder."""
    return lambda folder: torch.save(state, folder / "engine.pt")


def read_into(box):
    return lambda folder: box.update(torch.load(folder / "engine.pt"))


def test_keeps_the_last_n_and_points_at_the_newest(tmp_path):
    m = CheckpointManager(tmp_path, keep_last=2)
    for step in (1, 2, 3):
        m.save(step, writer({"w": torch.full((2,), float(step))}), {"sampler": {"pos": step}})
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*")) == ["step_000002", "step_000003"]
    engine = {}
    state = m.load(m.latest(), read_into(engine))
    assert state == {"sampler": {"pos": 3}, "step": 3} and torch.equal(engine["w"], torch.full((2,), 3.0))


def test_rng_states_are_restored(tmp_path):
    m = CheckpointManager(tmp_path)
    torch.manual_seed(5)
    m.save(1, lambda folder: None, {})
    expected = torch.rand(3)
    torch.manual_seed(99)
    m.load(m.latest(), lambda folder: None)
    assert torch.equal(torch.rand(3), expected)


WRITER = r"""
import sys, time, torch
from oreal.trainer.checkpoint import CheckpointManager
m = CheckpointManager(sys.argv[1], keep_last=3)
m.save(1, lambda d: torch.save({"w": torch.ones(4)}, d / "engine.pt"), {"n": 1})
def slow(d):
    torch.save({"w": torch.ones(1 << 20)}, d / "engine.pt")
    print("writing", flush=True)
    time.sleep(60)
m.save(2, slow, {"n": 2})
"""


def test_sigkill_during_a_write_leaves_the_previous_checkpoint(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    m = CheckpointManager(tmp_path, keep_last=3)
    assert m.latest().name == "step_000001"
    assert m.load(m.latest(), lambda folder: None)["n"] == 1
    assert list((tmp_path / "checkpoints").glob(".step_000002.tmp-*"))  # the half-written one is there...
    m.save(2, writer({"w": torch.zeros(1)}), {"n": 2})  # ...and is replaced by the next save of that step
    assert not list((tmp_path / "checkpoints").glob(".step_*.tmp-*"))
    assert json.loads((m.latest() / "trainer.json").read_text())["n"] == 2
