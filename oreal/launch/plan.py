"""``oreal plan``: what a configuration needs on a cluster, worked out before anything runs.

For a model, a cluster (nodes x GPUs) and a layout it gives the parameter count, the split of
nodes into rollout and training roles, and a per-GPU memory estimate: on training GPUs the
policy (bf16 weights and gradients, fp32 master weights and AdamW moments), the token RM (the
same, trainable), the frozen reference (bf16 weights), and activations for one micro-batch at
the full sequence length with per-layer recomputation (with the unfused local attention's
``[heads, s, s]`` scores; fused attention keeps only per-row softmax statistics); on rollout
GPUs vLLM's weights and the KV cache it gets. It refuses layouts that do not divide the model
or do not fit, naming why.

It also estimates a training step's time: the model FLOPs of the step's three passes
(:func:`step_flops`) over the training GPUs' peak at an *assumed* MFU (``--mfu``, default
0.4), with every sequence at ``rollout.max_model_len`` unless ``--mean-tokens`` says otherwise.

Pure arithmetic on the config: no GPU, no engine import.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from oreal.config.schema import Config, ModelConfig
from oreal.launch.layout import engine_slots, engines_per_node

GiB = 1 << 30
BF16 = 2
# policy and token RM as the Megatron engine trains them: bf16 weights + bf16 grads, and the
# optimiser state: fp32 master weights, their fp32 gradients at the step, two fp32 Adam moments,
# split over the data-parallel ranks with engine.distributed_optimizer (whole parameters: the
# split is taken as even)
WEIGHT_AND_GRAD_BYTES = BF16 + BF16
OPTIMIZER_BYTES_PER_PARAM = 4 + 4 + 4 + 4
FROZEN_BYTES_PER_PARAM = BF16


def layer_params(m: ModelConfig) -> int:
    head_dim = m.hidden_size // m.num_attention_heads
    q = m.hidden_size * m.num_attention_heads * head_dim + m.num_attention_heads * head_dim
    kv = 2 * (m.hidden_size * m.num_kv_heads * head_dim + m.num_kv_heads * head_dim)
    o = m.num_attention_heads * head_dim * m.hidden_size
    mlp = 3 * m.hidden_size * m.intermediate_size
    return q + kv + o + mlp + 2 * m.hidden_size


def param_count(m: ModelConfig) -> int:
    """Parameters of a Qwen2-architecture causal LM (embeddings counted twice when untied)."""
    embed = m.vocab_size * m.hidden_size
    return embed * (1 if m.tie_word_embeddings else 2) + m.num_layers * layer_params(m) + m.hidden_size


def layer_matmul_params(m: ModelConfig) -> int:
    """Weights of one layer's matrix multiplies (q, k, v, o and the three MLP projections)."""
    head_dim = m.hidden_size // m.num_attention_heads
    return m.hidden_size * head_dim * (2 * m.num_attention_heads + 2 * m.num_kv_heads) + 3 * m.hidden_size * m.intermediate_size


def forward_flops(m: ModelConfig, lengths: Sequence[int], lm_head: bool = True) -> float:
    """Model FLOPs of one forward pass over whole sequences of ``lengths`` tokens: 2 per
    weight of every matrix multiply per token (layers, and the vocabulary projection unless
    ``lm_head`` is off), plus causal attention, ``2 * 2 * L^2 / 2 * hidden`` per layer for a
    sequence of ``L`` (the ``q k^T`` and ``p v`` products, only the causal half counted).
    Padding is not model work: it is never counted."""
    tokens = sum(lengths)
    per_token = 2 * m.num_layers * layer_matmul_params(m) + (2 * m.vocab_size * m.hidden_size if lm_head else 0)
    attention = 2 * m.num_layers * m.hidden_size * sum(n * n for n in lengths)
    return float(per_token * tokens + attention)


def step_flops(m: ModelConfig, lengths: Sequence[int], reference: bool = True, token_rm: bool = True) -> float:
    """Model FLOPs of one OREAL training step as the engines run it: the frozen reference
    forward, the token RM forward and backward (backward = 2 x forward; its ``hidden -> 1``
    head is negligible) and the policy forward and backward."""
    lm = forward_flops(m, lengths)
    return 3 * lm + (lm if reference else 0.0) + (3 * forward_flops(m, lengths, lm_head=False) if token_rm else 0.0)


