"""The training prompt stream: several sources mixed by weight, seeded and resumable.

Each draw picks a source with probability proportional to its weight, then that source's
next prompt in a per-epoch shuffled order (reshuffled with ``seed + epoch`` when exhausted).
:meth:`PromptSampler.state_dict` is small and JSON-serialisable and goes into every
checkpoint; a sampler restored from it yields exactly the prompts the uninterrupted one
would have (resume that forgets the data position silently repeats or skips data).
"""

from __future__ import annotations

import random
from typing import Sequence

from oreal.algo import PassRateBand, difficulty_repeats
from oreal.data.sources import Prompt


def balance(prompts: Sequence[Prompt], bands: Sequence[PassRateBand]) -> list[Prompt]:
    """Offline difficulty balance: repeat each prompt by its pass-rate band, drop easy ones."""
    repeats = difficulty_repeats([p.pass_rate for p in prompts], bands)
    return [p for p, r in zip(prompts, repeats) for _ in range(r)]


class PromptSampler:
    def __init__(self, sources: dict[str, Sequence[Prompt]], weights: dict[str, float], seed: int):
        if not sources:
            raise ValueError("PromptSampler needs at least one source")
        empty = [name for name, prompts in sources.items() if not prompts]
        if empty:
            raise ValueError(f"data sources {empty} have no prompts left (after difficulty balance?)")
        self.names = sorted(sources)
        self.sources = {name: list(sources[name]) for name in self.names}
        self.weights = [float(weights[name]) for name in self.names]
        self.seed = seed
        self._rng = random.Random(seed)
        self._epoch = {name: 0 for name in self.names}
        self._cursor = {name: 0 for name in self.names}
        self._orders = {name: self._order(name, 0) for name in self.names}
        self.num_drawn = 0

    def _order(self, name: str, epoch: int) -> list[int]:
        order = list(range(len(self.sources[name])))
        random.Random(f"{self.seed}/{name}/{epoch}").shuffle(order)
        return order

    def _next_from(self, name: str) -> Prompt:
        if self._cursor[name] == len(self._orders[name]):
            self._epoch[name] += 1
            self._cursor[name] = 0
            self._orders[name] = self._order(name, self._epoch[name])
        prompt = self.sources[name][self._orders[name][self._cursor[name]]]
        self._cursor[name] += 1
        return prompt

    def draw(self, count: int) -> list[tuple[str, Prompt]]:
        """The next ``count`` prompts with the name of the source each came from."""
        out = []
        for _ in range(count):
            name = self._rng.choices(self.names, weights=self.weights)[0] if len(self.names) > 1 else self.names[0]
            out.append((name, self._next_from(name)))
        self.num_drawn += count
        return out

    def observe(self, prompts: Sequence[Prompt], all_wrong: Sequence[bool]) -> None:
        """The plain stream does not adapt to results (see ``oreal.data.skills`` for one that does)."""

    def state_dict(self) -> dict:
        version, internal, gauss = self._rng.getstate()
        return {"seed": self.seed, "rng": [version, list(internal), gauss], "epoch": dict(self._epoch),
                "cursor": dict(self._cursor), "num_drawn": self.num_drawn,
                "sizes": {name: len(p) for name, p in self.sources.items()}}

    def load_state_dict(self, state: dict) -> None:
        if "stream" in state:
            raise ValueError("the checkpoint was written with data.skill_replay enabled; resume with the same data config")
        sizes = {name: len(p) for name, p in self.sources.items()}
        if state["sizes"] != sizes or state["seed"] != self.seed:
            raise ValueError(f"the saved sampler was built on other data (sizes {state['sizes']}, seed {state['seed']}); "
                             f"this one has sizes {sizes}, seed {self.seed}: resume with the same data config and seed")
        version, internal, gauss = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss))
        self._epoch = dict(state["epoch"])
        self._cursor = dict(state["cursor"])
        self._orders = {name: self._order(name, self._epoch[name]) for name in self.names}
        self.num_drawn = state["num_drawn"]
