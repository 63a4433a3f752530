"""Trajectory filters (which samples of a step are trained on) and offline difficulty balance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

FilterFn = Callable[[torch.Tensor, Optional[torch.Generator]], torch.Tensor]
TRAJECTORY_FILTERS: dict[str, FilterFn] = {}


def register_filter(name: str) -> Callable[[FilterFn], FilterFn]:
    def wrap(fn: FilterFn) -> FilterFn:
        TRAJECTORY_FILTERS[name] = fn
        return fn

    return wrap


def mixed_groups(rewards: torch.Tensor) -> torch.Tensor:
    """``[num_groups]`` True where a group has at least one correct and one incorrect sample."""
    correct = rewards > 0
    return correct.any(dim=-1) & ~correct.all(dim=-1)


@register_filter("none")
def keep_all(rewards: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    return torch.ones_like(rewards, dtype=torch.bool)


@register_filter("drop_uniform")
def drop_uniform_groups(rewards: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Drop groups whose pass rate is 0 or 1: their group-relative advantages are all 0."""
    return mixed_groups(rewards)[:, None].expand_as(rewards).clone()


@register_filter("pair")
def keep_one_pair(rewards: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """In every mixed group keep one uniformly chosen correct and one incorrect sample.

    Random keys from ``generator`` make the choice reproducible: within each class the sample
    with the largest key wins.
    """
    correct = rewards > 0
    keys = torch.rand(rewards.shape, generator=generator)
    keep = torch.zeros_like(correct)
    for cls in (correct, ~correct):
        scored = torch.where(cls, keys, torch.full_like(keys, -1.0))
        winner = scored.argmax(dim=-1, keepdim=True)
        keep.scatter_(-1, winner, True)
    return keep & mixed_groups(rewards)[:, None]


def filter_trajectories(rewards: torch.Tensor, mode: str, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Bool mask ``[num_groups, K]`` of the samples to train on."""
    try:
        fn = TRAJECTORY_FILTERS[mode]
    except KeyError:
        raise ValueError(f"unknown trajectory filter {mode!r}; choose one of: {', '.join(TRAJECTORY_FILTERS)}") from None
    return fn(rewards, generator)


@dataclass(frozen=True)
class PassRateBand:
    """Prompts with ``low <= pass_rate < high`` are repeated ``repeat`` times."""

    low: float
    high: float
    repeat: int


# REFERENCE.md: [0, 0.2) x6, [0.2, 0.4) x4, [0.4, 0.6) x4, [0.6, 0.8) x2; >= 0.8 dropped.
OREAL_BANDS = (PassRateBand(0.0, 0.2, 6), PassRateBand(0.2, 0.4, 4), PassRateBand(0.4, 0.6, 4), PassRateBand(0.6, 0.8, 2))


def difficulty_repeats(pass_rates: Sequence[Optional[float]], bands: Sequence[PassRateBand] = OREAL_BANDS) -> list[int]:
    """How many times each prompt appears after balancing; 0 drops it.

    A prompt without a pass rate (None) is kept once. A pass rate in no band is dropped.
    """
    repeats = []
    for rate in pass_rates:
        if rate is None:
            repeats.append(1)
            continue
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"pass rate must be in [0, 1], got {rate}")
        repeats.append(next((b.repeat for b in bands if b.low <= rate < b.high), 0))
    return repeats