@dataclass(frozen=True)
class StepAssumptions:
    """What the step-time estimate assumes (``oreal plan --mfu --peak-tflops --mean-tokens``)."""

    mfu: float = 0.4  # model FLOPs utilisation: an assumption, not a measurement
    peak_tflops: float = 989.0  # per GPU, bf16 dense: H100 / H200 SXM
    mean_tokens: Optional[int] = None  # tokens per sequence; None: rollout.max_model_len (an upper bound)


def stage_params(m: ModelConfig, pp: int) -> list[int]:
    """Parameters held by each pipeline stage (embedding on the first, head on the last)."""
    per = m.num_layers // pp * layer_params(m)
    stages = [per] * pp
    embed = m.vocab_size * m.hidden_size
    stages[0] += embed
    stages[-1] += m.hidden_size + (0 if m.tie_word_embeddings and pp == 1 else embed)
    return stages


@dataclass
class Plan:
    model: str
    num_params: int
    published: float | None
    nodes: int
    gpus_per_node: int
    gpu_memory_gb: float
    rollout_nodes: list[int] = field(default_factory=list)
    train_nodes: list[int] = field(default_factory=list)
    tp: int = 1
    pp: int = 1
    dp: int = 0
    rollout_engines: int = 0
    engines_per_node: int = 0
    weight_sync_gb: float = 0.0
    weight_sync_s: float = 0.0
    interconnect_gb_per_s: float = 0.0
    train_memory: dict[str, float] = field(default_factory=dict)  # GiB per training GPU
    rollout_memory: dict[str, float] = field(default_factory=dict)  # GiB per rollout GPU
    kv_cache_sequences: float = 0.0
    assumptions: StepAssumptions = field(default_factory=StepAssumptions)
    step_sequences: int = 0
    step_tokens_per_sequence: int = 0  # as computed: padded micro-batches compute every sequence at full length
    step_flops: float = 0.0
    step_time_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _divisibility(m: ModelConfig, tp: int, pp: int) -> list[str]:
    out = []
    for what, n in (("num_attention_heads", m.num_attention_heads), ("num_kv_heads", m.num_kv_heads),
                    ("intermediate_size", m.intermediate_size), ("vocab_size", m.vocab_size)):
        if n % tp:
            out.append(f"engine.tensor_parallel_size={tp} does not divide model.{what}={n}")
    if m.num_layers % pp:
        out.append(f"engine.pipeline_parallel_size={pp} does not divide model.num_layers={m.num_layers}")
    return out


def _megatron_packs(cfg: Config) -> bool:
    return cfg.engine.name == "megatron" and cfg.engine.packing


def _micro_batch_shape(cfg: Config) -> tuple[int, int]:
    """``(rows, tokens per row)`` of the largest micro-batch: a packed Megatron row holds the
    token budget (or one full-length sequence, if longer); otherwise rows are full length."""
    e, s = cfg.engine, cfg.rollout.max_model_len
    return (1, max(e.micro_batch_tokens_per_rank, s)) if _megatron_packs(cfg) else (e.micro_batch_size_per_rank, s)


def trained_bytes_per_param(cfg: Config, dp: int) -> float:
    """Bytes per parameter of this rank's shard that a trained model (policy, token RM) holds."""
    sharded = cfg.engine.name == "megatron" and cfg.engine.distributed_optimizer
    return WEIGHT_AND_GRAD_BYTES + OPTIMIZER_BYTES_PER_PARAM / (max(dp, 1) if sharded else 1)


