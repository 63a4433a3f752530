"""One step's samples: rewards, advantages, the trained subset, and what gets logged."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Optional

import torch

from oreal.algo import AlgoConfig, TokenCounts, count_tokens, kept_sample_metrics
from oreal.data.sources import Prompt
from oreal.engines.distributed import DistEnv
from oreal.engines.protocols import RolloutGroup, SequenceBatch, TrainStats
from oreal.reward.pool import Grade


@dataclass
class StepSamples:
    prompts: list[tuple[str, Prompt]]  # (source name, prompt) per group
    groups: list[RolloutGroup]
    grades: list[list[Grade]]  # [group][sample]
    rewards: torch.Tensor  # [G, K]
    advantages: Optional[torch.Tensor] = None  # [G, K], on the full groups
    keep: Optional[torch.Tensor] = None  # [G, K] bool: trained on

    @property
    def kept_index(self) -> list[tuple[int, int]]:
        return [(g, k) for g, k in zip(*torch.nonzero(self.keep, as_tuple=True))]

    def training_batch(self) -> SequenceBatch:
        index = self.kept_index
        return SequenceBatch(
            token_ids=[self.groups[g].prompt_token_ids + self.groups[g].completions[k].token_ids for g, k in index],
            num_prompt_tokens=[len(self.groups[g].prompt_token_ids) for g, _ in index],
            rewards=torch.stack([self.rewards[g, k] for g, k in index]) if index else torch.zeros(0),
            advantages=torch.stack([self.advantages[g, k] for g, k in index]) if index else torch.zeros(0),
        )

    def rollout_logprobs(self) -> list[torch.Tensor]:
        return [torch.tensor(self.groups[g].completions[k].logprobs) for g, k in self.kept_index]

    def metrics(self, algo: Optional[AlgoConfig] = None) -> dict[str, float]:
        """The step's rollout and selection metrics. ``algo`` gives the loss's per-class
        advantage factors for the ``advantage/kept_*`` metrics (1 and 1 without it)."""
        r, completions = self.rewards, [c for g in self.groups for c in g.completions]
        correct = r > 0
        lengths = torch.tensor([float(len(c.token_ids)) for c in completions])
        kept_adv = self.advantages[self.keep] if self.keep.any() else torch.zeros(1)
        return {
            "reward/mean": r.mean().item(),
            "reward/pass_rate": correct.float().mean().item(),
            "reward/all_correct_frac": correct.all(dim=1).float().mean().item(),
            "reward/all_wrong_frac": (~correct).all(dim=1).float().mean().item(),
            "advantage/mean": kept_adv.mean().item(),
            "advantage/abs_mean": kept_adv.abs().mean().item(),
            "advantage/std": kept_adv.std().item() if kept_adv.numel() > 1 else 0.0,
            "response/mean_length": lengths.mean().item(),
            "response/max_length": lengths.max().item(),
            "response/truncation_rate": sum(c.finish_reason == "length" for c in completions) / len(completions),
            "train/num_samples": float(r.numel()),
            **{f"rollout/engine{e}/num_prompts": float(n) for e, n in sorted(Counter(g.engine for g in self.groups).items())},
            "train/num_kept": float(self.keep.sum()),
            **{k: v.item() for k, v in kept_sample_metrics(r, self.advantages, self.keep,
                                                           **(algo.sample_weighting if algo else {})).items()},
        } | self.source_shares()

    def source_shares(self) -> dict[str, float]:
        """``data/share/<source>``: the share of this step's prompts from each source."""
        counts = Counter(source for source, _ in self.prompts)
        return {f"data/share/{name}": n / len(self.prompts) for name, n in sorted(counts.items())}

    def trajectory_rows(self, step: int) -> list[dict]:
        rows = []
        for g, ((source, prompt), group) in enumerate(zip(self.prompts, self.groups)):
            for k, (c, grade) in enumerate(zip(group.completions, self.grades[g])):
                rows.append({"step": step, "source": source, "id": prompt.id, "problem": prompt.problem, "gold": prompt.answer,
                             "sample": k, "response": c.text, "extracted": grade.extracted, "reward": self.rewards[g, k].item(),
                             "reason": grade.reason, "advantage": self.advantages[g, k].item(), "kept": bool(self.keep[g, k]),
                             "finish_reason": c.finish_reason, "num_tokens": len(c.token_ids)})
        return rows


def token_counts(batch: SequenceBatch) -> TokenCounts:
    """Global counts of the step's trained tokens (the batch is the whole step on every rank)."""
    if len(batch) == 0:
        return TokenCounts(0, 0, 0, 0)
    lengths = batch.num_response_tokens()
    mask = torch.zeros(len(batch), max(lengths), dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    return count_tokens(mask, batch.rewards)


def logprob_gaps(stats: TrainStats, samples: StepSamples, env: DistEnv = DistEnv()) -> dict[str, float]:
    """Mean |policy log-prob - rollout engine log-prob| over the trained tokens: the check
    that weight sync worked (a stale or mis-mapped engine shows up here first). Overall as
    ``rollout/logprob_gap`` and per engine of a fleet as ``rollout/engine<i>/logprob_gap``;
    each rank measures the sequences it trained on and the sums are reduced over ranks."""
    kept = samples.kept_index
    sums: dict[str, float] = {}
    for i, policy in zip(stats.trained_index, stats.old_logprobs):
        g, k = kept[i]
        rollout = torch.tensor(samples.groups[g].completions[k].logprobs, dtype=torch.float64)
        gap, n = float((policy.double() - rollout).abs().sum()), float(len(rollout))
        for key in ("rollout/logprob_gap", f"rollout/engine{samples.groups[g].engine}/logprob_gap"):
            sums[key] = sums.get(key, 0.0) + gap
            sums[key + "#n"] = sums.get(key + "#n", 0.0) + n
    if env.is_distributed:
        sums = dict(zip(*_summed_over_ranks(sums, env)))
    out = {k: v / max(sums[k + "#n"], 1.0) for k, v in sums.items() if not k.endswith("#n")}
    out.setdefault("rollout/logprob_gap", 0.0)
    return out


def _summed_over_ranks(sums: dict[str, float], env: DistEnv) -> tuple[list[str], list[float]]:
    """Ranks may hold different keys (engines they trained on): sum over the union."""
    import torch.distributed as dist

    parts: list = [None] * env.world_size
    dist.all_gather_object(parts, sums)
    keys = sorted({k for p in parts for k in p})
    return keys, [sum(p.get(k, 0.0) for p in parts) for k in keys]
