"""The Megatron-core policy engine: the policy, the frozen reference and the token RM on one
tensor / pipeline / data parallel layout, behind the same protocol as the torch engine.

One training step runs up to three pipeline passes over the same micro-batches:

1. the reference, forward only (its log-probs for the KL term);
2. the token RM, forward and backward on ``rm_loss`` (the loss function is called with the
   reference log-probs standing in for the policy's, whose part of the loss is discarded);
3. the policy, forward and backward on ``policy_loss``, with the RM's scores from pass 2
   (the token weights detach them anyway), which also reports the step's metrics.

Log-probs come from the vocabulary-parallel logits (no full-vocabulary gather). Micro-batches
are packed rows of whole sequences, or padded ones (:mod:`oreal.engines.megatron.micro_batches`),
of one shape per pass (the pipeline's send/receive buffers are fixed). Losses carry global
normalisers, so the schedule is told not to average over micro-batches, and data-parallel
gradients are summed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
import torch.distributed as dist

from oreal.algo import LossInputs, TokenCounts
from oreal.config.schema import OptimConfig
from oreal.engines.distributed import all_reduce_in_buckets, all_reduce_metrics
from oreal.engines.megatron import micro_batches
from oreal.engines.megatron.attention import core_attention
from oreal.engines.megatron.convert import (gather_units, hf_unit_to_mcore, local_units, mcore_to_hf, unit_hf_names,
                                            unit_shard, units)
from oreal.engines.megatron.micro_batches import MicroBatch
from oreal.engines.megatron.model import ModelDims, ScalarHead, build_gpt
from oreal.engines.megatron.optimizer_shards import assign_owners, share_updates
from oreal.engines.megatron.parallel import Layout, init_parallel
from oreal.engines.optim import advance_schedule, build_optimizer, load_schedule
from oreal.engines.protocols import MicroBatchLoss, ScoredTokens, SequenceBatch, TrainStats
from oreal.engines.torch_policy import pad, scalar_head
from oreal.engines.weights import buckets


class HFCheckpoint:
    """The tensors of a Hugging Face checkpoint folder (one or several safetensors files), read
    by name, so that a rank reads one unit at a time and never the whole model."""

    def __init__(self, model_path: str):
        from safetensors import safe_open

        files = sorted(Path(model_path).glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no *.safetensors files in {model_path}: the Megatron engine loads Hugging Face "
                                    "checkpoints saved with safe_serialization=True")
        index = Path(model_path) / "model.safetensors.index.json"
        if index.exists():  # the files the index names, and no stray one
            weight_map = json.loads(index.read_text())["weight_map"]
            self._file = {name: Path(model_path) / f for name, f in weight_map.items()}
            return
        self._file = {}
        for f in files:
            with safe_open(str(f), framework="pt") as opened:
                self._file.update(dict.fromkeys(opened.keys(), f))

    def tensors(self, names: list[str]) -> dict[str, torch.Tensor]:
        from safetensors import safe_open

        missing = [n for n in names if n not in self._file]
        if missing:
            raise KeyError(f"the checkpoint has no tensor {missing[0]} (of {len(missing)} missing)")
        out = {}
        for f in dict.fromkeys(self._file[n] for n in names):
            with safe_open(str(f), framework="pt") as opened:
                out.update({n: opened.get_tensor(n) for n in names if self._file[n] == f})
        return out


class _Model:
    """One model of the engine (policy, reference or token RM): this rank's stage, its
    optimiser, and how its full weights are named.

    A trainable model in bf16/fp16 keeps fp32 master weights for AdamW: at the paper's
    learning rates (5e-7) most updates are below bf16's resolution and would vanish. With the
    optimiser sharded over data-parallel ranks (:mod:`.optimizer_shards`), this rank keeps
    masters and AdamW state for the parameters it ``owns`` only, and steps only those."""

    def __init__(self, module: torch.nn.Module, score_head: bool, trainable: bool, owners: Optional[dict[str, int]] = None,
                 dp_rank: int = 0):
        self.module = module
        self.score_head = score_head
        if not trainable:
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)
        # name -> the data-parallel rank that steps it; None: every rank steps every parameter
        self.owners = owners
        self.owned = {n for n, _ in module.named_parameters() if owners is None or owners[n] == dp_rank}
        self.master: dict[str, torch.Tensor] = {}
        if trainable and any(p.dtype != torch.float32 for p in module.parameters()):
            for name, p in module.named_parameters():
                if name in self.owned:
                    m = p.detach().float().clone().requires_grad_(True)
                    m.tensor_model_parallel = getattr(p, "tensor_model_parallel", False)
                    self.master[name] = m
        self.opt = self.sched = None
        self.clip = 0.0

    @property
    def sharded(self) -> bool:
        return self.owners is not None

    def params(self) -> dict[str, torch.Tensor]:
        return dict(self.module.named_parameters())

    def optimized(self) -> dict[str, torch.Tensor]:
        """The tensors AdamW updates on this rank: the fp32 masters, or the parameters themselves
        (of the parameters this rank owns)."""
        return self.master or {n: p for n, p in self.module.named_parameters() if p.requires_grad and n in self.owned}

    def grads_to_master(self) -> None:
        for name, p in self.module.named_parameters():
            if name in self.master:
                self.master[name].grad = p.grad.float()
                p.grad = None

    def master_to_params(self) -> None:
        with torch.no_grad():
            for name, p in self.module.named_parameters():
                if name in self.master:
                    p.copy_(self.master[name])


class MegatronPolicyEngine:
    def __init__(self, model_path: str, *, tensor_parallel_size: int = 1, pipeline_parallel_size: int = 1,
                 dtype: str = "float32", use_reference: bool = True, use_token_rm: bool = False,
                 policy_optim: OptimConfig = OptimConfig(), token_rm_optim: OptimConfig = OptimConfig(), total_steps: int = 1,
                 policy_schedule_delay: int = 0, micro_batch_size: int = 4, attention: str = "sdpa", packing: bool = True,
                 micro_batch_tokens: int = 16384, distributed_optimizer: bool = False, seed: int = 0):
        from transformers import AutoConfig

        core_attention(attention)  # fails early, naming the choices, on an unknown or unavailable one
        if packing and attention == "local":
            raise ValueError("engine.packing=true needs a fused attention (Megatron's local attention takes padded "
                             "micro-batches only): set engine.attention=sdpa, or engine.packing=false")
        self.attention, self.packing, self.micro_batch_tokens = attention, packing, micro_batch_tokens
        self.distributed_optimizer = distributed_optimizer
        self.layout: Layout = init_parallel(tensor_parallel_size, pipeline_parallel_size, seed)
        self.device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
        self.dtype = getattr(torch, dtype)
        hf_config = AutoConfig.from_pretrained(model_path)
        self.dims = ModelDims.from_hf(hf_config)
        self.pad_id = hf_config.pad_token_id or 0
        self.micro_batch_size = micro_batch_size
        self._model_path = model_path
        self.policy = self._build(score_head=False, trainable=True)
        self.reference = self._build(score_head=False, trainable=False) if use_reference else None
        self.token_rm = self._build(score_head=True, trainable=True) if use_token_rm else None
        rm_head = scalar_head(self.dims.hidden, seed, self.dtype).weight.detach() if use_token_rm else None
        self._load_hf(HFCheckpoint(model_path), rm_head)
        # a delayed schedule (the frozen steps) spans the steps that update the policy only
        self._setup_optim(self.policy, policy_optim, total_steps - policy_schedule_delay)
        self._policy_schedule_waits = policy_schedule_delay > 0
        if self.token_rm is not None:
            self._setup_optim(self.token_rm, token_rm_optim, total_steps)

    # ---- construction ---------------------------------------------------------------------
    def _build(self, score_head: bool, trainable: bool) -> _Model:
        lay = self.layout
        module = build_gpt(self.dims, lay.tp, lay.pp, lay.pp_rank, self.dtype, self.device, self.attention)
        if score_head and lay.is_last_stage:
            module.output_layer = ScalarHead(torch.zeros(1, self.dims.hidden, dtype=self.dtype, device=self.device))
        owners = None
        if trainable and self.distributed_optimizer and lay.dp > 1:
            sizes = {n: p.numel() for n, p in module.named_parameters()}
            fewest = torch.tensor(len(sizes), device=self.device)
            dist.all_reduce(fewest, op=dist.ReduceOp.MIN)  # every rank refuses, or none
            if int(fewest) < lay.dp:
                raise ValueError(f"engine.distributed_optimizer=true splits whole parameters over the {lay.dp} data-parallel "
                                 f"ranks, but a pipeline stage has only {int(fewest)}: set engine.distributed_optimizer=false")
            owners = assign_owners(sizes, lay.dp)
        return _Model(module, score_head, trainable, owners, lay.dp_rank)

    def _load_hf(self, checkpoint: HFCheckpoint, rm_head: Optional[torch.Tensor]) -> None:
        """Every model's shard of the HF checkpoint, read one unit (the embedding, a layer, the
        final norm and head) at a time: no rank holds more of the full model than one unit. The
        token RM starts from the policy's weights with a fresh scalar head ``rm_head``."""
        models = [m for m in (self.policy, self.reference, self.token_rm) if m is not None]
        loaded: dict[int, set[str]] = {id(m): set() for m in models}
        for unit in local_units(self.dims, self.layout):
            full = hf_unit_to_mcore(checkpoint.tensors(unit_hf_names(unit, self.dims)), unit, self.dims)
            for model in models:
                head = {"output_layer.weight": rm_head} if model.score_head and unit[0] == "final" else {}
                local = unit_shard(full | head, unit, self.dims, self.layout, model.score_head)
                self._load_local(model, local)
                loaded[id(model)] |= set(local)
        for model in models:
            params = set(model.params())
            if params != loaded[id(model)]:
                raise RuntimeError(f"weight names do not match the Megatron model: missing {sorted(params - loaded[id(model)])[:5]}")

    @staticmethod
    def _load_local(model: _Model, local: dict[str, torch.Tensor]) -> None:
        params = model.params()
        unexpected = sorted(set(local) - set(params))
        if unexpected:
            raise RuntimeError(f"weight names do not match the Megatron model: unexpected {unexpected[:5]}")
        with torch.no_grad():
            for name, t in local.items():
                params[name].copy_(t)
                if name in model.master:
                    model.master[name].copy_(t)

    @staticmethod
    def _setup_optim(model: _Model, cfg: OptimConfig, total_steps: int) -> None:
        model.opt, model.sched = build_optimizer(model.optimized().values(), cfg, total_steps)
        model.clip = cfg.max_grad_norm

    # ---- micro-batches and the pipeline ---------------------------------------------------
    def _micro_batches(self, batch: SequenceBatch, index: list[int]) -> list[MicroBatch]:
        if self.packing:
            return micro_batches.packed(batch, index, self.micro_batch_tokens, self.pad_id, self.device, self.attention)
        return micro_batches.padded(batch, index, self.micro_batch_size, self.pad_id, self.device,
                                    causal_mask=self.attention == "local")

    @staticmethod
    def _forward(module: torch.nn.Module, mb: MicroBatch) -> torch.Tensor:
        return module(mb.tokens, mb.positions, mb.mask, packed_seq_params=mb.packed)

    def _run(self, model: _Model, mbs: list[MicroBatch], on_output: Callable, forward_only: bool) -> None:
        """One pipeline pass; ``on_output(mb, output)`` runs on the last stage and returns the
        micro-batch's loss (a scalar, ignored when ``forward_only``)."""
        from megatron.core.pipeline_parallel import get_forward_backward_func

        def loss_func(mb: MicroBatch, output: torch.Tensor):
            loss = on_output(mb, output)
            return loss, torch.ones((), dtype=torch.int, device=self.device), {}

        def forward_step(data_iterator, module):
            mb = next(data_iterator)
            return self._forward(module, mb), functools.partial(loss_func, mb)

        if not mbs:
            return
        rows, width = mbs[0].shape
        get_forward_backward_func()(
            forward_step_func=forward_step, data_iterator=iter(mbs), model=[model.module], num_microbatches=len(mbs),
            seq_length=width, micro_batch_size=rows, forward_only=forward_only)

    def _logprobs(self, mb: MicroBatch, logits: torch.Tensor) -> list[torch.Tensor]:
        from megatron.core.tensor_parallel import vocab_parallel_cross_entropy

        # the cross-entropy kernel overwrites its input: hand it its own contiguous fp32 copy
        x = logits[:, :-1].to(torch.float32, copy=True, memory_format=torch.contiguous_format)
        return micro_batches.response_values(mb, -vocab_parallel_cross_entropy(x, mb.tokens[:, 1:].contiguous()))

    @torch.no_grad()
    def _entropy(self, mb: MicroBatch, logits: torch.Tensor) -> list[torch.Tensor]:
        """Entropy of the next-token distribution from vocabulary-parallel logits."""
        from megatron.core import parallel_state as ps

        group = ps.get_tensor_model_parallel_group()
        x = logits[:, :-1].float()
        top = x.max(dim=-1).values
        dist.all_reduce(top, op=dist.ReduceOp.MAX, group=group)
        e = torch.exp(x - top[..., None])
        z, ez = e.sum(-1), (e * x).sum(-1)
        dist.all_reduce(z, group=group)
        dist.all_reduce(ez, group=group)
        return micro_batches.response_values(mb, torch.log(z) + top - ez / z)

    def _from_last_stage(self, value):
        """A Python value computed on the last pipeline stage, on every rank of the pipeline."""
        if self.layout.pp == 1:
            return value
        from megatron.core import parallel_state as ps

        group = ps.get_pipeline_model_parallel_group()
        box = [value]
        dist.broadcast_object_list(box, src=dist.get_process_group_ranks(group)[-1], group=group)
        return box[0]

    # ---- protocol -------------------------------------------------------------------------
    def score(self, batch: SequenceBatch, with_entropy: bool = False) -> ScoredTokens:
        """Log-probs (and entropy) of every sequence of ``batch`` on every rank."""
        logprobs: dict[int, torch.Tensor] = {}
        entropy: dict[int, torch.Tensor] = {}

        def on_output(mb, logits):
            logprobs.update(zip(mb.index, (t.detach().cpu() for t in self._logprobs(mb, logits))))
            if with_entropy:
                entropy.update(zip(mb.index, (t.cpu() for t in self._entropy(mb, logits))))
            return logits.new_zeros(())

        with torch.no_grad():
            self._run(self.policy, self._micro_batches(batch, list(range(len(batch)))), on_output, forward_only=True)
        logprobs, entropy = self._from_last_stage((logprobs, entropy))
        order = range(len(batch))
        return ScoredTokens([logprobs[i] for i in order], [entropy[i] for i in order] if with_entropy else None)

    def train_step(self, batch: SequenceBatch, loss_fn: MicroBatchLoss, counts: TokenCounts, *,
                   update_policy: bool = True) -> TrainStats:
        if batch.rewards is None or batch.advantages is None:
            raise ValueError("train_step needs rewards and advantages on the batch")
        lay = self.layout
        mine = list(range(lay.dp_rank, len(batch), lay.dp))
        mbs = self._micro_batches(batch, mine)
        ref = self._reference_logprobs(mbs)
        rm_scores = self._train_token_rm(mbs, loss_fn, counts, ref) if self.token_rm is not None else {}
        sums: dict[str, float] = {}
        old: dict[int, torch.Tensor] = {}

        def on_output(mb, logits):
            lp = self._logprobs(mb, logits)
            entropy = self._entropy(mb, logits)
            out = loss_fn(self._loss_inputs(mb, lp, ref, rm_scores), counts)
            for k, v in out.metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            sums["entropy/mean"] = sums.get("entropy/mean", 0.0) + float(sum(e.sum() for e in entropy)) / max(counts.num_action_tokens, 1)
            old.update(zip(mb.index, (t.detach().cpu() for t in lp)))
            return out.policy_loss if update_policy else out.policy_loss.detach() * 0

        self.policy.module.train(update_policy)
        with torch.set_grad_enabled(update_policy):
            self._run(self.policy, mbs, on_output, forward_only=not update_policy)
        sums, old = self._from_last_stage((sums, old))
        metrics = self._sum_over_data_parallel(sums)
        metrics.update(self._optimizer_step(self.policy, "policy", update_policy, waits=self._policy_schedule_waits))
        if self.token_rm is not None:
            metrics.update(self._optimizer_step(self.token_rm, "token_rm", True))
        return TrainStats(metrics, [old[i] for i in mine], mine)

    def _loss_inputs(self, mb: MicroBatch, logprobs: list[torch.Tensor], ref: dict, rm_scores: dict) -> LossInputs:
        def stack(values: dict) -> Optional[torch.Tensor]:
            return pad([values[i].to(self.device) for i in mb.index])[0] if values else None

        lp, mask = pad(logprobs)
        return LossInputs(logprobs=lp, mask=mask, rewards=mb.batch.rewards.to(self.device),
                          advantages=mb.batch.advantages.to(self.device), ref_logprobs=stack(ref), rm_scores=stack(rm_scores))

    def _reference_logprobs(self, mbs: list[MicroBatch]) -> dict[int, torch.Tensor]:
        if self.reference is None:
            return {}
        ref: dict[int, torch.Tensor] = {}

        def on_output(mb, logits):
            ref.update(zip(mb.index, (t.detach() for t in self._logprobs(mb, logits))))
            return logits.new_zeros(())

        with torch.no_grad():
            self._run(self.reference, mbs, on_output, forward_only=True)
        return ref  # only the last stage needs them

    def _train_token_rm(self, mbs: list[MicroBatch], loss_fn: MicroBatchLoss, counts: TokenCounts,
                        ref: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        scores: dict[int, torch.Tensor] = {}

        def on_output(mb, output):
            live = micro_batches.response_values(mb, output[..., 0].float())
            scores.update(zip(mb.index, (s.detach() for s in live)))
            stand_in = [ref[i] if ref else torch.zeros_like(s) for i, s in zip(mb.index, live)]
            live_scores = {i: s for i, s in zip(mb.index, live)}
            return loss_fn(self._loss_inputs(mb, stand_in, ref, live_scores), counts).rm_loss

        self.token_rm.module.train()
        self._run(self.token_rm, mbs, on_output, forward_only=False)
        return scores

    # ---- optimisation ---------------------------------------------------------------------
    def _sum_over_data_parallel(self, sums: dict[str, float]) -> dict[str, float]:
        if self.layout.dp == 1:
            return sums
        from megatron.core import parallel_state as ps

        return all_reduce_metrics(sums, self.device, group=ps.get_data_parallel_group())

    def _sync_grads(self, params: list[torch.nn.Parameter]) -> None:
        from megatron.core import parallel_state as ps

        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if self.layout.dp > 1:
            all_reduce_in_buckets([p.grad for p in params], group=ps.get_data_parallel_group())

    def _clip(self, params: list[torch.nn.Parameter], max_norm: float, sharded: bool = False) -> float:
        """``torch.nn.utils.clip_grad_norm_`` over the whole model: squares summed over the
        tensor and pipeline parallel ranks, replicated tensors counted once, and over the
        data-parallel ranks too when each holds the gradients of the parameters it owns only."""
        from megatron.core import parallel_state as ps
        from megatron.core.tensor_parallel import param_is_not_tensor_parallel_duplicate

        sq = torch.zeros((), dtype=torch.float64, device=self.device)
        for p in params:
            if param_is_not_tensor_parallel_duplicate(p):
                sq += p.grad.double().pow(2).sum()
        dist.all_reduce(sq, group=ps.get_model_parallel_group())
        if sharded:
            dist.all_reduce(sq, group=ps.get_data_parallel_group())
        norm = float(sq.sqrt())
        coef = min(1.0, max_norm / (norm + 1e-6))
        if coef < 1.0:
            for p in params:
                p.grad.mul_(coef)
        return norm

    def _optimizer_step(self, model: _Model, name: str, update: bool, waits: bool = False) -> dict[str, float]:
        """One optimiser step (none when not ``update``), then the schedule's (:func:`advance_schedule`).
        With the optimiser sharded, this rank steps the parameters it owns and the owners then
        broadcast theirs to the other data-parallel ranks."""
        out = {f"optim/{name}_lr": model.sched.get_last_lr()[0] if update else 0.0}
        if update:
            self._sync_grads([p for p in model.module.parameters() if p.requires_grad])
            model.grads_to_master()
            params = list(model.optimized().values())
            out[f"optim/{name}_grad_norm"] = self._clip(params, model.clip, sharded=model.sharded)
            model.opt.step()
            model.master_to_params()
            if model.sharded:
                from megatron.core import parallel_state as ps

                share_updates(model.params(), model.owners, ps.get_data_parallel_group())
        model.opt.zero_grad(set_to_none=True)
        for p in model.module.parameters():
            p.grad = None
        advance_schedule(model.sched, updated=update, waits=waits)
        return out

    # ---- weights out and checkpoints ------------------------------------------------------
    def _gathered(self, model: _Model, tensors: Optional[dict[str, torch.Tensor]] = None) -> Iterator[dict[str, torch.Tensor]]:
        """HF-named full tensors of ``model`` (or of per-parameter ``tensors`` such as Adam
        moments), one unit at a time, on global rank 0."""
        for full in gather_units(tensors if tensors is not None else model.params(), self.dims, self.layout, model.score_head):
            yield mcore_to_hf(full, self.dims, model.score_head) if full else {}

    def export_weights(self, bucket_bytes: int) -> Iterator[list[tuple[str, torch.Tensor]]]:
        """The policy's full HF-named weights on rank 0, one bucket at a time (other ranks
        take part in the gathers and receive nothing)."""
        named = ((k, v) for unit in self._gathered(self.policy) for k, v in unit.items())
        return buckets(named, bucket_bytes)

    # ---- sharded checkpoints ------------------------------------------------------------
    def _sharded_state(self) -> dict:
        """Megatron sharded state of every trainable model: its weights (the fp32 masters when
        it keeps them), both Adam moments, and (as common state) its schedule and step count.
        Keys follow Megatron's layout-free naming, so any TP / PP / DP layout, sharded optimiser
        or not, can load it. With a sharded optimiser each rank saves and loads what it owns
        (its owner is the tensor's one main replica)."""
        from megatron.core.dist_checkpointing.optimizer import make_sharded_optimizer_tensor

        state: dict = {}
        for name, model in self._trainable():
            adam = _adam_state(model)
            tensors = {"weights": model.optimized()} | {m: {n: s[m] for n, s in adam.items()} for m in ("exp_avg", "exp_avg_sq")}
            names = {id(p): n for n, p in model.module.named_parameters()}
            for key, sharded in model.module.sharded_state_dict(prefix="").items():
                pname = names.get(id(getattr(sharded, "data", None)))
                if pname is None:  # the local spec's empty ``_extra_state`` objects
                    continue
                if pname not in model.owned:  # another data-parallel rank's
                    continue
                for what, by_name in tensors.items():
                    tensor = make_sharded_optimizer_tensor(sharded, by_name[pname], f"{name}.{what}")
                    if model.sharded:
                        tensor = dataclasses.replace(tensor, replica_id=_owned_replica(tensor.replica_id))
                    state[f"{name}.{what}.{key}"] = tensor
            state[f"{name}.common"] = {"sched": model.sched.state_dict(), "param_groups": _hyper_parameters(model.opt),
                                       "adam_step": float(next(iter(adam.values()))["step"]) if adam else 0.0}
        return state

    def _trainable(self) -> list[tuple[str, _Model]]:
        return [(name, model) for name, model in (("policy", self.policy), ("token_rm", self.token_rm)) if model is not None]

    def save(self, directory: Path) -> None:
        """Every rank writes only its own shards (Megatron ``dist_checkpointing``, torch_dist
        format) into ``directory/engine``; rank 0 adds the common state. Tensors replicated
        over data-parallel ranks are written once, the writing spread over those ranks."""
        from megatron.core import dist_checkpointing
        from megatron.core import parallel_state as ps
        from megatron.core.dist_checkpointing.serialization import get_default_save_sharded_strategy
        from megatron.core.dist_checkpointing.strategies.fully_parallel import FullyParallelSaveStrategyWrapper

        target = Path(directory) / "engine"
        if self.layout.rank == 0:
            target.mkdir(parents=True, exist_ok=True)
        dist.barrier()
        strategy = FullyParallelSaveStrategyWrapper(get_default_save_sharded_strategy(), ps.get_data_parallel_group())
        dist_checkpointing.save(self._sharded_state(), str(target), sharded_strategy=strategy)

    def load(self, directory: Path) -> None:
        """Each rank reads the pieces of its own shards, resharding from whatever layout wrote them
        (with a sharded optimiser: of what it owns, then the owners broadcast the weights)."""
        from megatron.core import dist_checkpointing
        from megatron.core import parallel_state as ps

        loaded = dist_checkpointing.load(self._sharded_state(), str(Path(directory) / "engine"))
        for name, model in self._trainable():
            common = loaded[f"{name}.common"]
            adam = _adam_state(model, step=common["adam_step"])
            names = {id(p): n for n, p in model.module.named_parameters()}
            with torch.no_grad():
                for key, sharded in model.module.sharded_state_dict(prefix="").items():
                    pname = names.get(id(getattr(sharded, "data", None)))
                    if pname is None or pname not in model.owned:
                        continue
                    model.optimized()[pname].copy_(loaded[f"{name}.weights.{key}"])
                    for m in ("exp_avg", "exp_avg_sq"):
                        adam[pname][m].copy_(loaded[f"{name}.{m}.{key}"])
            model.master_to_params()
            if model.sharded:
                share_updates(model.params(), model.owners, ps.get_data_parallel_group())
            for group, saved in zip(model.opt.param_groups, common["param_groups"]):
                group.update(saved)
            load_schedule(model.sched, common["sched"])

    def save_pretrained(self, path: str) -> None:
        """The policy as a Hugging Face checkpoint: one safetensors file per unit and their index
        (``model.safetensors.index.json``), written by rank 0 as each unit arrives, so that it
        never holds more than one unit of the full model."""
        from safetensors.torch import save_file

        out = Path(path)
        total_units = len(units(self.dims))
        weight_map: dict[str, str] = {}
        total_size = 0
        if self.layout.rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            for stale in [*out.glob("*.safetensors"), out / "model.safetensors.index.json"]:
                stale.unlink(missing_ok=True)  # an earlier export's files would shadow or mix with these
        for i, unit in enumerate(self._gathered(self.policy)):
            if self.layout.rank != 0:
                continue
            name = f"model-{i + 1:05d}-of-{total_units:05d}.safetensors"
            tensors = {k: v.detach().cpu().contiguous() for k, v in unit.items()}
            save_file(tensors, str(out / name), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(tensors, name))
            total_size += sum(t.numel() * t.element_size() for t in tensors.values())
        if self.layout.rank != 0:
            return
        from transformers import AutoConfig

        index = {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(weight_map.items()))}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
        AutoConfig.from_pretrained(self._model_path).save_pretrained(path)


def _owned_replica(replica_id: tuple) -> tuple:
    """Megatron's replica id ``(.., tp duplicate, data-parallel rank)`` of a tensor this rank
    owns: its data-parallel part 0, the one main replica (no other data-parallel rank has it)."""
    return (*replica_id[:-1], 0)


def _hyper_parameters(opt: torch.optim.Optimizer) -> list[dict]:
    """Each parameter group's settings (betas, weight decay; the lr is recomputed from the schedule on load)."""
    return [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]


def _adam_state(model: _Model, step: Optional[float] = None) -> dict[str, dict[str, torch.Tensor]]:
    """AdamW's per-parameter state by parameter name, created (zero moments, step 0: exactly
    a fresh optimiser) where the optimiser has not stepped yet; ``step`` overrides the count."""
    out = {}
    for name, p in model.optimized().items():
        s = model.opt.state[p]
        if not s:
            s.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        if step is not None:
            s["step"] = torch.tensor(float(step))
        out[name] = s
    return out