def _train_memory(cfg: Config, tp: int, pp: int, dp: int) -> dict[str, float]:
    m, e = cfg.model, cfg.engine
    shard = max(stage_params(m, pp)) / tp
    trained = trained_bytes_per_param(cfg, dp)
    optimiser = "fp32 master, Adam" + (f" / {dp} DP" if trained < WEIGHT_AND_GRAD_BYTES + OPTIMIZER_BYTES_PER_PARAM else "")
    (b, s), h = _micro_batch_shape(cfg), m.hidden_size
    layers = m.num_layers // pp
    # recomputation keeps each layer's input; one layer is live at a time (Korthikanti et al.
    # 2022, no sequence parallelism). The unfused local attention adds its [heads, s, s] scores,
    # softmax and dropout mask (5 bytes per score); fused kernels keep the fp32 softmax
    # statistics (one per head and token) instead and recompute the scores in the backward.
    unfused = e.name == "megatron" and e.attention == "local"
    attention = 5 * m.num_attention_heads * s * s * b / tp if unfused else 4 * m.num_attention_heads * s * b / tp
    live_layer = s * b * h * (10 + 24 / tp) + attention
    stored = (layers if e.gradient_checkpointing else layers * 0) * s * b * h * BF16
    if not e.gradient_checkpointing:
        live_layer *= layers
    logits = 2 * s * b * (m.vocab_size / tp) * 4  # fp32 copy for the vocab-parallel cross entropy, and its softmax
    layout = ("packed " if _megatron_packs(cfg) else "padded " if e.name == "megatron" else "") + f"{b} x {s} tokens"
    return {
        f"policy (weights, grads, {optimiser})": shard * trained / GiB,
        "token RM (same, trainable)": shard * trained / GiB,
        "reference (bf16 weights)": shard * FROZEN_BYTES_PER_PARAM / GiB,
        f"activations ({layout}, {'unfused' if unfused else 'fused'} attention)": (stored + live_layer + logits) / GiB,
    }


def _step_time(plan: Plan, cfg: Config, train_gpus: int) -> None:
    """Model FLOPs of one training step and its time on the training GPUs at the assumed MFU.
    Padded micro-batches compute every sequence at the batch's longest length, taken as
    ``rollout.max_model_len``; packed ones compute the tokens there are, every sequence taken
    at ``--mean-tokens`` (which undercounts attention, a sum of squares, when lengths spread)."""
    a = plan.assumptions
    plan.step_sequences = cfg.trainer.num_prompts_per_step * cfg.trainer.num_samples_per_prompt
    packed = cfg.engine.name == "torch" or _megatron_packs(cfg)
    plan.step_tokens_per_sequence = a.mean_tokens if a.mean_tokens and packed else cfg.rollout.max_model_len
    plan.step_flops = step_flops(cfg.model, [plan.step_tokens_per_sequence] * plan.step_sequences,
                                 reference=cfg.algo.uses_reference, token_rm=cfg.algo.uses_token_rm)
    plan.step_time_s = plan.step_flops / (train_gpus * a.peak_tflops * 1e12 * a.mfu) if train_gpus else 0.0


