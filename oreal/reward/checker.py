"""The rule-based check of one (response, gold) pair. Runs inside a grading worker.

Two stages. The first is ours: extraction by the rules of :mod:`oreal.reward.answers`, then
:func:`oreal.reward.equivalence.equivalent` (normalised strings and exact rationals before
sympy). Only when it has no good answer (no answer found, one side unparseable, or kinds it
does not compare) is Math-Verify asked (:mod:`oreal.reward.second_stage`).
"""

from __future__ import annotations

from typing import Optional, Sequence

from oreal.reward.equivalence import Verdict, equivalent
from oreal.reward.extract import DEFAULT_THINKING_MARKERS, Answer, after_thinking, answer_phrase, find_answer
from oreal.reward.extract import box_at, final_box_block, last_box_start
from oreal.reward.second_stage import as_math, second_opinion

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
    """The gold answer: the string itself, or, for a worked solution, its final box block
    (a last box left unclosed runs to the end: gold text is trusted) or "final answer" sentence."""
    start = last_box_start(gold)
    if start >= 0:
        contents = final_box_block(gold, start)[1]
        if contents:
            return ", ".join(c.strip() for c in contents)
        if box_at(gold, start) is None and "{" in gold[start:]:
            return gold[gold.index("{", start) + 1 :].strip()
    phrase = answer_phrase(gold)
    if phrase and phrase[2]:
        return phrase[1]
    return gold


def check(response: str, gold: str, markers: Sequence[str] = DEFAULT_THINKING_MARKERS) -> tuple[str, Optional[str]]:
    """``(reason, extracted answer)`` with reason in correct / incorrect / no_answer / parse_error."""
    answer = find_answer(response, markers)
    if answer is not None and not answer.text.strip():
        answer = None
    gold_text = gold_answer(gold)
    verdict = None
    if answer is not None:
        if len(answer.text) > MAX_ANSWER_CHARS:
            return "parse_error", answer.text[:MAX_LOGGED_CHARS]
        verdict = equivalent(answer.text, gold_text)
        if verdict.equal or verdict.decided:
            return _first_stage_reason(verdict), answer.text.strip()[:MAX_LOGGED_CHARS]
    return _second_stage(response, markers, answer, verdict, gold_text)


def _first_stage_reason(verdict: Verdict) -> str:
    if verdict.equal:
        return "correct"
    return "incorrect" if verdict.parsed else "parse_error"


def _second_stage(response: str, markers: Sequence[str], answer: Optional[Answer], verdict: Optional[Verdict],
                  gold_text: str) -> tuple[str, Optional[str]]:
    """Math-Verify's opinion where ours had none. Its "correct" stands only if our first stage,
    given the answer Math-Verify extracted, agrees, or parses it but compares no such kinds:
    not when it decides otherwise (Math-Verify rounds floats), nor when it cannot read the
    answer at all (Math-Verify reads a malformed ``\\begin{pmatrix} 1 & \\\\ \\end{matrix}`` as 1)."""
    text = as_math(answer.text) if answer is not None and answer.source == "box" else after_thinking(response, markers)
    opinion = second_opinion(text, as_math(gold_text))
    shown = answer.text.strip()[:MAX_LOGGED_CHARS] if answer is not None else None
    if opinion is None:
        return ("no_answer", None) if answer is None else (_first_stage_reason(verdict), shown)
    shown = shown or opinion.extracted[:MAX_LOGGED_CHARS]
    if opinion.equal:
        recheck = equivalent(opinion.extracted, gold_text)
        if recheck.equal or (recheck.parsed and not recheck.decided):
            return "correct", shown
        return ("incorrect" if recheck.parsed else "parse_error"), shown
    return ("incorrect" if opinion.parsed else "parse_error"), shown
