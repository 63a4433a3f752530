"""`oreal plan`: parameter counts against the published ones, and the refusals."""

import re

import pytest

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
