"""The sbatch scripts in sbatch/ are what `oreal sbatch` renders today, and Slurm accepts them."""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from oreal.config.load import load_config
from oreal.launch.sbatch import render

SBATCH = Path(__file__).resolve().parents[2] / "sbatch"
SCRIPTS = sorted(SBATCH.glob("*.sbatch"))


def rendered_with(script: Path) -> list[str]:
    match = re.search(r"^# Rendered by `oreal sbatch (.*?)`", script.read_text(), re.M)
    assert match, f"{script} does not say how it was rendered"
    return shlex.split(match.group(1))


def test_every_documented_script_exists():
    assert {p.name for p in SCRIPTS} >= {"oreal_7b.sbatch", "oreal_7b_hetjob.sbatch", "local_slurm.sbatch", "local_slurm_hetjob.sbatch"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_match_what_the_config_renders(script):
    args = rendered_with(script)
    hetjob = "--hetjob" in args
    overrides = [a for a in args if a != "--hetjob"]
    assert render(load_config(overrides), overrides, hetjob) == script.read_text(), \
        f"{script.name} is stale: render it again with `oreal sbatch {' '.join(args)} > sbatch/{script.name}`"


def test_hetjob_script_has_two_components_with_their_roles():
    text = (SBATCH / "oreal_7b_hetjob.sbatch").read_text()
    rollout, training = text.split("#SBATCH hetjob")
    assert "#SBATCH --nodes=1" in rollout and "#SBATCH --nodes=3" in training
    assert "OREAL_ROLE=rollout srun --het-group=0" in text and "OREAL_ROLE=trainer srun --het-group=1" in text


@pytest.mark.slurm
@pytest.mark.parametrize("name", ["local_slurm.sbatch", "local_slurm_hetjob.sbatch"])
def test_local_cluster_accepts_the_scripts(name):
    if shutil.which("sbatch") is None:
        pytest.skip("no Slurm here: as root, `tests/slurm/local_cluster.sh start` starts one (.ci/run does)")
    proc = subprocess.run(["sbatch", "--test-only", str(SBATCH / name)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "to start at" in proc.stderr
