"""`oreal plan`: parameter counts against the published ones, the refusals, the attention's
activation memory and the step-time estimate."""

import json
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
    assert big.ok and (big.tp, big.pp, big.dp) == (8, 1, 12)  # the paper's TP 8 on 12 nodes, no pipeline stages


def test_the_distributed_optimizer_divides_the_optimiser_state_by_data_parallel_ranks():
    """Policy and token RM: 2 + 2 bytes (bf16 weights and grads) per parameter of the rank's
    shard, plus 16 (fp32 master, its gradient, two Adam moments) on every replica or divided by DP."""
    cfg = load_config(["experiment=oreal_32b"])
    shard = 32_763_876_352 / 8  # TP 8, PP 1
    sharded = make_plan(cfg).train_memory
    assert sharded["policy (weights, grads, fp32 master, Adam / 12 DP)"] == pytest.approx(shard * (4 + 16 / 12) / 2**30)
    assert sum(sharded.values()) < 80
    replicated = make_plan(load_config(["experiment=oreal_32b", "engine.distributed_optimizer=false"]))
    assert replicated.train_memory["policy (weights, grads, fp32 master, Adam)"] == pytest.approx(shard * 20 / 2**30)
    assert not replicated.ok and "raise engine.tensor_parallel_size" in replicated.problems[0]


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


# ---- the rollout fleet and the weight sync at the shipped layouts ----------------------------
# Qwen2.5 parameter counts from the model YAMLs (head_dim 128, untied embeddings), per layer:
# q (h*h + h) + k, v (2 * (h*kv*128 + kv*128)) + o (h*h) + MLP (3*h*ffn) + two norms (2*h);
# in all: 2 * vocab*h + layers * layer + the final norm (h).
#   7B:  h 3584, ffn 18944, kv 4, 28 layers: layer 233,057,792 -> 28 * 233,057,792 + 2 * 152,064*3,584 + 3,584
#   32B: h 5120, ffn 27648, kv 8, 64 layers: layer 487,605,248 -> 64 * 487,605,248 + 2 * 152,064*5,120 + 5,120
@pytest.mark.parametrize("experiment,per_node,rollout_nodes,num_params,printed", [
    # conf/cluster/slurm.yaml: 8 GPUs per node; oreal_7b: rollout.tensor_parallel_size 1, 1 rollout node
    ("oreal_7b", 8 // 1, 1, 28 * 233_057_792 + 2 * 152_064 * 3_584 + 3_584,
     ["rollout nodes [0]: 8 vLLM engine(s) per node of 1 GPU(s) each, 8 in all",
      "weight sync: 15.2 GB per step to every engine in one broadcast, about 0.6 s at cluster.interconnect_gb_per_s=25"]),
    # oreal_32b: rollout.tensor_parallel_size 4, 4 rollout nodes of 16
    ("oreal_32b", 8 // 4, 4, 64 * 487_605_248 + 2 * 152_064 * 5_120 + 5_120,
     ["rollout nodes [0, 1, 2, 3]: 2 vLLM engine(s) per node of 4 GPU(s) each, 8 in all",
      "weight sync: 65.5 GB per step to every engine in one broadcast, about 2.6 s at cluster.interconnect_gb_per_s=25"]),
])
def test_plan_counts_the_engines_and_the_weight_sync_of_the_shipped_layouts(experiment, per_node, rollout_nodes, num_params,
                                                                             printed, capsys):
    """Engines: gpus_per_node // rollout.tensor_parallel_size on each rollout node. Sync: the
    bf16 policy (2 bytes a parameter, engine.dtype=bfloat16) over cluster.interconnect_gb_per_s
    (25 GB/s, the schema's default, 1 GB = 1e9 bytes)."""
    from oreal.launch.plan import main

    plan = make_plan(load_config(["cluster=slurm", f"experiment={experiment}"]))
    assert plan.ok, plan.problems
    assert (plan.engines_per_node, plan.rollout_engines) == (per_node, per_node * rollout_nodes)
    assert plan.num_params == num_params  # 7,615,616,512 and 32,763,876,352
    assert plan.interconnect_gb_per_s == 25
    assert plan.weight_sync_gb == pytest.approx(num_params * 2 / 1e9)  # 15.23 and 65.53 GB
    assert plan.weight_sync_s == pytest.approx(num_params * 2 / 1e9 / 25)  # 0.609 and 2.621 s
    assert main(["cluster=slurm", f"experiment={experiment}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(line in out for line in printed), out


def test_the_signal_margin_is_checked_against_a_measured_step_and_save(tmp_path):
    """Warned when the margin is shorter than the median step plus the longest checkpoint save."""
    from oreal.launch.plan import check_signal_margin

    rows = [{"step": 1, "perf/time/step": 100.0}, {"step": 2, "perf/time/step": 300.0, "perf/time/last_checkpoint": 40.0},
            {"step": 3, "perf/time/step": 200.0, "perf/time/last_checkpoint": 60.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(["experiment=oreal_7b", "cluster.signal_margin_s=259"])
    plan = make_plan(cfg)
    check_signal_margin(plan, cfg, tmp_path)  # median step 200 + longest save 60 = 260 > 259
    assert plan.warnings == [f"cluster.signal_margin_s=259 is shorter than a step (200 s, median) plus a checkpoint "
                             f"(60 s) measured in {tmp_path}: a time-limit signal would not leave time to finish the "
                             "step and save; raise it above 260"]
    cfg = load_config(["experiment=oreal_7b", "cluster.signal_margin_s=260"])
    plan = make_plan(cfg)
    check_signal_margin(plan, cfg, tmp_path)
    assert plan.warnings == []
