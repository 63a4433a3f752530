"""Skill-based enhancement, row 5 of the paper's ablation ladder, as a data-side option.

The paper revisits the problems the policy keeps failing with the skills they need. Here a
problem's skill is one of its fields (``subject`` by default: the MATH subject, or the CPU
task's kind of problem). Every prompt whose whole group was wrong is remembered with its skill
(the last ``memory`` such failures); a share ``fraction`` of each later batch is then drawn
from the training pool among problems of a remembered skill (a skill failed more often is
drawn more often; the failed problem itself can come back). The rest of the batch is the
plain stream, so with no failures on record the sampler is the plain one.

Its state (failure memory and random generator) goes into the checkpoint with the stream's,
so a resumed run draws what the uninterrupted one would have.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from typing import Optional, Sequence

from oreal.config.schema import SkillReplayConfig
from oreal.data.sampler import PromptSampler
from oreal.data.sources import Prompt

SOURCE_NAME = "skill_replay"  # the source recorded for replayed prompts (trajectories, metrics)


def skill_of(prompt: Prompt, key: str) -> Optional[str]:
    if key == "subject_level":
        return None if prompt.subject is None else f"{prompt.subject}/{prompt.level}"
    return getattr(prompt, key)


class SkillReplaySampler:
    """:class:`PromptSampler` plus replay of failed skills; same ``draw`` / state interface."""

    def __init__(self, stream: PromptSampler, cfg: SkillReplayConfig, seed: int):
        """``cfg`` is validated with the rest of the config (``oreal.config.validate``)."""
        self.stream = stream
        self.cfg = cfg
        self._rng = random.Random(f"{seed}/skill_replay")
        self._failed: deque[str] = deque(maxlen=cfg.memory)
        self._pool: dict[str, list[Prompt]] = {}
        for name in stream.names:
            for prompt in stream.sources[name]:
                skill = skill_of(prompt, cfg.key)
                if skill is not None:
                    self._pool.setdefault(skill, []).append(prompt)
        if not self._pool:
            raise ValueError(f"data.skill_replay: no training prompt has a {cfg.key!r} field to group skills by; "
                             f"map one in the source's fields or set data.skill_replay.key")

    def draw(self, count: int) -> list[tuple[str, Prompt]]:
        replay = round(count * self.cfg.fraction) if self._failed else 0
        out = self.stream.draw(count - replay)
        for _ in range(replay):
            skill = self._rng.choice(self._failed)
            out.append((SOURCE_NAME, self._rng.choice(self._pool[skill])))
        return out

    def observe(self, prompts: Sequence[Prompt], all_wrong: Sequence[bool]) -> None:
        """Remember the skills of this step's prompts whose every sample was wrong."""
        for prompt, failed in zip(prompts, all_wrong):
            skill = skill_of(prompt, self.cfg.key)
            if failed and skill in self._pool:
                self._failed.append(skill)

    def failed_skills(self) -> dict[str, int]:
        return dict(Counter(self._failed))

    def state_dict(self) -> dict:
        version, internal, gauss = self._rng.getstate()
        return {"stream": self.stream.state_dict(), "failed": list(self._failed), "rng": [version, list(internal), gauss]}

    def load_state_dict(self, state: dict) -> None:
        if "stream" not in state:
            raise ValueError("the checkpoint was written without data.skill_replay; resume with the same data config")
        self.stream.load_state_dict(state["stream"])
        self._failed = deque(state["failed"], maxlen=self.cfg.memory)
        version, internal, gauss = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss))
