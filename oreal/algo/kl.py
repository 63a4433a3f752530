"""Per-token estimators of KL(policy || reference) from sampled tokens (Schulman, 2020).

With ``d_t = ref_logp_t - logp_t`` (the log ratio reference / policy of a token sampled
from the policy):

* ``k1 = -d``: unbiased, can be negative per token; as a loss its gradient has zero mean.
  (The reference OREAL code's ``"kl"`` option uses ``+d``, the negative of the estimator,
  which as a penalty would push the policy *away* from the reference. We do not copy it.)
* ``k2 = d^2 / 2``: biased, non-negative; its gradient is that of the reverse KL's
  second-order expansion (the reference code's ``"mse"``).
* ``k3 = exp(d) - d - 1``: unbiased and non-negative (the reference code's ``"unbias"``,
  OREAL's default; also GRPO's).
"""

from __future__ import annotations

from typing import Callable

import torch

KLFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
KL_ESTIMATORS: dict[str, KLFn] = {}


def register_kl(name: str) -> Callable[[KLFn], KLFn]:
    def wrap(fn: KLFn) -> KLFn:
        KL_ESTIMATORS[name] = fn
        return fn

    return wrap


@register_kl("k1")
def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    return logprobs - ref_logprobs


@register_kl("k2")
def kl_k2(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    return (ref_logprobs - logprobs).square() / 2


@register_kl("k3")
def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token KL estimate ``[B, T]`` with the named estimator (differentiable in ``logprobs``)."""
    try:
        fn = KL_ESTIMATORS[estimator]
    except KeyError:
        raise ValueError(f"unknown KL estimator {estimator!r}; choose one of: {', '.join(KL_ESTIMATORS)}") from None
    return fn(logprobs, ref_logprobs)
