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


# A group's net below this is negative; exactly balanced pairs (GRPO at pass rate 1/2) are not.
NET_NEGATIVE_TOL = 1e-6


def kept_sample_metrics(
    rewards: torch.Tensor,
    advantages: torch.Tensor,
    keep: torch.Tensor,
    *,
    positive_factor: float = 1.0,
    negative_factor: float = 1.0,
    pos_mult_adv: bool = True,
) -> dict[str, torch.Tensor]:
    """What the trained subset of a step pushes, group by group (all inputs ``[num_groups, K]``).

    Each kept sample's signed weight is what the loss scales its log-likelihood gradient by,
    before token weights and token normalisation: ``negative_factor * A`` for a negative
    sample (``r <= 0``), ``positive_factor * A`` for a positive one (``positive_factor`` alone
    when the loss does not multiply positives by their advantage). A group's net is the sum
    of its kept samples' weights. With the pair filter, RLOO advantages, K samples of which c
    are correct and OREAL's factors (1, 0.5), the net is ``(2K - 3c) / (K - 1)``: negative for
    c > 2K/3, so an easy group pushes the policy down on balance.

    Returns (0-dim tensors): ``train/num_kept_groups`` (groups with a kept sample),
    ``advantage/kept_weighted_mean`` (mean weight over kept samples), ``advantage/kept_group_net``
    (mean net over kept groups) and ``advantage/kept_group_net_negative_frac`` (the share of kept
    groups whose net is below ``-NET_NEGATIVE_TOL``); all 0 when nothing is kept.
    """
    adv = advantages.double()
    positive = rewards > 0
    pos_weight = positive_factor * adv if pos_mult_adv else torch.full_like(adv, positive_factor)
    weight = torch.where(positive, pos_weight, negative_factor * adv) * keep
    kept_groups = keep.any(dim=-1)
    num_groups = kept_groups.sum()
    net = weight.sum(dim=-1)[kept_groups]
    zero = adv.new_zeros(())
    return {
        "train/num_kept_groups": num_groups.to(adv.dtype),
        "advantage/kept_weighted_mean": weight.sum() / keep.sum() if keep.any() else zero,
        "advantage/kept_group_net": net.mean() if num_groups else zero,
        "advantage/kept_group_net_negative_frac": (net < -NET_NEGATIVE_TOL).to(adv.dtype).mean() if num_groups else zero,
    }


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
