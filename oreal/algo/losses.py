"""Loss functions of one RL step, as micro-batch contributions.

Conventions shared by every function here:

* Inputs are ``[B, T]`` tensors for B sequences of one micro-batch; ``mask`` is a bool
  tensor that is True on response ("action") tokens and False on the prompt and padding.
  ``logprobs[b, t]`` is the policy's log-probability of token t of row b (the prediction
  made at position t - 1), and ``rm_scores`` / ``ref_logprobs`` follow the same alignment.
* Normalisers (``num_*``) are GLOBAL counts over the whole RL step: every sample of every
  micro-batch on every data-parallel rank. The returned values are this micro-batch's
  share, so summing them over the step's micro-batches gives the step loss, whatever the
  micro-batch size. Averaging over data-parallel ranks is the caller's business (multiply
  by the DP size before an all-reduce mean, or sum-reduce instead).
* Metrics are detached tensors that add up across micro-batches in the same way
  (no ``.item()``: no host sync inside the loss).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

from oreal.algo.kl import kl_per_token
from oreal.algo.token_weights import full_precision, token_weights


@dataclass(frozen=True)
class TokenCounts:
    """Global normalisers of one RL step (all micro-batches, all data-parallel ranks)."""

    num_positive_tokens: int
    num_negative_tokens: int
    num_action_tokens: int
    num_sequences: int

    def __add__(self, other: "TokenCounts") -> "TokenCounts":
        return TokenCounts(
            self.num_positive_tokens + other.num_positive_tokens,
            self.num_negative_tokens + other.num_negative_tokens,
            self.num_action_tokens + other.num_action_tokens,
            self.num_sequences + other.num_sequences,
        )


def count_tokens(mask: torch.Tensor, rewards: torch.Tensor) -> TokenCounts:
    """Counts for the rows given; sum the results over micro-batches and ranks."""
    per_row = mask.sum(dim=-1)
    positive = rewards > 0
    return TokenCounts(
        num_positive_tokens=int(per_row[positive].sum()),
        num_negative_tokens=int(per_row[~positive].sum()),
        num_action_tokens=int(per_row.sum()),
        num_sequences=int(mask.shape[0]),
    )


@dataclass
class LossOutput:
    """``policy_loss`` and ``rm_loss`` are scalars with gradients; ``metrics`` are detached."""

    policy_loss: torch.Tensor
    rm_loss: Optional[torch.Tensor] = None
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


def _safe(count: int) -> int:
    # An empty class (e.g. no positive sample in the step) has a zero numerator too.
    return max(int(count), 1)


def kl_loss(
    logprobs: torch.Tensor,
    ref_logprobs: Optional[torch.Tensor],
    mask: torch.Tensor,
    *,
    num_action_tokens: int,
    kl_coef: float,
    kl_estimator: str,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``kl_coef * sum_t KL_t / N_action`` and the logged mean per-token KL (k1, ``logp - ref``)."""
    if ref_logprobs is None:
        if kl_coef != 0:
            raise ValueError("kl_coef is non-zero but no reference log-probs were given")
        return logprobs.new_zeros(()), {}
    m = mask.to(logprobs.dtype)
    n = _safe(num_action_tokens)
    loss = kl_coef * (kl_per_token(logprobs, ref_logprobs, kl_estimator) * m).sum() / n
    ref_kl = ((logprobs.detach() - ref_logprobs) * m).sum() / n
    return loss, {"kl/ref": ref_kl}


