"""The typed config tree. YAML files under ``conf/`` only carry values; the types, defaults
and documentation of every field live here. The entry point converts the composed Hydra
config into these dataclasses once (:func:`oreal.config.load.to_config`); nothing below
it sees a DictConfig.

The ``algo`` node is polymorphic: each loss variant of :mod:`oreal.algo.variants` has its own
dataclass, and ``conf/algo/<name>.yaml`` selects it through its defaults list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING

from oreal.algo.variants import AlgoConfig

ROLLOUT_ENGINES = ("vllm", "hf", "replay")
POLICY_ENGINES = ("torch", "megatron")
ATTENTION_BACKENDS = ("local", "sdpa", "flex", "te")
DTYPES = ("float32", "bfloat16", "float16")
WANDB_MODES = ("online", "offline", "disabled")


@dataclass
class ModelConfig:
    """A Qwen2-architecture causal LM. ``path`` is a local directory or a hub name; the
    architecture numbers are the published ones (used to build the tiny model, to validate
    parallel layouts and by ``oreal plan``)."""

    name: str = MISSING
    path: str = MISSING
    vocab_size: int = MISSING
    hidden_size: int = MISSING
    intermediate_size: int = MISSING
    num_layers: int = MISSING
    num_attention_heads: int = MISSING
    num_kv_heads: int = MISSING
    max_position_embeddings: int = 32768
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    dtype: str = "bfloat16"
    # Built on this machine by `oreal init-tiny` when `path` does not exist (no hub access needed).
    build_locally: bool = False
    # Published parameter count, checked by `oreal plan` and its test (None: not published).
    published_num_params: Optional[float] = None


@dataclass
class FieldMap:
    """Column names of a prompt dataset. ``None`` means the column does not exist."""

    problem: str = "problem"
    answer: str = "answer"
    pass_rate: Optional[str] = None
    subject: Optional[str] = None
    level: Optional[str] = None
    id: Optional[str] = None


@dataclass
class SourceConfig:
    """One prompt source. ``kind``: ``jsonl`` / ``parquet`` (a file), ``hub`` (a Hugging Face
    dataset name, loaded with ``datasets.load_dataset``), ``cpu_task`` (the generated
    arithmetic task; ``path`` is the split name), or ``auto`` (from the file suffix)."""

    path: str = MISSING
    kind: str = "auto"
    split: str = "train"
    weight: float = 1.0
    sha256: Optional[str] = None
    limit: Optional[int] = None
    fields: FieldMap = field(default_factory=FieldMap)
    # keep only prompts whose level (``fields.level``) is one of these; None keeps all. Two
    # sources on one file with different levels and weights give any level mix.
    levels: Optional[list[str]] = None
    # a file made by a command (e.g. `oreal passrate`): when it is missing, the config fails
    # with this command in the message instead of a bare file-not-found at run time
    produced_by: Optional[str] = None


@dataclass
class EvalSetConfig:
    """An evaluation set: ``num_samples`` answers per problem at the given sampling settings;
    ``max_new_tokens: null`` uses the rollout's."""

    source: SourceConfig = field(default_factory=SourceConfig)
    num_problems: Optional[int] = None
    num_samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: Optional[int] = None


@dataclass
class PassRateBandConfig:
    low: float = 0.0
    high: float = 1.0
    repeat: int = 1


@dataclass
class CPUTaskConfig:
    """The generated arithmetic word problems of the default CPU experiment."""

    seed: int = 1234
    num_train: int = 4000
    num_heldout: int = 200
    num_sft: int = 4000
    # difficulty levels to draw from, in turn (1: one step; 2: two steps; 3: +-*/; 4: fractions)
    levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    # share of SFT solutions that give the (right) answer without working
    sft_answer_only_rate: float = 0.0


@dataclass
class SkillReplayConfig:
    """Skill-based enhancement (ladder row 5, ``oreal/data/skills.py``): a share ``fraction`` of
    each batch revisits the skills (prompt field ``key``: subject, level or subject_level) of the
    last ``memory`` prompts whose whole group was wrong."""

    enabled: bool = False
    fraction: float = 0.25
    memory: int = 64
    key: str = "subject"


