"""The two small protocols the trainer sees, and the values that cross them.

* A **rollout engine** samples responses and takes new weights.
* A **policy engine** computes log-probs of given sequences, runs one optimisation step of
  a loss over micro-batches, exports its weights in buckets, and saves / loads its state.

Everything here is plain data (lists, tensors, dataclasses): an engine on another node or in
another framework implements the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol, Sequence

import torch

from oreal.algo import LossInputs, LossOutput, TokenCounts

FINISH_REASONS = ("stop", "length")


@dataclass(frozen=True)
class SamplingSettings:
    """Identical meaning in every rollout engine. ``top_k=0`` disables top-k; temperature 0
    is greedy. ``stop`` strings end a response like the tokenizer's EOS does."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: Optional[int] = None
    # index of the call's first prompt within the whole step (a fleet splits the step's
    # prompts over engines; prompt i samples with prompt_seed(seed, prompt_offset + i))
    prompt_offset: int = 0


def prompt_seed(seed: int, index: int) -> int:
    """The sampling seed of the ``index``-th prompt of a step whose seed is ``seed``."""
    return (seed * 1_000_003 + index * 7_919 + 1) % (2**31 - 1)


@dataclass
class Completion:
    """One sampled response. ``logprobs[i]`` is the engine's log-probability of
    ``token_ids[i]`` under the raw model distribution (before temperature / top-p)."""

    token_ids: list[int]
    text: str
    logprobs: list[float]
    finish_reason: str  # "stop" (EOS or a stop string) or "length"


@dataclass
class RolloutGroup:
    """The ``n`` responses to one prompt."""

    prompt_token_ids: list[int]
    completions: list[Completion]
    engine: int = 0  # which engine of a rollout fleet answered (per-engine metrics)


class RolloutEngine(Protocol):
    def generate(self, prompts: Sequence[list[int]], n: int, sampling: SamplingSettings) -> list[RolloutGroup]:
        """``n`` responses for each prompt (given as token ids)."""

    def update_weights(self, buckets: Iterator[list[tuple[str, torch.Tensor]]]) -> None:
        """Load new weights, streamed as buckets of Hugging Face-named tensors."""

    def close(self) -> None: ...


@dataclass
class SequenceBatch:
    """Sequences to score or train on: ``prompt + response`` token ids, with only the
    response tokens counted (``num_prompt_tokens[i]`` leading tokens are context)."""

    token_ids: list[list[int]]
    num_prompt_tokens: list[int]
    rewards: Optional[torch.Tensor] = None  # [B]
    advantages: Optional[torch.Tensor] = None  # [B]

    def __len__(self) -> int:
        return len(self.token_ids)

    def num_response_tokens(self) -> list[int]:
        return [len(t) - p for t, p in zip(self.token_ids, self.num_prompt_tokens)]

    def select(self, idx: Sequence[int]) -> "SequenceBatch":
        pick = lambda t: None if t is None else t[list(idx)]  # noqa: E731
        return SequenceBatch([self.token_ids[i] for i in idx], [self.num_prompt_tokens[i] for i in idx],
                             pick(self.rewards), pick(self.advantages))


@dataclass
class ScoredTokens:
    """Per-token values of a :class:`SequenceBatch`, one 1-D tensor per sequence over its
    response tokens."""

    logprobs: list[torch.Tensor]
    entropy: Optional[list[torch.Tensor]] = None


# The trainer's loss: one micro-batch of inputs and the step's global counts -> LossOutput.
MicroBatchLoss = Callable[[LossInputs, TokenCounts], LossOutput]


@dataclass
class TrainStats:
    """What one optimisation step reports: summed loss metrics (additive contributions),
    grad norms, learning rates, and the policy's log-probs of the trained tokens before the
    update (for the rollout log-prob gap) for the sequences this rank trained on
    (``trained_index``: their positions in the batch; a data-parallel rank trains a share)."""

    metrics: dict[str, float] = field(default_factory=dict)
    old_logprobs: list[torch.Tensor] = field(default_factory=list)
    trained_index: list[int] = field(default_factory=list)


class PolicyEngine(Protocol):
    def score(self, batch: SequenceBatch, with_entropy: bool = False) -> ScoredTokens:
        """Policy log-probs (and entropy) of the response tokens, no gradient."""

    def train_step(self, batch: SequenceBatch, loss_fn: MicroBatchLoss, counts: TokenCounts, *,
                   update_policy: bool = True) -> TrainStats:
        """One optimisation step over the whole batch, in micro-batches."""

    def export_weights(self, bucket_bytes: int) -> Iterator[list[tuple[str, torch.Tensor]]]:
        """The policy's full weights with Hugging Face names, one bucket at a time."""

    def save(self, directory: Path) -> None:
        """Write the engine's state (weights, optimisers, schedules) under ``directory``.
        Collective: every rank calls it and writes its own part."""

    def load(self, directory: Path) -> None:
        """Restore what :meth:`save` wrote, whatever layout wrote it. Collective."""