def oreal_loss(
    *,
    logprobs: torch.Tensor,
    ref_logprobs: Optional[torch.Tensor],
    rm_scores: Optional[torch.Tensor],
    mask: torch.Tensor,
    rewards: torch.Tensor,
    advantages: torch.Tensor,
    num_positive_tokens: int,
    num_negative_tokens: int,
    num_action_tokens: int,
    num_sequences: int,
    positive_loss_factor: float = 1.0,
    negative_loss_factor: float = 0.5,
    kl_coef: float = 0.01,
    kl_estimator: str = "k3",
    pos_mult_adv: bool = True,
    correct_threshold: float = 0.5,
    incorrect_threshold: float = 0.5,
    rescale: str = "threshold",
    correct_topk_ratio: float = 0.25,
    incorrect_topk_ratio: float = 0.25,
) -> LossOutput:
    """The OREAL objective (Lyu et al. 2025, Eq. 11 with the token weights of Sec. 3.3).

    For a positive sample (``r > 0``), behaviour cloning with token weights::

        L+ = A * sum_t w+_t * (-logp_t) / N_pos * positive_loss_factor     (A only if pos_mult_adv)

    for a negative sample, a policy gradient with the shaped (negative) advantage::

        L- = -sum_t exp(logp_t - sg(logp_t)) * A * w-_t / N_neg * negative_loss_factor

    whose value is ``-A sum_t w-_t`` and whose gradient is ``-A w-_t factor / N_neg`` times
    ``grad logp_t``; plus ``kl_coef * sum_t KL_t / N_action`` on every sample. With
    ``rm_scores`` (the token RM's logits, ``[B, T]``, with their own gradient) the weights come
    from :func:`token_weights` and the RM gets ``rm_loss = sum_b BCE(mean_t s_bt, 1[r_b > 0]) /
    num_sequences``; with ``rm_scores=None`` all weights are 1 and ``rm_loss`` is None.
    ``rescale="topk"`` uses the ``*_topk_ratio`` arguments instead of the thresholds;
    ``rescale="uniform"`` makes every weight 1 (the RM is trained but unused: the policy loss is
    exactly the ``rm_scores=None`` one).
    """
    m = mask.to(logprobs.dtype)
    positive = (rewards > 0).to(logprobs.dtype)
    metrics: dict[str, torch.Tensor] = {}
    rm_loss = None
    if rm_scores is None:
        w_pos = w_neg = m
    else:
        params = (correct_threshold, incorrect_threshold) if rescale == "threshold" else (correct_topk_ratio, incorrect_topk_ratio)
        w_pos, w_neg, rm_loss, metrics = token_rm_terms(
            rm_scores, mask, rewards, num_positive_tokens=num_positive_tokens, num_negative_tokens=num_negative_tokens,
            num_sequences=num_sequences, rescale=rescale, correct_param=params[0], incorrect_param=params[1],
        )

    bc = (w_pos * -logprobs * m).sum(dim=-1)
    if pos_mult_adv:
        bc = bc * advantages
    loss_pos = (bc * positive).sum() / _safe(num_positive_tokens) * positive_loss_factor

    ratio = torch.exp(logprobs - logprobs.detach())
    pg = (ratio * advantages[:, None] * w_neg * m).sum(dim=-1)
    loss_neg = -(pg * (1 - positive)).sum() / _safe(num_negative_tokens) * negative_loss_factor

    loss_kl, kl_metrics = kl_loss(
        logprobs, ref_logprobs, mask, num_action_tokens=num_action_tokens, kl_coef=kl_coef, kl_estimator=kl_estimator
    )
    metrics.update(kl_metrics)
    metrics["loss/positive"] = loss_pos.detach()
    metrics["loss/negative"] = loss_neg.detach()
    metrics["loss/kl"] = loss_kl.detach()
    return LossOutput(policy_loss=loss_pos + loss_neg + loss_kl, rm_loss=rm_loss, metrics=metrics)