@dataclass
class DataConfig:
    train: dict[str, SourceConfig] = field(default_factory=dict)
    eval: dict[str, EvalSetConfig] = field(default_factory=dict)
    # Files under oreal/data/prompts/ and oreal/data/templates/, referenced by name.
    system_prompt: Optional[str] = "oreal"
    chat_template: str = "tokenizer"
    max_prompt_tokens: int = 2048
    difficulty_balance: bool = False
    pass_rate_bands: list[PassRateBandConfig] = field(
        default_factory=lambda: [
            PassRateBandConfig(0.0, 0.2, 6),
            PassRateBandConfig(0.2, 0.4, 4),
            PassRateBandConfig(0.4, 0.6, 4),
            PassRateBandConfig(0.6, 0.8, 2),
        ]
    )
    cpu_task: CPUTaskConfig = field(default_factory=CPUTaskConfig)
    skill_replay: SkillReplayConfig = field(default_factory=SkillReplayConfig)


@dataclass
class RolloutConfig:
    """Sampling engine and settings. ``top_k: 0`` disables top-k (the reference's convention)."""

    engine: str = "vllm"
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 0
    max_new_tokens: int = 14000
    max_model_len: int = 16384
    stop: list[str] = field(default_factory=list)
    dtype: Optional[str] = None  # None: the model's dtype
    tensor_parallel_size: int = 1
    # vLLM's KV cache is always sized explicitly: on CPU in bytes, on GPU as a memory fraction.
    kv_cache_gb: float = 1.0
    gpu_memory_utilization: float = 0.85
    enforce_eager: bool = True
    replay_path: Optional[str] = None
    # --- the fleet of engines on the rollout nodes of a Slurm allocation (oreal/launch/) ---
    # engines per rollout node; None: gpus_per_node // tensor_parallel_size (GPU nodes), 1 (CPU)
    engines_per_node: Optional[int] = None
    # "collective": one broadcast to every engine worker (NCCL / gloo); "socket": pickled
    # buckets over each engine's control connection (fallback)
    weight_transport: str = "collective"
    # every wait on a rollout engine is bounded (seconds): engines announcing themselves at
    # start-up (model load, on every node), one step's generation, one weight sync
    connect_timeout_s: float = 1800.0
    request_timeout_s: float = 3000.0
    sync_timeout_s: float = 600.0
    heartbeat_s: float = 10.0


@dataclass
class JudgeConfig:
    """Optional LLM judge behind an OpenAI-compatible server; asked only when the rule
    checker does not say correct. The API key is read from the environment variable named
    by ``api_key_env`` and is never written anywhere."""

    enabled: bool = False
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "Qwen/Qwen2.5-72B-Instruct"
    api_key_env: str = "OREAL_JUDGE_API_KEY"
    max_concurrency: int = 16
    request_timeout_s: float = 60.0
    max_retries: int = 3
    deadline_s: float = 600.0
    # after this many failures in a row the judge is not asked again until one succeeds (each
    # answer it would have judged is a judge_error at once), so a dead judge costs seconds
    max_consecutive_errors: int = 16
    # a step whose judged answers failed more often than this stops the run (1.0: never stop)
    max_error_rate: float = 0.2


@dataclass
class RewardConfig:
    timeout_s: float = 5.0
    memory_mb: int = 2048
    num_workers: int = 0  # 0: one per CPU core
    thinking_markers: list[str] = field(default_factory=lambda: ["</think>", "**Final Answer**", "<conclude>"])
    judge: JudgeConfig = field(default_factory=JudgeConfig)