def make_plan(cfg: Config, assumptions: StepAssumptions = StepAssumptions()) -> Plan:
    m, c, e, r = cfg.model, cfg.cluster, cfg.engine, cfg.rollout
    tp, pp = e.tensor_parallel_size, e.pipeline_parallel_size
    plan = Plan(m.name, param_count(m), m.published_num_params, c.nodes, c.gpus_per_node, c.gpu_memory_gb, tp=tp, pp=pp,
                assumptions=assumptions)
    plan.problems += _divisibility(m, tp, pp)
    if c.gpus_per_node <= 0:
        plan.problems.append("cluster.gpus_per_node is 0: plan a GPU cluster (e.g. cluster=slurm)")
        return plan
    if not 0 < c.rollout_nodes < c.nodes:
        plan.problems.append(f"cluster.rollout_nodes={c.rollout_nodes} must leave at least one of cluster.nodes={c.nodes} "
                             "for training and be at least 1")
        return plan
    if tp > c.gpus_per_node:
        plan.problems.append(f"engine.tensor_parallel_size={tp} spans nodes (cluster.gpus_per_node={c.gpus_per_node})")
    plan.rollout_nodes = list(range(c.rollout_nodes))
    plan.train_nodes = list(range(c.rollout_nodes, c.nodes))
    train_gpus = len(plan.train_nodes) * c.gpus_per_node
    if train_gpus % (tp * pp):
        plan.problems.append(f"{train_gpus} training GPUs are not divisible by tensor_parallel_size x pipeline_parallel_size = {tp * pp}")
    plan.dp = train_gpus // (tp * pp)
    if c.gpus_per_node % r.tensor_parallel_size:
        plan.problems.append(f"rollout.tensor_parallel_size={r.tensor_parallel_size} does not divide cluster.gpus_per_node={c.gpus_per_node}")
    plan.engines_per_node = engines_per_node(c.gpus_per_node, r.tensor_parallel_size, r.engines_per_node)
    plan.rollout_engines = len(engine_slots(c.rollout_nodes, c.gpus_per_node, r.tensor_parallel_size, r.engines_per_node))
    # every sync broadcasts the whole policy in the training dtype, once, to every engine worker
    plan.weight_sync_gb = param_count(m) * (4 if e.dtype == "float32" else BF16) / 1e9
    plan.interconnect_gb_per_s = c.interconnect_gb_per_s
    plan.weight_sync_s = plan.weight_sync_gb / c.interconnect_gb_per_s

    plan.train_memory = _train_memory(cfg, tp, pp, plan.dp)
    _step_time(plan, cfg, train_gpus)
    total = sum(plan.train_memory.values())
    if total > c.gpu_memory_gb:
        plan.problems.append(f"training needs about {total:.1f} GiB per GPU, more than cluster.gpu_memory_gb={c.gpu_memory_gb:g}: "
                             "raise engine.tensor_parallel_size or engine.pipeline_parallel_size")

    head_dim = m.hidden_size // m.num_attention_heads
    kv_per_token = 2 * m.num_layers * m.num_kv_heads * head_dim * BF16 / r.tensor_parallel_size
    weights = param_count(m) * BF16 / r.tensor_parallel_size
    budget = c.gpu_memory_gb * GiB * r.gpu_memory_utilization - weights
    plan.rollout_memory = {"vLLM weights (bf16)": weights / GiB, "KV cache": max(budget, 0) / GiB}
    plan.kv_cache_sequences = max(budget, 0) / (kv_per_token * r.max_model_len)
    if plan.kv_cache_sequences < 1:
        plan.problems.append(f"the rollout KV cache holds less than one {r.max_model_len}-token sequence: "
                             "raise rollout.tensor_parallel_size or rollout.gpu_memory_utilization")
    return plan


def format_plan(plan: Plan) -> str:
    published = f" (published {plan.published / 1e9:.2f}B, {100 * (plan.num_params / plan.published - 1):+.2f}%)" if plan.published else ""
    lines = [f"model {plan.model}: {plan.num_params / 1e9:.3f}B parameters{published}",
             f"cluster: {plan.nodes} nodes x {plan.gpus_per_node} GPUs, {plan.gpu_memory_gb:g} GB each"]
    if plan.rollout_nodes:
        lines += [f"rollout nodes {plan.rollout_nodes}: {plan.engines_per_node} vLLM engine(s) per node of "
                  f"{plan.gpus_per_node // max(plan.engines_per_node, 1)} GPU(s) each, {plan.rollout_engines} in all",
                  f"training nodes {plan.train_nodes}: Megatron TP={plan.tp} x PP={plan.pp} x DP={plan.dp}",
                  f"weight sync: {plan.weight_sync_gb:.1f} GB per step to every engine in one broadcast, about "
                  f"{plan.weight_sync_s:.1f} s at cluster.interconnect_gb_per_s={plan.interconnect_gb_per_s:g}"]
    if plan.train_memory:
        lines.append("per training GPU (GiB):")
        lines += [f"  {k:<56} {v:8.1f}" for k, v in plan.train_memory.items()]
        lines.append(f"  {'total':<56} {sum(plan.train_memory.values()):8.1f}")
    if plan.rollout_memory:
        lines.append("per rollout GPU (GiB):")
        lines += [f"  {k:<56} {v:8.1f}" for k, v in plan.rollout_memory.items()]
        lines.append(f"  KV cache holds {plan.kv_cache_sequences:.0f} full-length sequences per engine")
    if plan.step_flops:
        lines += _format_step(plan)
    lines += [f"WARNING: {w}" for w in plan.warnings]
    lines += [f"REFUSED: {p}" for p in plan.problems] or ["layout OK"]
    return "\n".join(lines)