def token_rm_terms(
    rm_scores: torch.Tensor,
    mask: torch.Tensor,
    rewards: torch.Tensor,
    *,
    num_positive_tokens: int,
    num_negative_tokens: int,
    num_sequences: int,
    rescale: str,
    correct_param: float,
    incorrect_param: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """``(w_pos, w_neg, rm_loss, metrics)``: the token weights (:func:`token_weights`), the RM's
    outcome loss (:func:`token_rm_loss`) and what they look like on this step.

    ``token_rm/weight_pos`` is the mean weight over the step's positive samples' tokens,
    ``token_rm/weight_neg`` over the negative samples' tokens (global counts, so they add up
    over micro-batches like the losses).
    """
    w_pos, w_neg = token_weights(rm_scores, mask, rescale=rescale, correct_param=correct_param, incorrect_param=incorrect_param)
    rm_loss, metrics = token_rm_loss(rm_scores, mask, rewards, num_sequences=num_sequences)
    positive = (rewards > 0).to(w_pos.dtype)[:, None]
    metrics["token_rm/weight_pos"] = (w_pos * positive).sum() / _safe(num_positive_tokens)
    metrics["token_rm/weight_neg"] = (w_neg * (1 - positive)).sum() / _safe(num_negative_tokens)
    return w_pos, w_neg, rm_loss, metrics


def token_rm_loss(
    rm_scores: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor, *, num_sequences: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Outcome-supervised token RM: ``sum_b BCE(mean_t s_bt, 1[r_b > 0]) / num_sequences``.

    The sequence logit is the mean of the token logits over the response, so the RM learns
    per-token credit from the outcome alone. Also returns the RM's accuracy share.
    """
    scores = full_precision(rm_scores)
    m = mask.to(scores.dtype)
    seq_logit = (scores * m).sum(dim=-1) / m.sum(dim=-1).clamp_min(1.0)
    label = (rewards > 0).to(scores.dtype)
    n = _safe(num_sequences)
    loss = F.binary_cross_entropy_with_logits(seq_logit, label, reduction="sum") / n
    correct = ((seq_logit.detach() > 0).to(label.dtype) == label).to(label.dtype).sum() / n
    return loss, {"loss/token_rm": loss.detach(), "token_rm/accuracy": correct}


def policy_gradient_loss(
    *,
    logprobs: torch.Tensor,
    ref_logprobs: Optional[torch.Tensor],
    mask: torch.Tensor,
    advantages: torch.Tensor,
    num_action_tokens: int,
    kl_coef: float = 0.01,
    kl_estimator: str = "k3",
    weights: Optional[torch.Tensor] = None,
) -> LossOutput:
    """On-policy REINFORCE-style loss shared by REINFORCE, GRPO and RLOO (they differ only in
    the advantage estimator)::

        L = -sum_{b,t} exp(logp - sg(logp)) * A_b * w_bt / N_action + kl_coef * sum KL / N_action

    The ratio is exactly 1 (one update per rollout), so the gradient is ``-A w grad logp / N``.
    ``weights`` (``[B, T]``, no gradient) are per-token weights; None means 1 on every token.
    """
    m = mask.to(logprobs.dtype)
    if weights is not None:
        m = m * weights.to(logprobs.dtype)
    ratio = torch.exp(logprobs - logprobs.detach())
    loss_pg = -(ratio * advantages[:, None] * m).sum() / _safe(num_action_tokens)
    loss_kl, metrics = kl_loss(
        logprobs, ref_logprobs, mask, num_action_tokens=num_action_tokens, kl_coef=kl_coef, kl_estimator=kl_estimator
    )
    metrics["loss/policy_gradient"] = loss_pg.detach()
    metrics["loss/kl"] = loss_kl.detach()
    return LossOutput(policy_loss=loss_pg + loss_kl, metrics=metrics)


def token_weighted_policy_gradient_loss(
    *,
    logprobs: torch.Tensor,
    ref_logprobs: Optional[torch.Tensor],
    rm_scores: torch.Tensor,
    mask: torch.Tensor,
    rewards: torch.Tensor,
    advantages: torch.Tensor,
    num_positive_tokens: int,
    num_negative_tokens: int,
    num_action_tokens: int,
    num_sequences: int,
    kl_coef: float = 0.01,
    kl_estimator: str = "k3",
    rescale: str = "threshold",
    correct_param: float = 0.5,
    incorrect_param: float = 0.5,
) -> LossOutput:
    """:func:`policy_gradient_loss` with OREAL's token weights: the GRPO-style counterpart of
    ladder row 4, so that the token RM's effect can be measured on either loss::

        L = -sum_{b,t} exp(logp - sg(logp)) * A_b * w_bt / N_action + KL term

    with ``w = w+`` on positive samples (``r > 0``) and ``w-`` on the others, from
    :func:`token_weights`; the token RM gets the same ``rm_loss`` as in :func:`oreal_loss`.
    With ``rescale="uniform"`` every weight is 1 and the policy loss is exactly
    :func:`policy_gradient_loss`'s.
    """
    w_pos, w_neg, rm_loss, rm_metrics = token_rm_terms(
        rm_scores, mask, rewards, num_positive_tokens=num_positive_tokens, num_negative_tokens=num_negative_tokens,
        num_sequences=num_sequences, rescale=rescale, correct_param=correct_param, incorrect_param=incorrect_param,
    )
    weights = torch.where((rewards > 0)[:, None], w_pos, w_neg)
    out = policy_gradient_loss(logprobs=logprobs, ref_logprobs=ref_logprobs, mask=mask, advantages=advantages,
                               num_action_tokens=num_action_tokens, kl_coef=kl_coef, kl_estimator=kl_estimator, weights=weights)
    out.rm_loss = rm_loss
    out.metrics.update(rm_metrics)
    return out
