"""``oreal plan``: what a configuration needs on a cluster, worked out before anything runs.

For a model, a cluster (nodes x GPUs) and a layout it gives the parameter count, the split of
nodes into rollout and training roles, and a per-GPU memory estimate: on training GPUs the
policy (bf16 weights and gradients, fp32 master weights and AdamW moments), the token RM (the
same, trainable), the frozen reference (bf16 weights), and activations for one micro-batch at
the full sequence length with per-layer recomputation; on rollout GPUs vLLM's weights and the
KV cache it gets. It refuses layouts that do not divide the model or do not fit, naming why.

Pure arithmetic on the config: no GPU, no engine import.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from oreal.config.schema import Config, ModelConfig

GiB = 1 << 30
BF16 = 2
# policy and token RM as the Megatron engine trains them: bf16 weights + bf16 grads + fp32
# master weights + fp32 Adam moments (no distributed optimizer: every DP replica holds them)
TRAINED_BYTES_PER_PARAM = BF16 + BF16 + 4 + 4 + 4
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
    train_memory: dict[str, float] = field(default_factory=dict)  # GiB per training GPU
    rollout_memory: dict[str, float] = field(default_factory=dict)  # GiB per rollout GPU
    kv_cache_sequences: float = 0.0
    problems: list[str] = field(default_factory=list)

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


def _train_memory(cfg: Config, tp: int, pp: int) -> dict[str, float]:
    m, e = cfg.model, cfg.engine
    shard = max(stage_params(m, pp)) / tp
    s, b, h = cfg.rollout.max_model_len, e.micro_batch_size_per_rank, m.hidden_size
    layers = m.num_layers // pp
    # recomputation keeps each layer's input; one layer is live at a time (Korthikanti et al.
    # 2022, no sequence parallelism) with the unfused attention's [heads, s, s] scores
    live_layer = s * b * h * (10 + 24 / tp) + 5 * m.num_attention_heads * s * s * b / tp
    stored = (layers if e.gradient_checkpointing else layers * 0) * s * b * h * BF16
    if not e.gradient_checkpointing:
        live_layer *= layers
    logits = 2 * s * b * (m.vocab_size / tp) * 4  # fp32 copy for the vocab-parallel cross entropy, and its softmax
    return {
        "policy (weights, grads, fp32 master, Adam)": shard * TRAINED_BYTES_PER_PARAM / GiB,
        "token RM (same, trainable)": shard * TRAINED_BYTES_PER_PARAM / GiB,
        "reference (bf16 weights)": shard * FROZEN_BYTES_PER_PARAM / GiB,
        f"activations (micro-batch {b} x {s} tokens)": (stored + live_layer + logits) / GiB,
    }


def make_plan(cfg: Config) -> Plan:
    m, c, e, r = cfg.model, cfg.cluster, cfg.engine, cfg.rollout
    tp, pp = e.tensor_parallel_size, e.pipeline_parallel_size
    plan = Plan(m.name, param_count(m), m.published_num_params, c.nodes, c.gpus_per_node, c.gpu_memory_gb, tp=tp, pp=pp)
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
    plan.rollout_engines = c.rollout_nodes * c.gpus_per_node // r.tensor_parallel_size

    plan.train_memory = _train_memory(cfg, tp, pp)
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
        lines += [f"rollout nodes {plan.rollout_nodes}: {plan.rollout_engines} vLLM engine(s)",
                  f"training nodes {plan.train_nodes}: Megatron TP={plan.tp} x PP={plan.pp} x DP={plan.dp}"]
    if plan.train_memory:
        lines.append("per training GPU (GiB):")
        lines += [f"  {k:<48} {v:8.1f}" for k, v in plan.train_memory.items()]
        lines.append(f"  {'total':<48} {sum(plan.train_memory.values()):8.1f}")
    if plan.rollout_memory:
        lines.append("per rollout GPU (GiB):")
        lines += [f"  {k:<48} {v:8.1f}" for k, v in plan.rollout_memory.items()]
        lines.append(f"  KV cache holds {plan.kv_cache_sequences:.0f} full-length sequences per engine")
    lines += [f"REFUSED: {p}" for p in plan.problems] or ["layout OK"]
    return "\n".join(lines)


def main(argv) -> int:
    """``oreal plan [Hydra overrides]``, e.g. ``oreal plan experiment=oreal_7b cluster.gpu_memory_gb=80``."""
    from oreal.config.load import ConfigError, load_config

    try:
        cfg = load_config(list(argv))
    except ConfigError as exc:
        print(f"oreal plan: {exc}")
        return 2
    plan = make_plan(cfg)
    print(format_plan(plan))
    return 0 if plan.ok else 1
