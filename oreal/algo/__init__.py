"""The OREAL algorithm as pure torch functions: no engine, Hydra or W&B imports here
(an import-linter contract in CI enforces it)."""

from oreal.algo.advantages import ADVANTAGE_ESTIMATORS, compute_advantages
from oreal.algo.filters import OREAL_BANDS, PassRateBand, difficulty_repeats, filter_trajectories, kept_sample_metrics
from oreal.algo.kl import KL_ESTIMATORS, kl_per_token
from oreal.algo.losses import (
    LossOutput,
    TokenCounts,
    count_tokens,
    oreal_loss,
    policy_gradient_loss,
    token_rm_loss,
    token_weighted_policy_gradient_loss,
)
from oreal.algo.token_weights import running_mean, token_weights
from oreal.algo.variants import (
    LOSS_VARIANTS,
    AlgoConfig,
    GRPOConfig,
    GRPOTokenRMConfig,
    LossInputs,
    OrealConfig,
    OrealNoTokenRMConfig,
    ReinforceConfig,
    RLOOConfig,
    get_variant,
)

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "KL_ESTIMATORS",
    "LOSS_VARIANTS",
    "OREAL_BANDS",
    "AlgoConfig",
    "GRPOConfig",
    "GRPOTokenRMConfig",
    "LossInputs",
    "LossOutput",
    "OrealConfig",
    "OrealNoTokenRMConfig",
    "PassRateBand",
    "RLOOConfig",
    "ReinforceConfig",
    "TokenCounts",
    "compute_advantages",
    "count_tokens",
    "difficulty_repeats",
    "filter_trajectories",
    "get_variant",
    "kept_sample_metrics",
    "kl_per_token",
    "oreal_loss",
    "policy_gradient_loss",
    "running_mean",
    "token_rm_loss",
    "token_weighted_policy_gradient_loss",
    "token_weights",
]
