"""The Megatron engine against the torch engine and against itself across layouts, core
attentions and micro-batch layouts (padded or packed).

Each run is its own ``torchrun`` (gloo, CPU) of ``worker.py``, which takes three OREAL steps
with the token RM and the reference on a fixed batch; the results are compared here. The
conversion tests need no process group.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("megatron.core")

from oreal.engines.megatron.convert import hf_to_mcore, local_shard, mcore_to_hf, tp_shard, tp_unshard  # noqa: E402
from oreal.engines.megatron.model import ModelDims  # noqa: E402
from oreal.engines.megatron.parallel import Layout  # noqa: E402

WORKER = Path(__file__).with_name("worker.py")
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with random biases and norms (transformers initialises them to 0 and 1,
    which would hide a wrong q/k/v or norm mapping)."""
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("megatron") / "model"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def hf_state(model_dir):
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


@pytest.fixture(scope="module")
def dims(model_dir):
    from transformers import AutoConfig

    return ModelDims.from_hf(AutoConfig.from_pretrained(model_dir))


def test_hf_megatron_hf_round_trip_is_bit_exact(hf_state, dims):
    back = mcore_to_hf(hf_to_mcore(hf_state, dims), dims)
    assert set(back) == set(hf_state)
    assert all(torch.equal(back[k], hf_state[k]) for k in hf_state)


@pytest.mark.parametrize("tp,pp", [(2, 1), (1, 2), (2, 2)])
def test_sharding_covers_every_tensor_once(hf_state, dims, tp, pp):
    full = hf_to_mcore(hf_state, dims)
    shards = {(t, p): local_shard(full, dims, Layout(tp, pp, 1, t, p, 0, 0)) for t in range(tp) for p in range(pp)}
    # every stage holds its own layers under stage-local names; TP shards rebuild the full tensor
    assert sum(len(shards[0, p]) for p in range(pp)) == len(full)
    for name, t in full.items():
        assert torch.equal(tp_unshard(name, [tp_shard(name, t, r, tp) for r in range(tp)]), t)
    qkv = shards[0, 0]["decoder.layers.0.self_attention.linear_qkv.weight"]
    assert qkv.shape[0] == full["decoder.layers.0.self_attention.linear_qkv.weight"].shape[0] // tp


def test_layouts_that_do_not_divide_are_refused(dims):
    from oreal.engines.megatron.model import check_divisible

    with pytest.raises(ValueError, match="tensor_parallel_size=3 does not divide the model's num_attention_heads=4"):
        check_divisible(dims, 3, 1)
    with pytest.raises(ValueError, match="pipeline_parallel_size=3 does not divide the model's num_hidden_layers=4"):
        check_divisible(dims, 1, 3)


# ---- multi-process runs ---------------------------------------------------------------------
PACKED = ["--attention", "sdpa", "--packing", "--micro-batch-tokens", "40"]  # rows of 1-3 of the 6-23 token sequences
RUNS = {  # name: (processes, worker arguments); without flags: Megatron's local attention, padded micro-batches
    "torch": (1, ["--engine", "torch"]),
    "tp1": (1, []),
    "tp2": (2, ["--tp", "2"]),
    "pp2": (2, ["--pp", "2"]),
    "dp2": (2, []),
    "tp1_sdpa": (1, ["--attention", "sdpa"]),
    "tp1_packed": (1, PACKED),
    "tp2_packed": (2, ["--tp", "2", *PACKED]),
    "pp2_packed": (2, ["--pp", "2", *PACKED]),
    # torch has no FlexAttention backward on CPU: flex scores here, and trains on GPU only
    "tp1_flex_packed": (1, ["--attention", "flex", "--packing", "--micro-batch-tokens", "40", "--score-only"]),
    # the first step frozen, the policy's schedule started at its first update (algo.schedule_after_freeze)
    "torch_delayed": (1, ["--engine", "torch", "--freeze-first", "--schedule-delay", "1"]),
    "tp2_delayed": (2, ["--tp", "2", "--freeze-first", "--schedule-delay", "1"]),
    # the optimiser state split over the two data-parallel ranks (engine.distributed_optimizer)
    "dp2_zero": (2, ["--distributed-optimizer"]),
    "dp2_bf16": (2, ["--dtype", "bfloat16"]),
    "dp2_zero_bf16": (2, ["--dtype", "bfloat16", "--distributed-optimizer"]),
}


