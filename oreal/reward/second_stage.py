"""The second stage: Math-Verify, asked only where our own rules have no good answer.

:func:`oreal.reward.checker.check` calls :func:`second_opinion` when the first stage found
no answer, could not parse one side, or met two kinds of answer it does not compare (an
inequality against an interval, an equation chain against a number). Math-Verify then
extracts and compares with its own parser, inside the same worker process, so the pool's
kill-and-replace timeout and memory cap bound it like everything else; its own signal-based
timeouts are switched off (``parsing_timeout=None``, ``timeout_seconds=None``).

Math-Verify is looser than our first stage in places (it rounds floats to 6 digits, reads
``2516_6`` as ``2516``, ``2:30`` as 2/30, a malformed matrix ``\\begin{pmatrix} 1 & \\\\
\\end{matrix}`` as 1), so a "correct" from it stands only if our first stage, given the answer
Math-Verify extracted, parses it and does not decide otherwise.

What Math-Verify reads: our extracted answer when it came from a box (so the box rules of
:mod:`oreal.reward.answers` stay ours), otherwise the end of the response after the thinking
marker; and our gold answer; an answer is given to it as one math segment (:func:`as_math`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Optional

# Only the end of a long unboxed response is searched (final answers are at the end).
MAX_RESPONSE_CHARS = 4000
# `%` starts a LaTeX comment; in an answer it means percent.
_UNESCAPED_PERCENT = re.compile(r"(?<!\\)%")


@dataclass(frozen=True)
class Opinion:
    """Math-Verify's verdict, what it extracted from the response, and whether that parsed."""

    equal: bool
    extracted: str
    parsed: bool


def as_math(answer: str) -> str:
    """An answer as one inline math segment Math-Verify reads as a whole: its own math
    delimiters and line breaks removed, ``%`` escaped (it would start a LaTeX comment). Not a
    box: Math-Verify cannot parse ``\\boxed{28\\%}``, while it reads ``$28\\%$``."""
    bare = answer
    for delimiter in ("\\$", "$", "\\(", "\\)", "\\[", "\\]"):
        bare = bare.replace(delimiter, " ")
    return "$" + _UNESCAPED_PERCENT.sub(r"\\%", " ".join(bare.split())) + "$"


def quiet() -> None:
    """Math-Verify warns once that its timeouts are off (the pool provides them) and logs
    every parse failure; neither belongs in a training log."""
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)


def second_opinion(response: str, gold: str) -> Optional[Opinion]:
    """Math-Verify's verdict on ``response`` (text to extract from) against ``gold`` (one
    math segment); None when it extracts nothing from the response."""
    from math_verify import parse, verify

    quiet()
    pred = parse(response[-MAX_RESPONSE_CHARS:], parsing_timeout=None)
    if not pred:
        return None
    extracted = next((p for p in reversed(pred) if isinstance(p, str)), str(pred[0]))
    parsed = any(not isinstance(p, str) for p in pred)
    golds = parse(gold, parsing_timeout=None)
    equal = bool(golds) and bool(verify(golds, pred, timeout_seconds=None))
    return Opinion(equal, extracted, parsed)
