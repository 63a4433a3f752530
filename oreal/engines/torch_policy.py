"""The torch policy engine: a Hugging Face causal LM trained with plain torch.

It holds three models built from the same starting checkpoint: the policy (trained), a frozen
reference (for the KL term) and the token-level reward model (the same backbone with a scalar
head, trained). Micro-batches are packed without padding (sequences concatenated, position
ids restarting per sequence, in rows of bounded length), log-probs come from :func:`chunked_logprobs`, and data
parallelism splits each step's sequences across ranks and sums gradients with one
all-reduce per bucket, so the result equals one process with the whole batch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch.nn.utils.rnn import pad_sequence

from oreal.algo import LossInputs, TokenCounts
from oreal.config.schema import OptimConfig
from oreal.engines.distributed import DistEnv, all_reduce_in_buckets, all_reduce_metrics
from oreal.engines.logprobs import chunked_entropy, chunked_logprobs, compute_dtype
from oreal.engines.optim import advance_schedule, build_optimizer, load_schedule
from oreal.engines.packing import Packed, pack, packed_hidden
from oreal.engines.protocols import MicroBatchLoss, ScoredTokens, SequenceBatch, TrainStats
from oreal.engines.weights import buckets


class TokenRewardModel(torch.nn.Module):
    """A causal LM backbone with a scalar head: one logit per position (``hidden -> 1``)."""

    def __init__(self, backbone: torch.nn.Module, hidden_size: int, seed: int = 0):
        super().__init__()
        self.backbone = backbone
        self.head = scalar_head(hidden_size, seed, next(backbone.parameters()).dtype)


def scalar_head(hidden_size: int, seed: int, dtype: torch.dtype) -> torch.nn.Linear:
    """The token RM's ``hidden -> 1`` head, initialised from ``seed`` alone (every engine
    builds the same head for the same seed)."""
    head = torch.nn.Linear(hidden_size, 1, bias=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        head.reset_parameters()
    return head.to(dtype)


def pad(values: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence 1-D tensors -> ``[B, T]`` right-padded values and bool mask."""
    padded = pad_sequence(values, batch_first=True)
    mask = pad_sequence([torch.ones(len(v), dtype=torch.bool, device=v.device) for v in values], batch_first=True)
    return padded, mask


