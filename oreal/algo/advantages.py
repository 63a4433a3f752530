"""Group-relative advantage estimators.

Every estimator maps outcome rewards of shape ``[num_groups, K]`` (K samples of the
same prompt per row) to advantages of the same shape. They are registered by name so a
config string selects one; adding an estimator never touches the callers.
"""

from __future__ import annotations

from typing import Callable

import torch

AdvantageFn = Callable[[torch.Tensor], torch.Tensor]
ADVANTAGE_ESTIMATORS: dict[str, AdvantageFn] = {}

GRPO_EPS = 1e-8


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    def wrap(fn: AdvantageFn) -> AdvantageFn:
        if name in ADVANTAGE_ESTIMATORS:
            raise KeyError(f"advantage estimator {name!r} is registered twice")
        ADVANTAGE_ESTIMATORS[name] = fn
        return fn

    return wrap


@register_advantage("rloo")
def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Leave-one-out baseline: ``A_i = r_i - mean_{j != i} r_j`` (Ahmadian et al. 2024).

    Equivalently ``K / (K - 1) * (r_i - mean_j r_j)``; needs K >= 2.
    """
    k = rewards.shape[-1]
    if k < 2:
        raise ValueError(f"rloo needs at least 2 samples per prompt, got K={k}")
    baseline = (rewards.sum(dim=-1, keepdim=True) - rewards) / (k - 1)
    return rewards - baseline


@register_advantage("grpo")
def grpo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """GRPO (Shao et al. 2024): ``(r_i - mean) / (std + 1e-8)``, std unbiased (torch's default).

    A group whose rewards are all equal gets advantage 0 for every sample.
    """
    if rewards.shape[-1] < 2:
        raise ValueError(f"grpo needs at least 2 samples per prompt, got K={rewards.shape[-1]}")
    mean = rewards.mean(dim=-1, keepdim=True)
    std = rewards.std(dim=-1, keepdim=True)
    return (rewards - mean) / (std + GRPO_EPS)


@register_advantage("none")
def raw_reward_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """No baseline: the advantage is the reward itself (plain REINFORCE)."""
    return rewards.clone()


def compute_advantages(rewards: torch.Tensor, estimator: str) -> torch.Tensor:
    """Advantages ``[num_groups, K]`` from rewards ``[num_groups, K]`` with a named estimator."""
    if rewards.ndim != 2:
        raise ValueError(f"rewards must be [num_groups, K], got shape {tuple(rewards.shape)}")
    try:
        fn = ADVANTAGE_ESTIMATORS[estimator]
    except KeyError:
        known = ", ".join(sorted(ADVANTAGE_ESTIMATORS))
        raise ValueError(f"unknown advantage estimator {estimator!r}; choose one of: {known}") from None
    return fn(rewards.float())
