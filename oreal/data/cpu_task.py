"""The CPU task: seeded arithmetic word problems with worked solutions.

It exists so that a ~1M-parameter model can learn measurably on two CPU cores. A problem is
a chain of 2-3 operations (+, -, *) on a small starting quantity, with integers or halves, in
four levels; its worked solution writes one equation per step and ends with ``\\boxed{}``.
Each written step is an easy fact; the answer of the whole chain is hard to produce without
writing the steps down. Train, held-out and SFT splits are disjoint by problem text.

    Lia has 10 shells. Then she uses 4. She gets 3 more. How many shells does Lia have now?
    10 - 4 = 6. 6 + 3 = 9. The answer is \\boxed{9}.

The SFT split can give a share of its (right) answers without working
(``sft_answer_only_rate``). A model warm-started on it answers without working part of the
time, and then mostly wrongly: the gap RL has to close by learning to show its work, much as
RL on large models learns to reason for longer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, Sequence

# Bump when the generator's output changes: cached models and SFT checkpoints key on it.
VERSION = 2

NAMES = ("Mia", "Tom", "Ava", "Leo", "Zoe", "Sam", "Eli", "Ivy", "Max", "Amy", "Ben", "Lia")
PRONOUN = {"Mia": "She", "Ava": "She", "Zoe": "She", "Ivy": "She", "Amy": "She", "Lia": "She"}
ITEMS = ("apples", "marbles", "coins", "books", "cards", "stamps", "shells", "pencils")
FRACTION_ITEMS = ("liters of juice", "kilograms of rice", "meters of rope", "cups of flour")

# level -> (number of steps, largest operand, operations, uses fractions)
# Small numbers, several steps: each written step is an easy fact, while the answer of the
# whole chain is hard to produce without writing the steps down.
LEVELS = {
    1: (2, 5, "+-", False),
    2: (3, 5, "+-", False),
    3: (2, 4, "+-*", False),
    4: (2, 4, "+-", True),
}
SUBJECTS = {1: "two steps", 2: "three steps", 3: "with products", 4: "halves"}


@dataclass(frozen=True)
class Problem:
    problem: str
    start: Fraction
    ops: tuple[tuple[str, Fraction], ...]
    level: int
    subject: str

    @property
    def answer(self) -> str:
        return fmt(run_ops(self.start, self.ops))

    def solution(self, answer_only: bool = False) -> str:
        return f"The answer is \\boxed{{{self.answer}}}." if answer_only else worked_solution(self.start, self.ops)

    def as_row(self, index: int, split: str, answer_only: bool = False) -> dict:
        return {"problem": self.problem, "solution": self.solution(answer_only), "answer": self.answer,
                "level": self.level, "subject": self.subject, "unique_id": f"cpu_task/{split}/{index}"}


def apply(op: str, a: Fraction, b: Fraction) -> Fraction:
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]


def run_ops(value: Fraction, ops) -> Fraction:
    for op, b in ops:
        value = apply(op, value, b)
    return value


def worked_solution(value: Fraction, ops) -> str:
    """One equation per step, then the boxed result."""
    work = []
    for op, b in ops:
        new = apply(op, value, b)
        work.append(f"{fmt(value)} {op} {fmt(b)} = {fmt(new)}.")
        value = new
    return " ".join(work) + f" The answer is \\boxed{{{fmt(value)}}}."


def fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _operand(rng: random.Random, hi: int, fractions: bool) -> Fraction:
    if fractions and rng.random() < 0.5:
        return Fraction(2 * rng.randint(0, hi - 1) + 1, 2)
    return Fraction(rng.randint(1, hi))


def _step_text(op: str, b: Fraction, pronoun: str, unit: str) -> str:
    v = fmt(b)
    return {
        "+": f"{pronoun} gets {v} more.",
        "-": f"Then {pronoun.lower()} uses {v}.",
        "*": f"Then {pronoun.lower()} has {v} times as many.",
    }[op]


def make_problem(rng: random.Random, level: int) -> Problem:
    steps, hi, allowed_ops, fractions = LEVELS[level]
    name = rng.choice(NAMES)
    pronoun = PRONOUN.get(name, "He")
    unit = rng.choice(FRACTION_ITEMS if fractions else ITEMS)
    start = value = _operand(rng, hi, fractions) if fractions else Fraction(rng.randint(2, 2 * hi))
    sentences = [f"{name} has {fmt(value)} {unit}."]
    ops = []
    for _ in range(steps):
        op = rng.choice(allowed_ops)
        b = _operand(rng, hi, fractions)
        if op == "-" and b > value:
            op = "+"
        sentences.append(_step_text(op, b, pronoun, unit))
        ops.append((op, b))
        value = apply(op, value, b)
    sentences.append(f"How many {unit} does {name} have now?")
    return Problem(" ".join(sentences), start, tuple(ops), level, SUBJECTS[level])


def generate(seed: int, count: int, exclude: frozenset = frozenset(), levels: Sequence[int] = (1, 2, 3, 4)) -> Iterator[Problem]:
    """``count`` distinct problems, the given levels in turn, none whose text is in ``exclude``."""
    unknown = sorted(set(levels) - set(LEVELS))
    if unknown or not levels:
        raise ValueError(f"CPU-task levels must be a non-empty subset of {sorted(LEVELS)}, got {list(levels)}")
    rng = random.Random(seed)
    seen = set(exclude)
    made = 0
    attempts = 0
    while made < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise RuntimeError(f"could only make {made} distinct problems of {count}; lower the count")
        p = make_problem(rng, levels[made % len(levels)])
        if p.problem in seen:
            continue
        seen.add(p.problem)
        made += 1
        yield p


def splits(seed: int, num_train: int, num_heldout: int, num_sft: int, levels: Sequence[int] = (1, 2, 3, 4),
           sft_answer_only_rate: float = 0.0) -> dict[str, list[dict]]:
    """The three disjoint splits as rows (problem, solution, answer, level, subject, unique_id).
    The held-out split is drawn first, so it does not change when the others grow. In the SFT
    split a share ``sft_answer_only_rate`` of the solutions state the (right) answer without
    working: a warm-started model then sometimes answers without working, and mostly wrongly."""
    heldout = list(generate(seed, num_heldout, levels=levels))
    taken = frozenset(p.problem for p in heldout)
    train = list(generate(seed + 1, num_train, taken, levels))
    taken |= frozenset(p.problem for p in train)
    sft = list(generate(seed + 2, num_sft, taken, levels))
    styles = random.Random(seed + 3)
    sft_rows = [p.as_row(i, "sft", styles.random() < sft_answer_only_rate) for i, p in enumerate(sft)]
    return {"train": [p.as_row(i, "train") for i, p in enumerate(train)],
            "heldout": [p.as_row(i, "heldout") for i, p in enumerate(heldout)], "sft": sft_rows}
