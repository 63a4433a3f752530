"""`oreal plan`: parameter counts against the published ones, the refusals, the attention's
activation memory and the step-time estimate."""

import re

import pytest
import torch

from oreal.config.load import ConfigError, load_config
from oreal.launch.plan import format_plan, make_plan, param_count


@pytest.mark.parametrize("experiment,published", [("oreal_7b", 7.62e9), ("oreal_32b", 32.8e9)])
def test_parameter_counts_match_the_published_ones(experiment, published):
    cfg = load_config([f"experiment={experiment}"])
    assert abs(param_count(cfg.model) / published - 1) < 0.005


def test_parameter_count_of_the_tiny_model_equals_transformers(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    cfg = load_config([])
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert param_count(cfg.model) == sum(p.numel() for p in model.parameters())


def test_paper_layouts_fit_and_split_the_nodes():
    plan = make_plan(load_config(["experiment=oreal_7b"]))
    assert plan.ok, plan.problems
    assert (plan.rollout_nodes, plan.train_nodes, plan.tp, plan.pp, plan.dp) == ([0], [1, 2, 3], 4, 1, 6)
    assert sum(plan.train_memory.values()) < 80
    big = make_plan(load_config(["experiment=oreal_32b"]))
    assert big.ok and (big.tp, big.pp, big.dp) == (8, 4, 3)


@pytest.mark.parametrize("overrides,reason", [
    (["engine.tensor_parallel_size=3"], "engine.tensor_parallel_size=3 must divide model.num_attention_heads=28"),
    (["engine.pipeline_parallel_size=5"], "engine.pipeline_parallel_size=5 must divide model.num_layers=28"),
    (["cluster.rollout_nodes=4"], "cluster.rollout_nodes=4 must be in [0, cluster.nodes=4)"),
])
def test_layouts_that_do_not_divide_are_refused_at_config_time(overrides, reason):
    with pytest.raises(ConfigError, match=re.escape(reason)):
        load_config(["experiment=oreal_7b", *overrides])


def test_layouts_that_do_not_fit_are_refused_with_the_reason():
    plan = make_plan(load_config(["experiment=oreal_7b", "engine.tensor_parallel_size=1"]))
    assert not plan.ok
    assert "REFUSED: training needs about" in format_plan(plan)
    assert "more than cluster.gpu_memory_gb=80" in format_plan(plan)
    tight = make_plan(load_config(["experiment=oreal_7b", "rollout.gpu_memory_utilization=0.18"]))
    assert any("KV cache holds less than one" in p for p in tight.problems)


# ---- attention memory and step time ---------------------------------------------------------
def test_fused_attention_drops_the_s_squared_scores():
    """oreal_7b at TP 4, micro-batch 1 x 16384: the unfused local attention's scores, softmax
    and dropout mask are 5 bytes x 28 heads x 16384^2 / 4 = 8.75 GiB more than a fused
    kernel's softmax statistics (4 bytes x 28 heads x 16384 / 4, 1.75 MiB)."""
    def activations(overrides):
        plan = make_plan(load_config(["experiment=oreal_7b", *overrides]))
        return next(v for k, v in plan.train_memory.items() if k.startswith("activations"))

    unfused = activations(["engine.attention=local", "engine.packing=false"])
    fused = activations(["engine.packing=false"])
    assert unfused - fused == pytest.approx(8.75 - 4 * 28 * 16384 / 4 / 2**30, abs=1e-3)
    assert activations([]) == pytest.approx(fused)  # a packed row of 16384 tokens: the same size


def test_forward_flops_count_every_matrix_multiply(tiny_model_dir):
    """Against torch's FLOP counter on the tiny model's forward pass, which counts the full
    ``L x L`` attention products where we count only the causal half."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForCausalLM

    from oreal.launch.plan import forward_flops

    m = load_config([]).model
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="eager").eval()
    length = 50
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.arange(1, length + 1)[None])
    masked_half = 2 * m.num_layers * m.hidden_size * length**2
    assert counter.get_total_flops() == forward_flops(m, [length]) + masked_half


def test_step_time_is_the_steps_flops_at_the_assumed_mfu(capsys):
    from oreal.launch.plan import StepAssumptions, main, step_flops

    cfg = load_config(["experiment=oreal_7b"])
    plan = make_plan(cfg)
    assert plan.step_flops == step_flops(cfg.model, [16384] * 1024)
    assert plan.step_time_s == pytest.approx(plan.step_flops / (24 * 989e12 * 0.4))
    slow = make_plan(cfg, StepAssumptions(mfu=0.2, mean_tokens=4000))
    assert slow.step_flops == step_flops(cfg.model, [4000] * 1024)  # packed rows compute the tokens there are
    padded = make_plan(load_config(["experiment=oreal_7b", "engine.packing=false"]), StepAssumptions(mean_tokens=4000))
    assert padded.step_flops == plan.step_flops  # padded rows compute every sequence at full length
    assert main(["experiment=oreal_7b", "--mfu", "0.5", "--mean-tokens", "6000"]) == 0
    out = capsys.readouterr().out
    assert "ASSUMED: MFU 0.5 (--mfu) of 989 TFLOP/s" in out and "1024 sequences x 6000 tokens" in out
    assert main(["--mfu", "1.5"]) == 2