def check_signal_margin(plan: Plan, cfg: Config, run_dir: Path) -> None:
    """Warn when ``cluster.signal_margin_s`` is shorter than what the run in ``run_dir``
    measured for a step plus a checkpoint: the time-limit signal would come too late to save."""
    from oreal.trainer.tracking import MetricsLog

    rows = MetricsLog(Path(run_dir) / "metrics.jsonl").read()
    steps = sorted(r["perf/time/step"] for r in rows if "perf/time/step" in r)
    saves = [r["perf/time/last_checkpoint"] for r in rows if "perf/time/last_checkpoint" in r]
    if not steps:
        plan.warnings.append(f"{run_dir}: no measured step yet, the signal margin cannot be checked")
        return
    step, save = steps[len(steps) // 2], max(saves, default=0.0)
    if cfg.cluster.signal_margin_s < step + save:
        plan.warnings.append(f"cluster.signal_margin_s={cfg.cluster.signal_margin_s} is shorter than a step "
                             f"({step:.0f} s, median) plus a checkpoint ({save:.0f} s) measured in {run_dir}: a time-limit "
                             f"signal would not leave time to finish the step and save; raise it above {step + save:.0f}")


def _assumptions(argv) -> tuple[StepAssumptions, Optional[Path], list[str]]:
    """The step-time flags and ``--run``; the rest of ``argv`` are Hydra overrides."""
    ap = argparse.ArgumentParser(prog="oreal plan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 usage="oreal plan [--mfu F] [--peak-tflops T] [--mean-tokens N] [--run DIR] [OVERRIDES...]")
    ap.add_argument("--mfu", type=float, default=StepAssumptions.mfu, help="assumed model FLOPs utilisation (default 0.4)")
    ap.add_argument("--peak-tflops", type=float, default=StepAssumptions.peak_tflops, help="bf16 dense peak per GPU")
    ap.add_argument("--mean-tokens", type=int, default=None, help="mean tokens per trained sequence (default: the max)")
    ap.add_argument("--run", type=Path, help="a run folder whose measured step and checkpoint times check cluster.signal_margin_s")
    args, overrides = ap.parse_known_args(list(argv))
    if not 0 < args.mfu <= 1 or args.peak_tflops <= 0 or (args.mean_tokens is not None and args.mean_tokens <= 0):
        raise ValueError(f"--mfu={args.mfu} must be in (0, 1], --peak-tflops={args.peak_tflops} and "
                         f"--mean-tokens={args.mean_tokens} must be > 0")
    return StepAssumptions(args.mfu, args.peak_tflops, args.mean_tokens), args.run, overrides


def _format_step(plan: Plan) -> list[str]:
    a = plan.assumptions
    if a.mean_tokens and plan.step_tokens_per_sequence == a.mean_tokens:
        lengths = f"sequences of {a.mean_tokens} tokens on average (--mean-tokens)"
    elif a.mean_tokens:
        lengths = "padded micro-batches: every sequence computed at rollout.max_model_len, whatever --mean-tokens"
    else:
        lengths = "every sequence at rollout.max_model_len, an upper bound (--mean-tokens N assumes a mean)"
    return [f"training step (reference, token RM and policy passes; rollout not included): "
            f"{plan.step_flops / 1e15:,.0f} PFLOP of model FLOPs for {plan.step_sequences} sequences x "
            f"{plan.step_tokens_per_sequence} tokens",
            f"  ASSUMED: MFU {a.mfu:g} (--mfu) of {a.peak_tflops:g} TFLOP/s bf16 dense per GPU (--peak-tflops); {lengths}",
            f"  estimated step time {plan.step_time_s:,.0f} s on {len(plan.train_nodes) * plan.gpus_per_node} training GPUs"]


def main(argv) -> int:
    """``oreal plan [--mfu 0.4] [--peak-tflops 989] [--mean-tokens N] [Hydra overrides]``,
    e.g. ``oreal plan experiment=oreal_7b cluster.gpu_memory_gb=80 --mean-tokens 6000``."""
    from oreal.config.load import ConfigError, load_config

    try:
        assumptions, run_dir, overrides = _assumptions(argv)
        cfg = load_config(overrides)
    except (ConfigError, ValueError) as exc:
        print(f"oreal plan: {exc}")
        return 2
    plan = make_plan(cfg, assumptions)
    if run_dir is not None:
        check_signal_margin(plan, cfg, run_dir)
    print(format_plan(plan))
    return 0 if plan.ok else 1
