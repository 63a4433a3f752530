"""Hugging Face ``generate`` as a rollout engine: the light fallback, and the deterministic
engine of the CPU tests (same seed, same samples)."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from oreal.engines.protocols import Completion, RolloutGroup, SamplingSettings, prompt_seed


class HFRolloutEngine:
    def __init__(self, model_path: str, *, dtype: str = "float32", device: str = "cpu", batch_size: int = 64):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype)).to(device).eval()
        self.device = device
        self.batch_size = batch_size
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.pad_id = self.tokenizer.pad_token_id

    def generate(self, prompts: Sequence[list[int]], n: int, sampling: SamplingSettings) -> list[RolloutGroup]:
        groups = [RolloutGroup(list(p), []) for p in prompts]
        with torch.random.fork_rng(devices=[]):
            if sampling.seed is not None:  # one stream per call: a fleet of HF engines is reproducible per layout
                torch.manual_seed(prompt_seed(sampling.seed, sampling.prompt_offset))
            for start in range(0, len(prompts), max(1, self.batch_size // n)):
                chunk = list(range(start, min(start + max(1, self.batch_size // n), len(prompts))))
                for i, completions in zip(chunk, self._generate_chunk([prompts[i] for i in chunk], n, sampling)):
                    groups[i].completions = completions
        return groups

    @torch.no_grad()
    def _generate_chunk(self, prompts: list[list[int]], n: int, s: SamplingSettings) -> list[list[Completion]]:
        width = max(map(len, prompts))
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        for row, p in enumerate(prompts):  # left padding
            input_ids[row, width - len(p):] = torch.tensor(p)
            attention[row, width - len(p):] = 1
        greedy = s.temperature == 0
        out = self.model.generate(
            input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
            do_sample=not greedy, temperature=None if greedy else s.temperature, top_p=None if greedy else s.top_p,
            top_k=None if greedy else s.top_k, max_new_tokens=s.max_new_tokens, num_return_sequences=n,
            eos_token_id=sorted(self.eos_ids), pad_token_id=self.pad_id, stop_strings=list(s.stop) or None,
            tokenizer=self.tokenizer if s.stop else None, output_logits=True, return_dict_in_generate=True,
        )
        new_tokens = out.sequences[:, width:].cpu()
        raw = torch.stack(out.logits, dim=1).float().log_softmax(-1).cpu()  # [B*n, steps, V], before warping
        results: list[list[Completion]] = [[] for _ in prompts]
        for row in range(new_tokens.shape[0]):
            results[row // n].append(self._completion(new_tokens[row], raw[row], s))
        return results

    def _completion(self, tokens: torch.Tensor, logp: torch.Tensor, s: SamplingSettings) -> Completion:
        ids = tokens.tolist()
        ends = [i + 1 for i, t in enumerate(ids) if t in self.eos_ids][:1]
        ends += [k for k in (self._stop_string_end(ids, x) for x in s.stop) if k is not None]
        end = min(ends, default=None)
        ids = ids if end is None else ids[:end]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        for x in s.stop:  # like vLLM: the stop string ends the text and is not part of it
            if x in text:
                text = text[: text.find(x)]
        lps = logp[torch.arange(len(ids)), torch.tensor(ids, dtype=torch.long)].tolist()
        return Completion(ids, text, lps, "length" if end is None else "stop")

    def _stop_string_end(self, ids: list[int], stop: str):
        """Smallest k such that the first k tokens' text contains ``stop`` (None if never)."""
        if stop not in self.tokenizer.decode(ids, skip_special_tokens=True):
            return None
        lo, hi = 1, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if stop in self.tokenizer.decode(ids[:mid], skip_special_tokens=True):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def update_weights(self, weight_buckets: Iterator[list[tuple[str, torch.Tensor]]]) -> None:
        state = self.model.state_dict()
        with torch.no_grad():
            for bucket in weight_buckets:
                for name, tensor in bucket:
                    state[name].copy_(tensor)

    def close(self) -> None:
        pass
