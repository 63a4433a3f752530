import pytest

from oreal.reward.checker import check, gold_answer
from oreal.reward.extract import after_thinking, extract_answer, last_boxed


@pytest.mark.parametrize("text,expected", [
    (r"so \boxed{5}.", "5"),
    (r"\boxed{1} then \boxed{2}", "2"),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"\fbox{7}", "7"),
    (r"\boxed{1} and finally \fbox{x+1}", "x+1"),
    (r"\boxed{\{1,2\}}", r"\{1,2\}"),
    (r"\boxed{\begin{pmatrix} 1 \\ 2 \end{pmatrix}}", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}"),
    (r"$\boxed 5$", "5"),
    (r"\boxed{unclosed", None),
    ("no box here", None),
    (r"\boxedx{3}", None),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_after_thinking_uses_the_last_marker():
    text = r"<think>maybe \boxed{1}</think> so **Final Answer** \boxed{2}"
    assert after_thinking(text) == r" \boxed{2}"
    assert after_thinking("plain") == "plain"
    assert extract_answer(r"<think>\boxed{1}</think> the answer is 3") == "3"


@pytest.mark.parametrize("text,expected", [
    ("Thus, the final answer is $\\frac{1}{2}$.", r"\frac{1}{2}"),
    ("The answer is 42.", "42"),
    ("Answer: 7", "7"),
    ("nothing", None),
])
def test_answer_is_fallback(text, expected):
    assert extract_answer(text) == expected


def test_gold_may_be_a_worked_solution():
    assert gold_answer(r"We get $\boxed{12}$.") == "12"
    assert gold_answer("12") == "12"


def test_check_reasons():
    assert check(r"\boxed{4}", "4") == ("correct", "4")
    assert check(r"\boxed{5}", "4") == ("incorrect", "5")
    assert check("I give up", "4") == ("no_answer", None)
    assert check(r"\boxed{" + "1" * 5000 + "}", "4")[0] == "parse_error"
