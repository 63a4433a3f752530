"""A rollout engine that returns recorded responses from a JSONL file (evaluation tests).

Each row is ``{"problem": str, "responses": [str, ...]}`` (or ``"response": str``), optionally
``"finish_reasons"``. A prompt is matched to the longest recorded problem whose text it
contains, so any system prompt or chat template works. The i-th of ``n`` samples is response
``i mod len(responses)``. Recorded responses have no log-probs; they are reported as 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

import torch

from oreal.engines.protocols import Completion, RolloutGroup, SamplingSettings


class ReplayRolloutEngine:
    def __init__(self, replay_path: str, tokenizer):
        self.tokenizer = tokenizer
        self.rows: dict[str, tuple[list[str], list[str]]] = {}
        path = Path(replay_path)
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    problem = row["problem"]
                    responses = row["responses"] if "responses" in row else [row["response"]]
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{lineno}: a replay row needs 'problem' and 'responses' ({exc})") from None
                if not isinstance(problem, str) or not responses or not all(isinstance(r, str) for r in responses):
                    raise ValueError(f"{path}:{lineno}: 'problem' must be a string and 'responses' a non-empty list of strings")
                reasons = row.get("finish_reasons") or ["stop"] * len(responses)
                self.rows[problem] = (responses, reasons)
        self._by_length = sorted(self.rows, key=len, reverse=True)

    def _lookup(self, prompt_text: str) -> tuple[list[str], list[str]]:
        for problem in self._by_length:
            if problem in prompt_text:
                return self.rows[problem]
        raise KeyError(f"no recorded responses for prompt {prompt_text[-200:]!r}")

    def generate(self, prompts: Sequence[list[int]], n: int, sampling: SamplingSettings) -> list[RolloutGroup]:
        groups = []
        for prompt in prompts:
            responses, reasons = self._lookup(self.tokenizer.decode(prompt, skip_special_tokens=True))
            completions = []
            for i in range(n):
                text = responses[i % len(responses)]
                ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
                completions.append(Completion(ids, text, [0.0] * len(ids), reasons[i % len(reasons)]))
            groups.append(RolloutGroup(list(prompt), completions))
        return groups

    def update_weights(self, weight_buckets: Iterator[list[tuple[str, torch.Tensor]]]) -> None:
        for _ in weight_buckets:  # recorded responses do not depend on weights
            pass

    def close(self) -> None:
        pass
