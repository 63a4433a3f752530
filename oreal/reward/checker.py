"""The rule-based check of one (response, gold) pair. Runs inside a grading worker."""

from __future__ import annotations

from typing import Optional, Sequence

from oreal.reward.equivalence import equivalent
from oreal.reward.extract import DEFAULT_THINKING_MARKERS, extract_answer, last_boxed

# Every verdict has exactly one of these reasons (logged as counts per step).
REASONS = (
    "correct", "incorrect", "no_answer", "truncated", "timeout", "parse_error",
    "judge_correct", "judge_incorrect", "judge_error",
)
CORRECT_REASONS = frozenset({"correct", "judge_correct"})
# No real final answer is this long; longer ones are not parsed.
MAX_ANSWER_CHARS = 2000
MAX_LOGGED_CHARS = 300


def gold_answer(gold: str) -> str:
    """The gold answer: the string itself, or its last box if it is a worked solution."""
    boxed = last_boxed(gold) if "\\boxed" in gold or "\\fbox" in gold else None
    return boxed if boxed is not None else gold


def check(response: str, gold: str, markers: Sequence[str] = DEFAULT_THINKING_MARKERS) -> tuple[str, Optional[str]]:
    """``(reason, extracted answer)`` with reason in correct / incorrect / no_answer / parse_error."""
    pred = extract_answer(response, markers)
    if pred is None or not pred.strip():
        return "no_answer", None
    shown = pred[:MAX_LOGGED_CHARS]
    if len(pred) > MAX_ANSWER_CHARS:
        return "parse_error", shown
    verdict = equivalent(pred, gold_answer(gold))
    if verdict.equal:
        return "correct", shown
    return ("incorrect" if verdict.parsed else "parse_error"), shown
