"""From the data config to token ids: the training sampler and evaluation prompt lists."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Optional, Sequence

from oreal.algo import PassRateBand
from oreal.config.schema import Config, CPUTaskConfig, DataConfig, EvalSetConfig
from oreal.data.prompting import render_prompt
from oreal.data.sampler import PromptSampler, balance
from oreal.data.skills import SkillReplaySampler
from oreal.data.sources import Prompt, load_source


def bands(data: DataConfig) -> list[PassRateBand]:
    return [PassRateBand(b.low, b.high, b.repeat) for b in data.pass_rate_bands]


def build_sampler(cfg: Config) -> PromptSampler | SkillReplaySampler:
    sources = {name: load_source(src, cfg.data.cpu_task) for name, src in cfg.data.train.items()}
    if cfg.data.difficulty_balance:
        sources = {name: balance(prompts, bands(cfg.data)) for name, prompts in sources.items()}
    stream = PromptSampler(sources, {name: src.weight for name, src in cfg.data.train.items()}, cfg.seed)
    return SkillReplaySampler(stream, cfg.data.skill_replay, cfg.seed) if cfg.data.skill_replay.enabled else stream


class PromptRenderer:
    """Problem text -> prompt token ids with the configured system prompt and chat template.
    A prompt longer than ``max_prompt_tokens`` is refused (None), never silently cut."""

    def __init__(self, tokenizer, system_prompt: Optional[str], chat_template: str, max_prompt_tokens: int):
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.chat_template = chat_template
        self.max_prompt_tokens = max_prompt_tokens

    @classmethod
    def from_config(cls, tokenizer, data: DataConfig) -> "PromptRenderer":
        return cls(tokenizer, data.system_prompt, data.chat_template, data.max_prompt_tokens)

    def __call__(self, problem: str) -> Optional[list[int]]:
        text = render_prompt(self.tokenizer, problem, self.system_prompt, self.chat_template)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids if len(ids) <= self.max_prompt_tokens else None


@dataclass
class EvalPrompts:
    prompts: list[Prompt]
    token_ids: list[list[int]]
    num_skipped: int  # problems whose prompt did not fit in max_prompt_tokens
    dataset_sha256: str  # of the problems evaluated (ids, problems, answers, in order)


def content_hash(prompts: Sequence[Prompt]) -> str:
    h = hashlib.sha256()
    for p in prompts:
        h.update(json.dumps([p.id, p.problem, p.answer]).encode())
    return h.hexdigest()


def eval_prompts(ev: EvalSetConfig, task: CPUTaskConfig, render: PromptRenderer) -> EvalPrompts:
    """The first ``num_problems`` problems (in dataset order) whose prompt fits."""
    kept, ids, skipped = [], [], 0
    for prompt in load_source(ev.source, task):
        if ev.num_problems is not None and len(kept) == ev.num_problems:
            break
        tokens = render(prompt.problem)
        if tokens is None:
            skipped += 1
            continue
        kept.append(prompt)
        ids.append(tokens)
    return EvalPrompts(kept, ids, skipped, content_hash(kept))