@dataclass
class EngineConfig:
    """The policy engine (training side)."""

    name: str = "torch"
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    micro_batch_size_per_rank: int = 4
    logprob_chunk_size: int = 1024
    # Padding-free micro-batches: sequences packed into rows of at most this many tokens.
    pack_row_tokens: int = 1024
    gradient_checkpointing: bool = False
    dtype: str = "float32"
    sync_bucket_mb: int = 256
    # Core attention (Megatron engine): "local" (Megatron's unfused attention, padded micro-
    # batches only), "sdpa" (torch's fused scaled_dot_product_attention), "flex" (FlexAttention
    # with a document mask; trains on GPU only) or "te" (Transformer Engine, where installed).
    # The torch engine always runs transformers' SDPA on packed rows: it takes "sdpa" only.
    attention: str = "sdpa"
    # Megatron engine: each micro-batch is one row of whole sequences packed back to back and
    # padded to micro_batch_tokens_per_rank tokens (raised to the longest sequence; a batch with
    # fewer tokens is one row of its own length), attention confined to each sequence; false:
    # micro_batch_size_per_rank sequences per micro-batch, each padded to the longest of the
    # batch. The torch engine always packs (pack_row_tokens).
    packing: bool = True
    micro_batch_tokens_per_rank: int = 16384
    # Megatron engine: the fp32 master weights and AdamW moments of policy and token RM split
    # over data-parallel ranks (ZeRO stage 1 over whole parameters, oreal/engines/megatron/
    # optimizer_shards.py): each rank steps the parameters it owns, then broadcasts them.
    distributed_optimizer: bool = True


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then cosine decay to ``min_lr``."""

    lr: float = 5e-7
    min_lr: float = 1e-7
    warmup_steps: int = 10
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    betas: tuple[float, float] = (0.9, 0.95)


@dataclass
class SFTConfig:
    """Warm start by supervised fine-tuning (the CPU experiment); cached by content hash."""

    enabled: bool = False
    num_epochs: int = 1
    batch_size: int = 32
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-3, min_lr=3e-4, warmup_steps=20, weight_decay=0.0))


@dataclass
class TrainerConfig:
    num_steps: int = 90
    num_prompts_per_step: int = 64
    num_samples_per_prompt: int = 16
    policy_optim: OptimConfig = field(default_factory=OptimConfig)
    token_rm_optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-6, min_lr=4e-7))
    eval_every: int = 10  # 0 disables periodic evaluation
    eval_at_start: bool = True
    checkpoint_every: int = 10
    keep_last_checkpoints: int = 2
    # resume a run folder even though result-shaping fields changed (oreal/trainer/identity.py)
    resume_despite_changes: bool = False
    # write the final policy as a Hugging Face model folder, <run_dir>/final_model
    export_final_model: bool = True
    save_trajectories: bool = True
    sft: SFTConfig = field(default_factory=SFTConfig)


@dataclass
class LoggingConfig:
    wandb_mode: str = "offline"
    project: str = "oreal"
    entity: Optional[str] = None
    group: Optional[str] = None
    run_name: Optional[str] = None
    job_type: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    progress_bars: bool = True


@dataclass
class ClusterConfig:
    """Where the job runs. ``launcher`` is informational; the launcher itself is selected by
    the cluster YAML's ``hydra/launcher`` override."""

    name: str = "local"
    launcher: str = "local"
    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    nodes: int = 1
    gpus_per_node: int = 0
    gpu_memory_gb: float = 80.0
    cpus_per_task: int = 2
    mem_gb: int = 16
    timeout_min: int = 60
    rollout_nodes: int = 0
    # tasks per node; None: one per GPU, or one on CPU nodes
    tasks_per_node: Optional[int] = None
    setup: list[str] = field(default_factory=list)
    # the time-limit signal arrives this many seconds before the limit: enough to finish a
    # step and save (`oreal plan --run DIR` compares it with a run's measured times)
    signal_margin_s: int = 300
    # a stopped job requeues itself (trainer rank 0, `scontrol requeue`) at most this often
    max_requeues: int = 20
    # effective bandwidth of the weight broadcast from the trainer to the rollout nodes (NCCL
    # over the cluster's network), for `oreal plan`'s weight-sync estimate
    interconnect_gb_per_s: float = 25.0
    # collectives between trainer ranks time out after this long; ranks other than 0 wait in
    # one while rank 0 collects a step's rollouts, so keep it above rollout.request_timeout_s
    collective_timeout_min: float = 60.0

    @property
    def num_tasks_per_node(self) -> int:
        return tasks_per_node(self.tasks_per_node, self.gpus_per_node)


def tasks_per_node(configured: Optional[int], gpus_per_node: int) -> int:
    """Slurm tasks per node: as configured, else one per GPU (one on CPU nodes)."""
    return int(configured) if configured is not None else max(int(gpus_per_node), 1)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    algo: AlgoConfig = MISSING
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    name: str = "default"
    seed: int = 0
    run_dir: str = MISSING
    cache_dir: str = ".cache"
