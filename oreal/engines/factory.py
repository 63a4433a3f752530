"""Engines built from config, selected by name from registries (heavy imports stay lazy)."""

from __future__ import annotations

from typing import Callable

from oreal.config.schema import Config
from oreal.engines.distributed import DistEnv
from oreal.engines.protocols import PolicyEngine, RolloutEngine

RolloutBuilder = Callable[[Config, str], RolloutEngine]
PolicyBuilder = Callable[[Config, str, DistEnv], PolicyEngine]


def _vllm(cfg: Config, model_path: str) -> RolloutEngine:
    from oreal.engines.vllm import VLLMRolloutEngine

    r = cfg.rollout
    return VLLMRolloutEngine(model_path, dtype=r.dtype or cfg.model.dtype, max_model_len=r.max_model_len,
                             kv_cache_gb=r.kv_cache_gb, gpu_memory_utilization=r.gpu_memory_utilization,
                             enforce_eager=r.enforce_eager, tensor_parallel_size=r.tensor_parallel_size, seed=cfg.seed)


def _hf(cfg: Config, model_path: str) -> RolloutEngine:
    import torch

    from oreal.engines.hf_rollout import HFRolloutEngine

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return HFRolloutEngine(model_path, dtype=cfg.rollout.dtype or cfg.model.dtype, device=device)


def _replay(cfg: Config, model_path: str) -> RolloutEngine:
    from transformers import AutoTokenizer

    from oreal.engines.replay import ReplayRolloutEngine

    return ReplayRolloutEngine(cfg.rollout.replay_path, AutoTokenizer.from_pretrained(model_path))


ROLLOUT_BUILDERS: dict[str, RolloutBuilder] = {"vllm": _vllm, "hf": _hf, "replay": _replay}


def policy_schedule_delay(cfg: Config) -> int:
    """RL steps before the policy's lr schedule starts: the freeze with
    ``algo.schedule_after_freeze``, else 0 (the schedule runs through the frozen steps)."""
    return cfg.algo.actor_freeze_steps if cfg.algo.schedule_after_freeze else 0


def _torch(cfg: Config, model_path: str, dist_env: DistEnv) -> PolicyEngine:
    from oreal.engines.torch_policy import TorchPolicyEngine

    t = cfg.trainer
    return TorchPolicyEngine(
        model_path, dtype=cfg.engine.dtype, use_reference=cfg.algo.uses_reference, use_token_rm=cfg.algo.uses_token_rm,
        policy_optim=t.policy_optim, token_rm_optim=t.token_rm_optim, total_steps=t.num_steps,
        policy_schedule_delay=policy_schedule_delay(cfg), micro_batch_size=cfg.engine.micro_batch_size_per_rank,
        logprob_chunk_size=cfg.engine.logprob_chunk_size,
        gradient_checkpointing=cfg.engine.gradient_checkpointing, pack_row_tokens=cfg.engine.pack_row_tokens,
        dist_env=dist_env, seed=cfg.seed,
    )


def _megatron(cfg: Config, model_path: str, dist_env: DistEnv) -> PolicyEngine:
    from oreal.engines.megatron.engine import MegatronPolicyEngine

    t, e = cfg.trainer, cfg.engine
    return MegatronPolicyEngine(
        model_path, tensor_parallel_size=e.tensor_parallel_size, pipeline_parallel_size=e.pipeline_parallel_size,
        dtype=e.dtype, use_reference=cfg.algo.uses_reference, use_token_rm=cfg.algo.uses_token_rm,
        policy_optim=t.policy_optim, token_rm_optim=t.token_rm_optim, total_steps=t.num_steps,
        policy_schedule_delay=policy_schedule_delay(cfg), micro_batch_size=e.micro_batch_size_per_rank,
        attention=e.attention, packing=e.packing,
        micro_batch_tokens=e.micro_batch_tokens_per_rank, distributed_optimizer=e.distributed_optimizer, seed=cfg.seed,
    )


POLICY_BUILDERS: dict[str, PolicyBuilder] = {"torch": _torch, "megatron": _megatron}


def build_rollout_engine(cfg: Config, model_path: str) -> RolloutEngine:
    return ROLLOUT_BUILDERS[cfg.rollout.engine](cfg, model_path)


def build_policy_engine(cfg: Config, model_path: str, dist_env: DistEnv) -> PolicyEngine:
    try:
        builder = POLICY_BUILDERS[cfg.engine.name]
    except KeyError:
        raise ValueError(f"engine.name={cfg.engine.name!r} has no builder; available: {', '.join(POLICY_BUILDERS)}") from None
    return builder(cfg, model_path, dist_env)
