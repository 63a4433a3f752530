"""Cross-field checks on a typed :class:`Config`.

Each check raises ``ValueError`` whose message starts with the offending field and ends with
the fix, so a bad sweep point fails before it is submitted, in one line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable

from oreal.algo import ADVANTAGE_ESTIMATORS, KL_ESTIMATORS, get_variant
from oreal.algo.filters import TRAJECTORY_FILTERS
from oreal.algo.token_weights import RESCALERS
from oreal.config.schema import ATTENTION_BACKENDS, DTYPES, POLICY_ENGINES, ROLLOUT_ENGINES, WANDB_MODES, Config, SourceConfig

Check = Callable[[Config], None]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    CHECKS.append(fn)
    return fn


def validate(cfg: Config) -> Config:
    """Run every check; returns ``cfg`` unchanged so it can be chained."""
    for fn in CHECKS:
        fn(cfg)
    return cfg


def _one_of(field: str, value: object, allowed: Iterable[object]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{field}={value!r} is not supported; choose one of: {', '.join(map(str, allowed))}")


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)


def _must_divide(field: str, size: int, target_field: str, target: int, model: str) -> None:
    if size < 1 or target % size:
        raise ValueError(
            f"{field}={size} must divide {target_field}={target} of model={model}; choose one of: {_divisors(target)}"
        )


def _positive(field: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{field}={value} must be > 0")


def _tensor_parallel(field: str, size: int, dims: dict[str, int], model: str) -> None:
    """``size`` must divide every sharded dimension; the suggestion lists the sizes that do."""
    common = math.gcd(*dims.values())
    valid = [d for d in range(1, common + 1) if common % d == 0]
    for name, n in dims.items():
        if size < 1 or n % size:
            raise ValueError(f"{field}={size} must divide {name}={n} of model={model}; choose one of: "
                             f"{', '.join(map(str, valid))} (sizes that divide {', '.join(dims)})")


@check
def _parallel_layout(cfg: Config) -> None:
    m, e = cfg.model, cfg.engine
    heads = {"model.num_attention_heads": m.num_attention_heads, "model.num_kv_heads": m.num_kv_heads}
    # Megatron also splits the MLP and the vocabulary over tensor-parallel ranks
    sharded = heads | {"model.intermediate_size": m.intermediate_size, "model.vocab_size": m.vocab_size}
    _tensor_parallel("engine.tensor_parallel_size", e.tensor_parallel_size, sharded if e.name == "megatron" else heads, m.name)
    _tensor_parallel("rollout.tensor_parallel_size", cfg.rollout.tensor_parallel_size, heads, m.name)
    _must_divide("engine.pipeline_parallel_size", e.pipeline_parallel_size, "model.num_layers", m.num_layers, m.name)
    if e.name == "torch" and (e.tensor_parallel_size > 1 or e.pipeline_parallel_size > 1):
        raise ValueError(
            f"engine.tensor_parallel_size={e.tensor_parallel_size}, engine.pipeline_parallel_size={e.pipeline_parallel_size}: "
            "the torch engine is data parallel only; use engine=megatron for tensor/pipeline parallelism"
        )


@check
def _model(cfg: Config) -> None:
    m = cfg.model
    if m.num_attention_heads % m.num_kv_heads:
        raise ValueError(f"model.num_kv_heads={m.num_kv_heads} must divide model.num_attention_heads={m.num_attention_heads}")
    if m.hidden_size % m.num_attention_heads:
        raise ValueError(f"model.hidden_size={m.hidden_size} must be a multiple of model.num_attention_heads={m.num_attention_heads}")
    for field, value in (("model.dtype", m.dtype), ("engine.dtype", cfg.engine.dtype)):
        _one_of(field, value, DTYPES)
    if cfg.rollout.dtype is not None:
        _one_of("rollout.dtype", cfg.rollout.dtype, DTYPES)


@check
def _algo(cfg: Config) -> None:
    a = cfg.algo
    variant = get_variant(a.name)
    if type(a) is not variant.config_cls:
        raise ValueError(
            f"algo.name={a.name!r} does not match the algo schema {type(a).__name__}; select the variant with algo={a.name}"
        )
    _one_of("algo.advantage_estimator", a.advantage_estimator, ADVANTAGE_ESTIMATORS)
    _one_of("algo.kl_estimator", a.kl_estimator, KL_ESTIMATORS)
    _one_of("algo.filter", a.filter, TRAJECTORY_FILTERS)
    if a.kl_coef < 0:
        raise ValueError(f"algo.kl_coef={a.kl_coef} must be >= 0")
    if not 0 <= a.actor_freeze_steps < cfg.trainer.num_steps:
        raise ValueError(
            f"algo.actor_freeze_steps={a.actor_freeze_steps} must be in [0, trainer.num_steps={cfg.trainer.num_steps}); "
            "otherwise the policy never trains"
        )
    if a.schedule_after_freeze and not a.actor_freeze_steps:
        raise ValueError("algo.schedule_after_freeze=true only changes a run with algo.actor_freeze_steps > 0; "
                         "set it to false or give the freeze")
    if a.actor_freeze_steps and not a.uses_token_rm:
        raise ValueError(f"algo.actor_freeze_steps={a.actor_freeze_steps} only makes sense with a token RM (algo={a.name}); set it to 0")
    if a.uses_token_rm:
        _one_of("algo.rescale", a.rescale, RESCALERS)
        for field in ("correct_threshold", "incorrect_threshold"):
            if not 0 <= getattr(a, field) < 1:
                raise ValueError(f"algo.{field}={getattr(a, field)} must be in [0, 1)")
        for field in ("correct_topk_ratio", "incorrect_topk_ratio"):
            if not 0 < getattr(a, field) <= 1:
                raise ValueError(f"algo.{field}={getattr(a, field)} must be in (0, 1]")
    k = cfg.trainer.num_samples_per_prompt
    if k < 2 and (a.advantage_estimator in ("rloo", "grpo") or a.filter != "none"):
        raise ValueError(
            f"trainer.num_samples_per_prompt={k}: algo.advantage_estimator={a.advantage_estimator!r} and "
            f"algo.filter={a.filter!r} compare samples within a group; use at least 2"
        )


@check
def _rollout(cfg: Config) -> None:
    r = cfg.rollout
    _one_of("rollout.engine", r.engine, ROLLOUT_ENGINES)
    if r.engine == "replay" and not r.replay_path:
        raise ValueError("rollout.replay_path is required with rollout.engine=replay; give the JSONL file of responses")
    if not 0 < r.top_p <= 1:
        raise ValueError(f"rollout.top_p={r.top_p} must be in (0, 1]")
    if r.temperature < 0 or r.top_k < 0:
        raise ValueError(f"rollout.temperature={r.temperature} and rollout.top_k={r.top_k} must be >= 0 (top_k 0 disables it)")
    if r.max_new_tokens >= r.max_model_len:
        raise ValueError(
            f"rollout.max_new_tokens={r.max_new_tokens} must be below rollout.max_model_len={r.max_model_len} "
            "to leave room for the prompt"
        )
    if r.max_model_len > cfg.model.max_position_embeddings:
        raise ValueError(
            f"rollout.max_model_len={r.max_model_len} exceeds model.max_position_embeddings={cfg.model.max_position_embeddings}"
        )
    _positive("rollout.kv_cache_gb", r.kv_cache_gb)
    if not 0 < r.gpu_memory_utilization <= 1:
        raise ValueError(f"rollout.gpu_memory_utilization={r.gpu_memory_utilization} must be in (0, 1]")


@check
def _engine(cfg: Config) -> None:
    e = cfg.engine
    _one_of("engine.name", e.name, POLICY_ENGINES)
    _positive("engine.micro_batch_size_per_rank", e.micro_batch_size_per_rank)
    _positive("engine.logprob_chunk_size", e.logprob_chunk_size)
    _positive("engine.pack_row_tokens", e.pack_row_tokens)
    _positive("engine.sync_bucket_mb", e.sync_bucket_mb)
    _positive("engine.micro_batch_tokens_per_rank", e.micro_batch_tokens_per_rank)
    _one_of("engine.attention", e.attention, ATTENTION_BACKENDS)
    if e.name == "torch" and (e.attention != "sdpa" or not e.packing):
        raise ValueError(f"engine.attention={e.attention}, engine.packing={e.packing}: the torch engine always runs "
                         "transformers' SDPA attention on packed rows; use engine.attention=sdpa engine.packing=true, "
                         "or engine=megatron")
    if e.name == "megatron" and e.packing and e.attention == "local":
        raise ValueError("engine.packing=true needs a fused attention (Megatron's local attention takes padded "
                         "micro-batches only): set engine.attention=sdpa, or engine.packing=false")


@check
def _trainer(cfg: Config) -> None:
    t = cfg.trainer
    for field in ("num_steps", "num_prompts_per_step", "num_samples_per_prompt", "keep_last_checkpoints"):
        _positive(f"trainer.{field}", getattr(t, field))
    for field in ("eval_every", "checkpoint_every"):
        if getattr(t, field) < 0:
            raise ValueError(f"trainer.{field}={getattr(t, field)} must be >= 0 (0 disables it)")
    for name, o in (("policy_optim", t.policy_optim), ("token_rm_optim", t.token_rm_optim), ("sft.optim", t.sft.optim)):
        _positive(f"trainer.{name}.lr", o.lr)
        if not 0 <= o.min_lr <= o.lr:
            raise ValueError(f"trainer.{name}.min_lr={o.min_lr} must be in [0, trainer.{name}.lr={o.lr}]")
        if o.warmup_steps < 0 or o.max_grad_norm <= 0:
            raise ValueError(f"trainer.{name}: warmup_steps must be >= 0 and max_grad_norm > 0")
        if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
            raise ValueError(f"trainer.{name}.betas={list(o.betas)} must be two numbers in [0, 1), e.g. [0.9, 0.999]")


@check
def _data(cfg: Config) -> None:
    d = cfg.data
    if not d.train:
        raise ValueError("data.train is empty; pick a data config (data=cpu_task, data=math_train, ...)")
    for name, src in d.train.items():
        if src.weight <= 0:
            raise ValueError(f"data.train.{name}.weight={src.weight} must be > 0")
        _one_of(f"data.train.{name}.kind", src.kind, ("auto", "jsonl", "parquet", "hub", "cpu_task"))
        if d.difficulty_balance and src.fields.pass_rate is None:
            raise ValueError(f"data.train.{name}.fields.pass_rate is not set, but data.difficulty_balance=true balances by "
                             "pass rate (without one every prompt is kept once); map the pass-rate column, or make one "
                             "with `oreal passrate`")
    sources = {f"data.train.{n}": src for n, src in d.train.items()} | {f"data.eval.{n}.source": e.source for n, e in d.eval.items()}
    for field, src in sources.items():
        _source(field, src)
    for name, ev in d.eval.items():
        _positive(f"data.eval.{name}.num_samples", ev.num_samples)
        if ev.max_new_tokens is not None and ev.max_new_tokens >= cfg.rollout.max_model_len:
            raise ValueError(f"data.eval.{name}.max_new_tokens={ev.max_new_tokens} must be below rollout.max_model_len={cfg.rollout.max_model_len}")
    if not d.cpu_task.levels or not set(d.cpu_task.levels) <= {1, 2, 3, 4}:
        raise ValueError(f"data.cpu_task.levels={d.cpu_task.levels} must be a non-empty subset of [1, 2, 3, 4]")
    if not 0 <= d.cpu_task.sft_answer_only_rate <= 1:
        raise ValueError(f"data.cpu_task.sft_answer_only_rate={d.cpu_task.sft_answer_only_rate} must be in [0, 1]")
    s = d.skill_replay
    if s.enabled:
        _one_of("data.skill_replay.key", s.key, ("subject", "level", "subject_level"))
        if not 0 < s.fraction <= 1:
            raise ValueError(f"data.skill_replay.fraction={s.fraction} must be in (0, 1]")
        _positive("data.skill_replay.memory", s.memory)
    for i, band in enumerate(d.pass_rate_bands):
        if not 0 <= band.low < band.high <= 1 or band.repeat < 0:
            raise ValueError(f"data.pass_rate_bands[{i}]={band}: need 0 <= low < high <= 1 and repeat >= 0")


def _source(field: str, src: SourceConfig) -> None:
    if src.levels is not None and not src.levels:
        raise ValueError(f"{field}.levels is empty; list the levels to keep, or null to keep all")
    if src.levels is not None and src.fields.level is None and src.kind != "cpu_task":
        raise ValueError(f"{field}.levels={list(src.levels)} needs {field}.fields.level (the column holding the level)")
    if src.produced_by and not Path(src.path).exists():
        raise ValueError(f"{field}.path={src.path} does not exist; make it with: {src.produced_by}")


@check
def _reward_logging_cluster(cfg: Config) -> None:
    _positive("reward.timeout_s", cfg.reward.timeout_s)
    _positive("reward.memory_mb", cfg.reward.memory_mb)
    if cfg.reward.num_workers < 0:
        raise ValueError(f"reward.num_workers={cfg.reward.num_workers} must be >= 0 (0: one per CPU core)")
    _one_of("logging.wandb_mode", cfg.logging.wandb_mode, WANDB_MODES)
    c = cfg.cluster
    if not 0 <= c.rollout_nodes < c.nodes:
        raise ValueError(
            f"cluster.rollout_nodes={c.rollout_nodes} must be in [0, cluster.nodes={c.nodes}): at least one node must train"
        )


@check
def _fleet(cfg: Config) -> None:
    """The rollout fleet's layout and its timeouts (oreal/launch/layout.py, fleet.py)."""
    from oreal.launch.layout import engines_per_node

    r, c = cfg.rollout, cfg.cluster
    _one_of("rollout.weight_transport", r.weight_transport, ("collective", "socket"))
    if r.engine == "vllm" and r.weight_transport == "socket" and r.tensor_parallel_size > 1:
        # the socket path streams buckets as a generator into collective_rpc, which vLLM's
        # multiprocess executor (every engine with TP > 1) must pickle for its workers
        raise ValueError(f"rollout.weight_transport=socket does not work with rollout.tensor_parallel_size="
                         f"{r.tensor_parallel_size} (vLLM's multiprocess executor cannot pickle the streamed weights); "
                         "use rollout.weight_transport=collective")
    if r.engines_per_node is not None:
        _positive("rollout.engines_per_node", r.engines_per_node)
    engines_per_node(c.gpus_per_node, r.tensor_parallel_size, r.engines_per_node)
    for field in ("connect_timeout_s", "request_timeout_s", "sync_timeout_s", "heartbeat_s"):
        _positive(f"rollout.{field}", getattr(r, field))
    _positive("cluster.collective_timeout_min", c.collective_timeout_min)
    if c.rollout_nodes and r.request_timeout_s >= c.collective_timeout_min * 60:
        raise ValueError(f"rollout.request_timeout_s={r.request_timeout_s:.0f} must be below cluster.collective_timeout_min="
                         f"{c.collective_timeout_min:g} minutes: the other trainer ranks wait in a collective while rank 0 "
                         "collects the rollouts, and rank 0 must see a hung engine first")
    if c.tasks_per_node is not None:
        _positive("cluster.tasks_per_node", c.tasks_per_node)
    if c.signal_margin_s < 0 or c.max_requeues < 0:
        raise ValueError(f"cluster.signal_margin_s={c.signal_margin_s} and cluster.max_requeues={c.max_requeues} must be >= 0")
