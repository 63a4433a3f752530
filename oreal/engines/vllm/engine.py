"""vLLM as an in-process rollout engine.

In-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) with eager execution is the right default on
CPU: about 2.5 s to start and the lowest memory; on GPUs the same class runs the CUDA build.
The KV cache is always sized explicitly (bytes on CPU, a memory fraction on GPU): vLLM's
default reserves 90% of the machine. New weights stream in through ``reload_weights`` as an
iterator over buckets, so only one bucket is materialised at a time; as a member of a rollout
fleet, each worker instead receives them through the trainer's weight group
(:mod:`oreal.engines.vllm.weight_receiver`). Every prompt samples with its own seed
(:func:`prompt_seed`), so its responses do not depend on the other prompts of the call or on
which engine of a fleet serves it.
"""

from __future__ import annotations

import dataclasses

import logging
import os
from typing import Iterator, Optional, Sequence

import torch

from oreal.engines.protocols import Completion, RolloutGroup, SamplingSettings, prompt_seed
from oreal.engines.weights import flatten


class VLLMRolloutEngine:
    def __init__(self, model_path: str, *, dtype: str = "float32", max_model_len: int = 4096, kv_cache_gb: float = 1.0,
                 gpu_memory_utilization: float = 0.85, enforce_eager: bool = True, tensor_parallel_size: int = 1,
                 seed: int = 0, num_threads: Optional[int] = None):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # per-step INFO lines drown the training log
        if num_threads:
            torch.set_num_threads(num_threads)  # must happen before the engine exists
        from vllm import LLM

        # Prompts are never split over scheduler steps: with chunked prefill, vLLM rewinds a
        # seeded request's generator for the discarded partial-prefill sample, which CPU
        # generators cannot do ("CPU Generator does not use offset").
        kwargs = dict(model=str(model_path), dtype=dtype, max_model_len=max_model_len, enforce_eager=enforce_eager,
                      tensor_parallel_size=tensor_parallel_size, seed=seed, logprobs_mode="raw_logprobs",
                      enable_chunked_prefill=False, max_num_batched_tokens=max(max_model_len, 8192),
                      worker_extension_cls="oreal.engines.vllm.weight_receiver.WeightReceiver")
        if torch.cuda.is_available():
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        else:
            kwargs["kv_cache_memory_bytes"] = int(kv_cache_gb * (1 << 30))
        self.llm = LLM(**kwargs)
        self.weight_group_ranks = tensor_parallel_size  # one receiver per worker
        self.tokenizer = self.llm.get_tokenizer()
        # Every in-place reload warns that the rotary embedding (a buffer, not in any
        # checkpoint) "failed to load" and then restores it; parity tests show the sync is exact.
        logging.getLogger("vllm.model_executor.model_loader.reload.layerwise").setLevel(logging.ERROR)

    def generate(self, prompts: Sequence[list[int]], n: int, sampling: SamplingSettings) -> list[RolloutGroup]:
        from vllm import SamplingParams

        # vLLM samples greedily below a temperature of 1e-5 and then refuses n > 1; greedy
        # samples are all the same, so one is made and repeated
        greedy = sampling.temperature < 1e-5
        params = [SamplingParams(
            n=1 if greedy else n, temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or -1,
            max_tokens=sampling.max_new_tokens, stop=list(sampling.stop) or None, logprobs=0,
            seed=None if sampling.seed is None else prompt_seed(sampling.seed, sampling.prompt_offset + i),
        ) for i in range(len(prompts))]
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        groups = [RolloutGroup(list(p), [self._completion(c) for c in out.outputs]) for p, out in zip(prompts, outputs)]
        if greedy:
            for g in groups:
                c = g.completions[0]
                g.completions = [dataclasses.replace(c, token_ids=list(c.token_ids), logprobs=list(c.logprobs)) for _ in range(n)]
        return groups

    @staticmethod
    def _completion(c) -> Completion:
        ids = list(c.token_ids)
        logprobs = [step[tok].logprob for step, tok in zip(c.logprobs, ids)]
        return Completion(ids, c.text, logprobs, "length" if c.finish_reason == "length" else "stop")

    def update_weights(self, weight_buckets: Iterator[list[tuple[str, torch.Tensor]]]) -> None:
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": flatten(weight_buckets)})
        self.llm.reset_prefix_cache()

    def join_weight_group(self, spec: dict, base_rank: int) -> None:
        """Every worker joins the trainer's weight group (ranks ``base_rank`` onwards)."""
        self.llm.collective_rpc("oreal_join_weight_group", args=(spec, base_rank))

    def receive_weights_from_group(self) -> None:
        self.llm.collective_rpc("oreal_receive_weights")
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        engine = getattr(self.llm, "llm_engine", None)
        if engine is not None and hasattr(engine, "engine_core"):
            try:
                engine.engine_core.shutdown()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
        del self.llm
