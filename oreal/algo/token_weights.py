"""Per-token importance weights from the token-level reward model (OREAL, Sec. 3.3).

The token RM emits one logit ``s_t`` per response position. Its running mean
``c_t = mean(s_1..s_t)`` squashed by a sigmoid, ``p_t = sigmoid(c_t)``, is the RM's
estimate that the sample is correct given its first t tokens. Positive samples weight
their behaviour-cloning loss by how much each token raised that estimate
(``w+`` from ``p``), negative samples weight their policy-gradient loss by ``w-`` from
``1 - p``. ``uniform`` gives every response token weight 1: the token RM is still trained
but its scores do not touch the policy loss (the ablation control that separates the RM's
weights from the rest of full OREAL). All functions here take ``[B, T]`` tensors and a bool ``mask`` over the
response tokens (contiguous per row) and return ``[B, T]`` with zeros off the mask.
"""

from __future__ import annotations

from typing import Callable

import torch

RescaleFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
RESCALERS: dict[str, RescaleFn] = {}


def register_rescale(name: str) -> Callable[[RescaleFn], RescaleFn]:
    def wrap(fn: RescaleFn) -> RescaleFn:
        RESCALERS[name] = fn
        return fn

    return wrap


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors upcast to float32; float32/float64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def running_mean(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``c_t = sum_{u<=t} m_u s_u / sum_{u<=t} m_u`` over masked positions; 0 elsewhere."""
    m = mask.to(scores.dtype)
    total = torch.cumsum(scores * m, dim=-1)
    count = torch.cumsum(m, dim=-1).clamp_min(1.0)
    return total / count * m


@register_rescale("threshold")
def threshold_rescale(prob: torch.Tensor, mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """``clamp((p - threshold) / (1 - threshold), 0, 1)``: tokens below the threshold get 0."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    return ((prob - threshold) / (1.0 - threshold)).clamp(0.0, 1.0) * mask.to(prob.dtype)


@register_rescale("uniform")
def uniform_rescale(prob: torch.Tensor, mask: torch.Tensor, param: float) -> torch.Tensor:
    """1 on every response token whatever the RM says (``param`` is ignored)."""
    return mask.to(prob.dtype)


@register_rescale("topk")
def topk_rescale(prob: torch.Tensor, mask: torch.Tensor, ratio: float) -> torch.Tensor:
    """Keep the top ``floor(n * ratio)`` tokens of each row (n = its response length) by
    probability, min-max normalise their values to [0, 1] (all 1 when they are equal),
    zero elsewhere. A row whose k is 0 gets all zeros.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"top-k ratio must be in (0, 1], got {ratio}")
    lengths = mask.sum(dim=-1)
    k = torch.floor(lengths.to(torch.float64) * ratio).long()  # float64: exact floor for n*ratio
    masked = prob.masked_fill(~mask, float("-inf"))
    # Rank of every position in its row's descending order (stable, so ties break by position).
    order = torch.sort(masked, dim=-1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(prob.shape[-1], device=prob.device).expand_as(order))
    keep = (ranks < k[:, None]) & mask
    sorted_vals = torch.gather(masked, -1, order)
    hi = sorted_vals[:, :1]
    lo = torch.gather(sorted_vals, -1, (k - 1).clamp_min(0)[:, None])
    span = hi - lo
    flat = span <= 0
    normalised = torch.where(flat, torch.ones_like(prob), (prob - lo) / torch.where(flat, torch.ones_like(span), span))
    return torch.where(keep, normalised, torch.zeros_like(prob))


def token_weights(
    rm_scores: torch.Tensor,
    mask: torch.Tensor,
    *,
    rescale: str = "threshold",
    correct_param: float = 0.5,
    incorrect_param: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w_pos, w_neg)``, both ``[B, T]`` and without gradient.

    ``rescale`` is ``"threshold"`` (params are thresholds), ``"topk"`` (params are ratios) or
    ``"uniform"`` (params ignored, every weight 1); ``w_pos`` rescales ``p_t``, ``w_neg``
    rescales ``1 - p_t``.
    """
    try:
        fn = RESCALERS[rescale]
    except KeyError:
        raise ValueError(f"unknown token-weight rescale {rescale!r}; choose one of: {', '.join(RESCALERS)}") from None
    with torch.no_grad():
        prob = torch.sigmoid(running_mean(full_precision(rm_scores.detach()), mask))
        return fn(prob, mask, correct_param), fn(1.0 - prob, mask, incorrect_param)
