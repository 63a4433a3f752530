"""Random RL micro-batches for the algorithm tests: variable prompt and response lengths,
right padding, rewards +-1 in groups of K, leaf tensors so gradients can be compared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from oreal.algo import compute_advantages


@dataclass
class Batch:
    logp: torch.Tensor  # [B, T] leaf, requires grad
    ref: torch.Tensor
    rm: torch.Tensor  # [B, T] leaf, requires grad
    mask: torch.Tensor
    rewards: torch.Tensor
    adv: torch.Tensor

    def rows(self, idx) -> "Batch":
        """A sub-batch that shares the leaves (gradients flow back to the full tensors)."""
        return Batch(self.logp[idx], self.ref[idx], self.rm[idx], self.mask[idx], self.rewards[idx], self.adv[idx])

    def samples(self) -> list[dict]:
        out = []
        for b in range(self.mask.shape[0]):
            sel = self.mask[b]
            out.append(dict(logp=self.logp[b][sel], ref=self.ref[b][sel], rm=self.rm[b][sel],
                            reward=float(self.rewards[b]), adv=self.adv[b]))
        return out


def random_batch(num_groups: int = 3, k: int = 4, max_len: int = 12, estimator: str = "rloo",
                 seed: int = 0, dtype=torch.float64, rewards: Optional[torch.Tensor] = None) -> Batch:
    g = torch.Generator().manual_seed(seed)
    b = num_groups * k
    mask = torch.zeros(b, max_len, dtype=torch.bool)
    for i in range(b):
        start = int(torch.randint(1, 4, (1,), generator=g))
        length = int(torch.randint(2, max_len - start + 1, (1,), generator=g))
        mask[i, start:start + length] = True
    if rewards is None:
        rewards = torch.where(torch.rand(num_groups, k, generator=g) < 0.5, 1.0, -1.0)
    adv = compute_advantages(rewards, estimator).flatten().to(dtype)
    logp = (-torch.rand(b, max_len, generator=g, dtype=dtype) * 3).requires_grad_()
    ref = logp.detach() + 0.3 * torch.randn(b, max_len, generator=g, dtype=dtype)
    rm = (2 * torch.randn(b, max_len, generator=g, dtype=dtype)).requires_grad_()
    return Batch(logp, ref, rm, mask, rewards.flatten().to(dtype), adv)
