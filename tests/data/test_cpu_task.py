import re
from fractions import Fraction

from oreal.data import cpu_task
from oreal.reward.checker import check


def test_splits_are_deterministic_and_disjoint():
    a = cpu_task.splits(5, 300, 50, 200)
    b = cpu_task.splits(5, 300, 50, 200)
    assert a == b
    texts = {name: {r["problem"] for r in rows} for name, rows in a.items()}
    assert len(texts["train"]) == 300 and len(texts["heldout"]) == 50 and len(texts["sft"]) == 200
    assert not texts["train"] & texts["heldout"] and not texts["sft"] & texts["heldout"] and not texts["train"] & texts["sft"]
    # growing the training split leaves the held-out split unchanged
    assert cpu_task.splits(5, 600, 50, 0)["heldout"] == a["heldout"]


def test_worked_solutions_are_arithmetically_right_and_graded_correct():
    rows = cpu_task.splits(11, 400, 0, 0)["train"]
    assert {r["level"] for r in rows} == {1, 2, 3, 4}
    for r in rows:
        steps = re.findall(r"(\S+) ([-+*/]) (\S+) = (\S+?)\.(?: |$)", r["solution"])
        assert steps, r["solution"]
        value = Fraction(steps[0][0])
        for a, op, b, c in steps:
            assert Fraction(a) == value
            value = {"+": value + Fraction(b), "-": value - Fraction(b), "*": value * Fraction(b), "/": value / Fraction(b)}[op]
            assert Fraction(c) == value
            assert value >= 0
        assert Fraction(r["answer"]) == value
        assert check(r["solution"], r["answer"]) == ("correct", r["answer"])


def test_answer_only_share_of_the_sft_split():
    rows = cpu_task.splits(3, 0, 0, 2000, sft_answer_only_rate=0.4)["sft"]
    answer_only = [r for r in rows if r["solution"].startswith("The answer is")]
    assert 0.36 < len(answer_only) / len(rows) < 0.44
    assert all(check(r["solution"], r["answer"])[0] == "correct" for r in rows)
    # the other splits never lose their working
    assert not any(r["solution"].startswith("The answer is") for r in cpu_task.splits(3, 300, 50, 0, sft_answer_only_rate=1.0)["train"])
