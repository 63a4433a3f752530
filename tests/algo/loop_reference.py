"""Slow, obviously-correct per-sample implementations of the OREAL step, written from
REFERENCE.md ("One RL step", item 6) one sample and one token at a time. The vectorised
functions in oreal.algo are checked against these."""

from __future__ import annotations

import math

import torch


def advantages_loop(rewards: list[list[float]], estimator: str) -> list[list[float]]:
    out = []
    for group in rewards:
        k = len(group)
        mean = sum(group) / k
        if estimator == "rloo":
            out.append([r - (sum(group) - r) / (k - 1) for r in group])
        elif estimator == "grpo":
            std = math.sqrt(sum((r - mean) ** 2 for r in group) / (k - 1))
            out.append([(r - mean) / (std + 1e-8) for r in group])
        else:
            out.append(list(group))
    return out


def weights_loop(scores: torch.Tensor, rescale: str, param: float, invert: bool) -> torch.Tensor:
    """Token weights of ONE sample's response tokens (1-D)."""
    n = scores.numel()
    probs = []
    for t in range(n):
        c = sum(float(scores[u]) for u in range(t + 1)) / (t + 1)
        p = 1.0 / (1.0 + math.exp(-c))
        probs.append(1.0 - p if invert else p)
    if rescale == "threshold":
        return torch.tensor([min(max((p - param) / (1 - param), 0.0), 1.0) for p in probs], dtype=torch.float64)
    k = int(n * param)
    out = torch.zeros(n, dtype=torch.float64)
    if k == 0:
        return out
    top = sorted(range(n), key=lambda i: -probs[i])[:k]
    hi, lo = max(probs[i] for i in top), min(probs[i] for i in top)
    for i in top:
        out[i] = 1.0 if hi == lo else (probs[i] - lo) / (hi - lo)
    return out


def kl_loop(logp: torch.Tensor, ref: torch.Tensor, estimator: str) -> torch.Tensor:
    d = ref - logp
    if estimator == "k1":
        return -d
    if estimator == "k2":
        return d * d / 2
    return torch.exp(d) - d - 1


def oreal_loss_loop(samples, *, counts, positive_loss_factor, negative_loss_factor, kl_coef, kl_estimator,
                    pos_mult_adv, rescale, correct_param, incorrect_param):
    """``samples``: list of dicts with 1-D response-only tensors ``logp`` (requires grad),
    ``ref``, ``rm`` (requires grad, or None) and floats ``reward``, ``adv``.
    Returns (policy_loss, rm_loss or None)."""
    n_pos, n_neg, n_act, n_seq = counts
    policy_terms, rm_terms = [], []
    for s in samples:
        logp, ref, rm, r, a = s["logp"], s["ref"], s["rm"], s["reward"], s["adv"]
        if rm is not None:
            w_pos = weights_loop(rm.detach(), rescale, correct_param, invert=False).to(logp.dtype)
            w_neg = weights_loop(rm.detach(), rescale, incorrect_param, invert=True).to(logp.dtype)
            label = 1.0 if r > 0 else 0.0
            mean_score = rm.mean()
            bce = -(label * torch.log(torch.sigmoid(mean_score)) + (1 - label) * torch.log(1 - torch.sigmoid(mean_score)))
            rm_terms.append(bce / max(n_seq, 1))
        else:
            w_pos = w_neg = torch.ones_like(logp)
        term = logp.new_zeros(())
        for t in range(logp.numel()):
            if r > 0:
                x = w_pos[t] * -logp[t]
                if pos_mult_adv:
                    x = x * a
                term = term + x / max(n_pos, 1) * positive_loss_factor
            else:
                ratio = torch.exp(logp[t] - logp[t].detach())
                term = term - ratio * a * w_neg[t] / max(n_neg, 1) * negative_loss_factor
            term = term + kl_coef * kl_loop(logp[t], ref[t], kl_estimator) / max(n_act, 1)
        policy_terms.append(term)
    policy = sum(policy_terms)
    return policy, (sum(rm_terms) if rm_terms else None)


def pg_loss_loop(samples, *, num_action_tokens, kl_coef, kl_estimator):
    total = 0.0
    for s in samples:
        for t in range(s["logp"].numel()):
            ratio = torch.exp(s["logp"][t] - s["logp"][t].detach())
            total = total - ratio * s["adv"] / num_action_tokens
            total = total + kl_coef * kl_loop(s["logp"][t], s["ref"][t], kl_estimator) / num_action_tokens
    return total