@pytest.fixture(scope="module")
def run(model_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("megatron_runs")
    cache: dict[str, dict] = {}

    def get(name: str, nproc: int | None = None, extra: list[str] | None = None) -> dict:
        if name not in cache:
            n, args = RUNS.get(name, (nproc, extra))
            out = out_dir / f"{name}.pt"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", str(WORKER),
                   str(model_dir), str(out), *args]
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, proc.stderr[-4000:]
            cache[name] = torch.load(out)
        return cache[name]

    get.out_dir = out_dir
    return get


def assert_losses_equal(a: dict, b: dict, tol: float = 1e-5):
    assert len(a["losses"]) == len(b["losses"])
    for step, (la, lb) in enumerate(zip(a["losses"], b["losses"])):
        for key in la:
            assert abs(la[key] - lb[key]) < tol, f"step {step} {key}: {la[key]} vs {lb[key]}"


def max_abs(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def max_rel(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float((a[k] - b[k]).abs().max() / b[k].abs().max().clamp_min(1e-30)) for k in a)


def assert_scores_equal(a: dict, b: dict, tol: float = 1e-5):
    assert max(float((x - y).abs().max()) for x, y in zip(a["logprobs"], b["logprobs"])) < tol
    assert max(float((x - y).abs().max()) for x, y in zip(a["entropy"], b["entropy"])) < tol


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["tp2", "pp2", "dp2", "tp1_sdpa", "tp1_packed", "tp2_packed", "pp2_packed"])
def test_layouts_attention_and_packing_match_tp1(run, layout):
    """Against TP=1 with the local attention on padded micro-batches: loss each step within
    1e-5, weights after 3 steps within 1e-5, log-probs and entropy within 1e-5."""
    base, other = run("tp1"), run(layout)
    assert_losses_equal(other, base)
    assert max_abs(other["weights"], base["weights"]) < 1e-5
    assert_scores_equal(other, base)
    assert max_rel(other["grads"], base["grads"]) < 1e-4


@pytest.mark.slow
def test_flex_attention_on_packed_rows_scores_like_tp1(run):
    assert_scores_equal(run("tp1_flex_packed"), run("tp1"))


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["tp1", "tp1_packed"])
def test_megatron_matches_the_torch_engine(run, layout):
    """Same OREAL loss (token RM and KL included) every step, same first-step gradients."""
    torch_run, mega = run("torch"), run(layout)
    assert_losses_equal(mega, torch_run)
    assert max_rel(mega["grads"], torch_run["grads"]) < 1e-4
    assert max_abs(mega["weights"], torch_run["weights"]) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["tp1", "tp2", "tp1_packed", "tp1_flex_packed"])
def test_logits_match_transformers(run, model_dir, layout):
    from transformers import AutoModelForCausalLM

    from tests.engines.megatron.worker import batch

    tokens = batch(4, seed=5).token_ids[0]
    hf = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        want = hf(torch.tensor([tokens])).logits[0]
    got = run(layout)["logits"]
    assert got.shape == want.shape
    assert float((got - want).abs().max()) < 1e-4


@pytest.mark.slow
def test_a_delayed_policy_schedule_is_the_same_in_both_engines(run):
    """Step 0 frozen, schedule delayed by 1 (warm-up 3): the policy's learning rate stays at the
    warm-up's first value through the freeze, the token RM's advances; the losses match."""
    torch_run, mega = run("torch_delayed"), run("tp2_delayed")
    lr = 1e-4
    want = [[lr / 3, lr / 3], [lr / 3, 2 * lr / 3], [2 * lr / 3, lr]]  # [policy, token RM] before steps 0, 1, 2
    for got in (torch_run["lrs"], mega["lrs"]):
        assert [[g[0], g[-1]] for g in got] == [pytest.approx(w, rel=1e-9) for w in want]
    assert_losses_equal(mega, torch_run)
    assert max_abs(mega["weights"], torch_run["weights"]) < 1e-5