class TorchPolicyEngine:
    def __init__(self, model_path: str, *, dtype: str = "float32", use_reference: bool = True, use_token_rm: bool = False,
                 policy_optim: OptimConfig = OptimConfig(), token_rm_optim: OptimConfig = OptimConfig(), total_steps: int = 1,
                 policy_schedule_delay: int = 0,
                 micro_batch_size: int = 4, logprob_chunk_size: int = 1024, gradient_checkpointing: bool = False,
                 pack_row_tokens: int = 1024, dist_env: DistEnv = DistEnv(), seed: int = 0):
        from transformers import AutoModelForCausalLM

        self.dist = dist_env
        self.device = dist_env.device
        self.micro_batch_size = micro_batch_size
        self.chunk = logprob_chunk_size
        self.pack_row_tokens = pack_row_tokens
        torch_dtype = getattr(torch, dtype)
        self.policy = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype).to(self.device)
        if gradient_checkpointing:
            self.policy.gradient_checkpointing_enable()
        self.policy.config.use_cache = False
        self.pad_id = self.policy.config.pad_token_id or 0
        self.reference = self._frozen_copy(self.policy) if use_reference else None
        self.token_rm = None
        if use_token_rm:
            backbone = copy.deepcopy(self.policy.get_decoder())
            self.token_rm = TokenRewardModel(backbone, self.policy.config.hidden_size, seed).to(self.device)
        # a delayed schedule (the frozen steps) spans the steps that update the policy only
        self.policy_opt, self.policy_sched = build_optimizer(self.policy.parameters(), policy_optim,
                                                             total_steps - policy_schedule_delay)
        self._policy_schedule_waits = policy_schedule_delay > 0
        self.policy_clip = policy_optim.max_grad_norm
        if self.token_rm is not None:
            self.rm_opt, self.rm_sched = build_optimizer(self.token_rm.parameters(), token_rm_optim, total_steps)
            self.rm_clip = token_rm_optim.max_grad_norm

    @staticmethod
    def _frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
        ref = copy.deepcopy(model).eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        return ref

    # ---- forward pieces -------------------------------------------------------------------
    def _logprobs(self, lm: torch.nn.Module, packed: Packed) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = packed_hidden(lm.get_decoder(), packed)
        return chunked_logprobs(hidden, lm.get_output_embeddings().weight, packed.labels, self.chunk), hidden

    def _rm_scores(self, packed: Packed) -> torch.Tensor:
        scores = self.token_rm.head(packed_hidden(self.token_rm.backbone, packed)).squeeze(-1)
        return scores.to(compute_dtype(scores))

    def _pack(self, batch: SequenceBatch) -> Packed:
        return pack(batch, self.device, self.pack_row_tokens, self.pad_id)

    # ---- protocol -------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, batch: SequenceBatch, with_entropy: bool = False) -> ScoredTokens:
        """Log-probs (and entropy) of every sequence of ``batch`` (all ranks score all)."""
        self.policy.eval()
        logprobs, entropy = [], []
        for i in range(0, len(batch), self.micro_batch_size):
            packed = self._pack(batch.select(range(i, min(i + self.micro_batch_size, len(batch)))))
            lp, hidden = self._logprobs(self.policy, packed)
            logprobs.extend(lp.split(packed.lengths))
            if with_entropy:
                entropy.extend(chunked_entropy(hidden, self.policy.get_output_embeddings().weight, self.chunk).split(packed.lengths))
        return ScoredTokens(logprobs, entropy if with_entropy else None)

    def train_step(self, batch: SequenceBatch, loss_fn: MicroBatchLoss, counts: TokenCounts, *,
                   update_policy: bool = True) -> TrainStats:
        if batch.rewards is None or batch.advantages is None:
            raise ValueError("train_step needs rewards and advantages on the batch")
        self.policy.train(update_policy)
        if self.token_rm is not None:
            self.token_rm.train()
        sums: dict[str, float] = {}
        old_logprobs: dict[int, torch.Tensor] = {}
        mine = list(range(self.dist.rank, len(batch), self.dist.world_size))
        for start in range(0, len(mine), self.micro_batch_size):
            idx = mine[start : start + self.micro_batch_size]
            out, logprobs = self._micro_step(batch.select(idx), loss_fn, counts, update_policy)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + v
            old_logprobs.update(zip(idx, logprobs))
        metrics = self._all_reduce_sum(sums)
        metrics.update(self._optimizer_steps(update_policy))
        return TrainStats(metrics, [old_logprobs[i] for i in mine], mine)

    def _micro_step(self, mb: SequenceBatch, loss_fn: MicroBatchLoss, counts: TokenCounts, update_policy: bool):
        packed = self._pack(mb)
        with torch.set_grad_enabled(update_policy):
            logprobs, hidden = self._logprobs(self.policy, packed)
        entropy = chunked_entropy(hidden.detach(), self.policy.get_output_embeddings().weight.detach(), self.chunk)
        ref = None
        if self.reference is not None:
            with torch.no_grad():
                ref, _ = self._logprobs(self.reference, packed)
        scores = self._rm_scores(packed) if self.token_rm is not None else None
        split = lambda t: None if t is None else pad(list(t.split(packed.lengths)))[0]  # noqa: E731
        lp, mask = pad(list(logprobs.split(packed.lengths)))
        inputs = LossInputs(logprobs=lp, mask=mask, rewards=mb.rewards.to(self.device), advantages=mb.advantages.to(self.device),
                            ref_logprobs=split(ref), rm_scores=split(scores))
        out = loss_fn(inputs, counts)
        loss = out.policy_loss if update_policy else None
        if out.rm_loss is not None:
            loss = out.rm_loss if loss is None else loss + out.rm_loss
        if loss is not None and loss.requires_grad:
            loss.backward()
        metrics = {k: float(v) for k, v in out.metrics.items()}
        # mean entropy of the policy's next-token distribution over the step's response tokens
        metrics["entropy/mean"] = float(entropy.sum()) / max(counts.num_action_tokens, 1)
        return metrics, [t.detach().cpu() for t in logprobs.detach().split(packed.lengths)]

    def _all_reduce_sum(self, sums: dict[str, float]) -> dict[str, float]:
        return all_reduce_metrics(sums, self.device) if self.dist.is_distributed else sums

    def _sync_grads(self, module: torch.nn.Module) -> None:
        """Sum gradients over data-parallel ranks (each rank's loss already carries global
        normalisers, so the sum is the full-batch gradient)."""
        if not self.dist.is_distributed:
            return
        params = [p for p in module.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        all_reduce_in_buckets([p.grad for p in params])

    def _step(self, module, opt, sched, clip: float, name: str, update: bool, waits: bool = False) -> dict[str, float]:
        """One optimiser step (none when not ``update``), then the schedule's (:func:`advance_schedule`)."""
        out = {f"optim/{name}_lr": sched.get_last_lr()[0] if update else 0.0}
        if update:
            self._sync_grads(module)
            out[f"optim/{name}_grad_norm"] = float(torch.nn.utils.clip_grad_norm_(module.parameters(), clip))
            opt.step()
        opt.zero_grad(set_to_none=True)
        advance_schedule(sched, updated=update, waits=waits)
        return out

    def _optimizer_steps(self, update_policy: bool) -> dict[str, float]:
        metrics = self._step(self.policy, self.policy_opt, self.policy_sched, self.policy_clip, "policy", update_policy,
                             waits=self._policy_schedule_waits)
        if self.token_rm is not None:
            metrics.update(self._step(self.token_rm, self.rm_opt, self.rm_sched, self.rm_clip, "token_rm", True))
        return metrics

    def export_weights(self, bucket_bytes: int) -> Iterator[list[tuple[str, torch.Tensor]]]:
        named = ((name, t.detach()) for name, t in self.policy.state_dict().items())
        return buckets(named, bucket_bytes)

    # ---- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"policy": self.policy.state_dict(), "policy_opt": self.policy_opt.state_dict(),
                 "policy_sched": self.policy_sched.state_dict()}
        if self.token_rm is not None:
            state.update(token_rm=self.token_rm.state_dict(), rm_opt=self.rm_opt.state_dict(), rm_sched=self.rm_sched.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.policy_opt.load_state_dict(state["policy_opt"])
        load_schedule(self.policy_sched, state["policy_sched"])
        if self.token_rm is not None:
            self.token_rm.load_state_dict(state["token_rm"])
            self.rm_opt.load_state_dict(state["rm_opt"])
            load_schedule(self.rm_sched, state["rm_sched"])

    def save(self, directory: Path) -> None:
        """Data-parallel ranks hold the same state: rank 0 writes ``engine.pt``."""
        if self.dist.is_main:
            torch.save(self.state_dict(), Path(directory) / "engine.pt")

    def load(self, directory: Path) -> None:
        self.load_state_dict(torch.load(Path(directory) / "engine.pt", map_location=self.device, weights_only=False))

    def save_pretrained(self, path: str) -> None:
        """The policy in Hugging Face format (for evaluation and export); rank 0 writes."""
        if self.dist.is_main:
            self.policy.save_pretrained(path, safe_serialization=True)
