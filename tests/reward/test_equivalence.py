"""Correctness of the checker on MATH-500 and on the regression files in tests/reward/data."""

import json
from pathlib import Path

import pytest

from oreal.reward.equivalence import as_fraction, equivalent, is_text
from oreal.reward.normalize import normalize_answer

DATA = Path(__file__).parent / "data"


def rows(name):
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


@pytest.fixture(scope="module")
def grader():
    """The real product path: worker processes with string evaluation disarmed."""
    from oreal.reward import GradingPool, Grader

    with GradingPool(num_workers=2) as pool:
        yield Grader(pool)


def graded(grader, pairs):
    return grader.grade_batch(["The answer is $\\boxed{%s}$." % p["pred"] for p in pairs], [p["gold"] for p in pairs])


def test_zero_false_positives_on_wrong_pairs(grader):
    pairs = rows("wrong_pairs.jsonl")
    assert len(pairs) >= 60
    modes = {p["mode"] for p in pairs}
    assert {"percent", "rounded", "factorial", "interval", "sign", "partial", "text"} <= modes
    false_positives = [(p, g) for p, g in zip(pairs, graded(grader, pairs)) if g.correct]
    assert false_positives == []
    assert all(not equivalent(p["pred"], p["gold"]).equal for p in pairs)  # in-process too


def test_false_negatives_at_most_one_percent(grader):
    pairs = rows("equivalent_rewritings.jsonl") + rows("equivalent_hand.jsonl")
    assert len(pairs) >= 200
    misses = [(p, g.reason) for p, g in zip(pairs, graded(grader, pairs)) if not g.correct]
    assert len(misses) <= 0.01 * len(pairs), misses


@pytest.mark.parametrize("raw,expected", [
    (r"\$32,\!348", "32348"), (r"864 \mbox{ inches}^2", "864"), (r"30^\circ", "30"), (r"\text{(C)}", "C"),
    (r"\left( \frac{3}{2}, -13 \right)", r"(\frac{3}{2},-13)"), (r"\dfrac{33}{100}", r"\frac{33}{100}"), (r"50\%", "50"),
    (r"x \in [-2,7]", "[-2,7]"), (r"\frac9{19}", r"\frac{9}{19}"), (r"\cot x", r"\cot x"), (r"\log_2 8", r"\log_2 8"),
    (r"1,000,000", "1000000"), (r"(1,000)", "(1,000)"), (r"\begin{bmatrix} 1 \\ 2 \end{bmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}"),
])
def test_normalisation(raw, expected):
    assert normalize_answer(raw) == expected


def test_exact_numbers_have_no_tolerance():
    assert as_fraction("0.333") != as_fraction(r"\frac{1}{3}")
    assert as_fraction("-0.25") == as_fraction("-1/4") == as_fraction(r"-\frac{1}{4}")
    assert not equivalent("0.3333333333333", r"\frac13").equal
    assert not equivalent("0.5", r"50\%").equal


def test_text_answers_are_not_products_of_symbols():
    assert is_text("Navin") and not is_text("ab+2a") and not is_text(r"\cot x")
    assert not equivalent("Nivan", "Navin").equal
    assert equivalent("ab+2a+5b+10", "(a+5)(b+2)").equal


def test_unparseable_prediction_is_reported():
    assert equivalent(r"\frac{", "5") == equivalent(r"\frac{", "5")
    assert not equivalent(r"\frac{", "5").parsed


@pytest.mark.slow
def test_math500_reference_solutions_grade_correct_through_the_pool():
    from oreal.data.builtin import load_builtin_jsonl
    from oreal.reward import GradingPool, Grader

    problems = load_builtin_jsonl("math500.jsonl")
    assert len(problems) == 500
    with GradingPool(num_workers=2) as pool:
        grader = Grader(pool)
        solutions = grader.grade_batch([p["solution"] for p in problems], [p["answer"] for p in problems])
        boxed = grader.grade_batch(["\\boxed{%s}" % p["answer"] for p in problems], [p["answer"] for p in problems])
    assert [g.reason for g in solutions] == ["correct"] * 500
    assert [g.reason for g in boxed] == ["correct"] * 500