@pytest.mark.slow
def test_checkpoint_loads_into_another_layout(run):
    """State saved after step 1 at TP=2, loaded at PP=2 for steps 2-3: same as TP=2 throughout
    (with the default fused attention on packed rows)."""
    state = run.out_dir / "tp2_step1"  # a sharded checkpoint: one file per rank and shard
    saved = run("tp2_save", 2, ["--tp", "2", *PACKED, "--save-state", str(state)])
    resumed = run("pp2_resume", 2, ["--pp", "2", *PACKED, "--resume", str(state)])
    assert_losses_equal({"losses": resumed["losses"]}, {"losses": saved["losses"][1:]})
    assert resumed["lrs"] == saved["lrs"][1:]  # the optimisers' own learning rates, exactly
    assert max_abs(resumed["weights"], saved["weights"]) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("replicated,sharded", [("dp2", "dp2_zero"), ("dp2_bf16", "dp2_zero_bf16")])
def test_the_sharded_optimizer_trains_like_the_replicated_one(run, replicated, sharded):
    """Each data-parallel rank stepping the parameters it owns (fp32 masters and Adam moments of
    those only, in bf16) and broadcasting them gives the replicated optimiser's steps: the same
    gradient norms, losses and final weights."""
    want, got = run(replicated), run(sharded)
    assert got["grad_norms"] == [pytest.approx(w, rel=1e-9) for w in want["grad_norms"]]
    assert_losses_equal(got, want, tol=1e-6)
    assert max_abs(got["weights"], want["weights"]) == 0.0


@pytest.mark.slow
def test_a_sharded_optimizer_checkpoint_loads_without_sharding_and_back(run):
    """Saved by two data-parallel ranks that each hold half the optimiser state, loaded at TP=2
    (no data parallelism), and the reverse: the same steps as the run that wrote the state."""
    zero_state = run.out_dir / "dp2_zero_step1"
    saved = run("dp2_zero_save", 2, ["--distributed-optimizer", *PACKED, "--save-state", str(zero_state)])
    resumed = run("tp2_from_zero", 2, ["--tp", "2", *PACKED, "--resume", str(zero_state)])
    assert_losses_equal({"losses": resumed["losses"]}, {"losses": saved["losses"][1:]})
    assert resumed["lrs"] == saved["lrs"][1:]
    assert max_abs(resumed["weights"], saved["weights"]) < 1e-5

    tp2_state = run.out_dir / "tp2_step1"
    saved = run("tp2_save", 2, ["--tp", "2", *PACKED, "--save-state", str(tp2_state)])
    resumed = run("zero_from_tp2", 2, ["--distributed-optimizer", *PACKED, "--resume", str(tp2_state)])
    assert_losses_equal({"losses": resumed["losses"]}, {"losses": saved["losses"][1:]})
    assert resumed["lrs"] == saved["lrs"][1:]
    assert max_abs(resumed["weights"], saved["weights"]) < 1e-5


@pytest.mark.slow
def test_the_exported_policy_loads_in_transformers_with_the_trained_weights(run):
    """Rank 0 writes one safetensors file per unit as the units arrive (gathered over TP=2)."""
    from transformers import AutoModelForCausalLM

    folder = run.out_dir / "tp2_export"
    trained = run("tp2_export", 2, ["--tp", "2", "--export", str(folder)])
    files = sorted(p.name for p in folder.glob("*.safetensors"))
    assert files == [f"model-{i:05d}-of-00006.safetensors" for i in range(1, 7)]  # embedding, 4 layers, final
    exported = AutoModelForCausalLM.from_pretrained(folder).state_dict()
    assert max_abs({k: exported[k] for k in trained["weights"]}, trained["weights"]) == 0.0
