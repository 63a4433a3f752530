"""The CPU task: seeded arithmetic word problems with worked solutions.

It exists so that a ~1M-parameter model can learn measurably on two CPU cores. A problem is
a chain of 1-3 operations (+, -, *, /) on a starting quantity, with integers or fractions, in
four difficulty levels; its solution writes one equation per step and ends with
``\\boxed{answer}``. Train, held-out and SFT splits are disjoint by problem text.

    Mia has 7 marbles. She gets 5 more. Then she gives away 3. How many marbles does Mia have now?
    7 + 5 = 12. 12 - 3 = 9. The answer is \\boxed{9}.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

NAMES = ("Mia", "Tom", "Ava", "Leo", "Zoe", "Sam", "Eli", "Ivy", "Max", "Amy", "Ben", "Lia")
PRONOUN = {"Mia": "She", "Ava": "She", "Zoe": "She", "Ivy": "She", "Amy": "She", "Lia": "She"}
ITEMS = ("apples", "marbles", "coins", "books", "cards", "stamps", "shells", "pencils")
FRACTION_ITEMS = ("liters of juice", "kilograms of rice", "meters of rope", "cups of flour")

# level -> (number of steps, largest operand, operations, uses fractions)
LEVELS = {
    1: (1, 9, "+-", False),
    2: (2, 12, "+-", False),
    3: (2, 9, "+-*/", False),
    4: (2, 6, "+-*", True),
}
SUBJECTS = {1: "one step", 2: "two steps", 3: "mixed operations", 4: "fractions"}


@dataclass(frozen=True)
class Problem:
    problem: str
    solution: str
    answer: str
    level: int
    subject: str

    def as_row(self, index: int, split: str) -> dict:
        return {"problem": self.problem, "solution": self.solution, "answer": self.answer,
                "level": self.level, "subject": self.subject, "unique_id": f"cpu_task/{split}/{index}"}


def fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _operand(rng: random.Random, hi: int, fractions: bool) -> Fraction:
    if fractions and rng.random() < 0.7:
        den = rng.choice((2, 3, 4, 5))
        return Fraction(rng.randint(1, 2 * den - 1), den)
    return Fraction(rng.randint(2, hi))


def _step_text(op: str, b: Fraction, pronoun: str, unit: str) -> str:
    v = fmt(b)
    return {
        "+": f"{pronoun} gets {v} more.",
        "-": f"Then {pronoun.lower()} uses {v}.",
        "*": f"Then {pronoun.lower()} has {v} times as many.",
        "/": f"{pronoun} splits them into {v} equal parts and keeps one part.",
    }[op]


def make_problem(rng: random.Random, level: int) -> Problem:
    steps, hi, ops, fractions = LEVELS[level]
    name = rng.choice(NAMES)
    pronoun = PRONOUN.get(name, "He")
    unit = rng.choice(FRACTION_ITEMS if fractions else ITEMS)
    value = _operand(rng, hi, fractions) if fractions else Fraction(rng.randint(2, hi))
    sentences = [f"{name} has {fmt(value)} {unit}."]
    work = []
    for _ in range(steps):
        op = rng.choice(ops)
        b = _operand(rng, hi, fractions)
        if op == "-" and b > value:
            op = "+"
        if op == "/":
            divisors = [d for d in range(2, hi + 1) if value % d == 0]
            if not divisors:
                op, b = "+", b
            else:
                b = Fraction(rng.choice(divisors))
        new = {"+": value + b, "-": value - b, "*": value * b, "/": value / b}[op]
        sentences.append(_step_text(op, b, pronoun, unit))
        work.append(f"{fmt(value)} {op} {fmt(b)} = {fmt(new)}.")
        value = new
    sentences.append(f"How many {unit} does {name} have now?")
    answer = fmt(value)
    return Problem(" ".join(sentences), " ".join(work) + f" The answer is \\boxed{{{answer}}}.", answer, level, SUBJECTS[level])


def generate(seed: int, count: int, exclude: frozenset = frozenset()) -> Iterator[Problem]:
    """``count`` distinct problems, levels 1-4 in turn, none whose text is in ``exclude``."""
    rng = random.Random(seed)
    seen = set(exclude)
    made = 0
    attempts = 0
    while made < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise RuntimeError(f"could only make {made} distinct problems of {count}; lower the count")
        p = make_problem(rng, 1 + made % len(LEVELS))
        if p.problem in seen:
            continue
        seen.add(p.problem)
        made += 1
        yield p


def splits(seed: int, num_train: int, num_heldout: int, num_sft: int) -> dict[str, list[dict]]:
    """The three disjoint splits as rows (problem, solution, answer, level, subject, unique_id).
    The held-out split is drawn first, so it does not change when the others grow."""
    heldout = list(generate(seed, num_heldout))
    taken = frozenset(p.problem for p in heldout)
    train = list(generate(seed + 1, num_train, taken))
    taken |= frozenset(p.problem for p in train)
    sft = list(generate(seed + 2, num_sft, taken))
    return {name: [p.as_row(i, name) for i, p in enumerate(problems)]
            for name, problems in (("train", train), ("heldout", heldout), ("sft", sft))}
