"""`oreal compare` on a real local sweep: one Hydra multirun, two variants x two seeds."""

import glob
import json
import statistics
import subprocess
import sys

import pytest
import yaml
from PIL import Image

from oreal.compare.cli import main as compare
from tests.trainer.conftest import fast_overrides

pytestmark = pytest.mark.slow
P = "eval/cpu_heldout/pass@1"


@pytest.fixture(scope="module")
def sweep(warm_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    base = [o for o in fast_overrides(warm_model_dir, root, steps=2)
            if not o.startswith(("run_dir=", "algo.actor_freeze_steps"))]
    cmd = [sys.executable, "-m", "oreal.train", "-m", *base, "algo=grpo,rloo", "seed=0,1", f"hydra.sweep.dir={root}",
           "logging.wandb_mode=disabled"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def test_a_local_sweep_gets_one_folder_per_point(sweep):
    folders = [p for p in sweep.iterdir() if (p / "metrics.jsonl").exists()]
    points = sorted((yaml.safe_load((p / "config.yaml").read_text())["algo"]["name"],
                     yaml.safe_load((p / "config.yaml").read_text())["seed"], p.name.split(",")[0]) for p in folders)
    assert points == [("grpo", 0, "algo=grpo"), ("grpo", 1, "algo=grpo"), ("rloo", 0, "algo=rloo"), ("rloo", 1, "algo=rloo")]


def test_compare_reproduces_the_runs_numbers_and_plots(sweep, tmp_path, capsys):
    assert compare([str(sweep), "--plot", str(tmp_path / "curves.png"), "--json", str(tmp_path / "table.json")]) == 0
    out = capsys.readouterr().out
    assert "4 runs, 2 variants" in out
    assert "algo.name: algo=grpo='grpo'; algo=rloo='rloo'" in out
    table = {row["variant"]: row for row in json.loads((tmp_path / "table.json").read_text())}
    for variant in ("algo=grpo", "algo=rloo"):
        # independently: the last evaluation of each seed's metrics.jsonl, mean over seeds
        finals = []
        for folder in sorted(sweep.glob(f"{glob.escape(variant)},*")):
            rows = [json.loads(l) for l in (folder / "metrics.jsonl").read_text().splitlines()]
            finals.append([r[P] for r in rows if P in r][-1])
        assert len(finals) == 2
        assert table[variant]["seeds"] == [0, 1]
        assert table[variant][f"final {P}"]["mean"] == pytest.approx(statistics.fmean(finals))
        assert table[variant][f"final {P}"]["std"] == pytest.approx(statistics.stdev(finals))
    with Image.open(tmp_path / "curves.png") as png:
        assert png.size == (1008, 512)  # 3 metrics x 4.2 in, 6.4 in, at 80 dpi
