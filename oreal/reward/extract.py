"""Finding the final answer in a model response (the rules: :mod:`oreal.reward.answers`).

All functions here are linear-time scans (no backtracking regex over the whole response),
so a 1 MB response or 10,000 nested braces costs milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

BOX_COMMANDS = ("\\boxed", "\\fbox")
DEFAULT_THINKING_MARKERS = ("</think>", "**Final Answer**", "<conclude>")

# "The (final) answer is X", "Answer: X" -- searched in the last few thousand characters.
_ANSWER_IS = re.compile(r"(?P<final>final answer|the answer|answer)\s*(?:is|:)\s*", re.IGNORECASE)
_PHRASE_TAIL_CHARS = 3000
_MAX_PHRASE_CHARS = 300
_HOPE = re.compile(r"\s*I hope it is correct.*$", re.IGNORECASE | re.DOTALL)
_COPULA = re.compile(r"\s(?:is|are|was|equals)\s", re.IGNORECASE)
_MATH_SEGMENT = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
# Text between two boxes of one answer is at most this long (see answers.py, **Boxes**).
MAX_GLUE_CHARS = 80
_GLUE_NOISE = re.compile(
    r"\\+(?:text|textnormal|textrm|textbf|mbox|mathrm)\s*\{|\\+(?:quad|qquad|[,;:! ]|\(|\)|\[|\])|\\\\|[${}&~\n\t]"
)
_GLUE_LABEL = re.compile(r"(?:[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?'*|\([A-Za-z, ]+\))\s*=\s*$")
# `for part (a)`, `(ii)`: the name of a part of the question, between the parts' answers
_GLUE_PART = re.compile(r"(?:\bfor\s+)?\b(?:part|case|question)\s*\(?[a-z0-9]{1,3}\)?|\([a-z]{1,3}\)|\(\d\)", re.IGNORECASE)
_GLUE_TOKEN = re.compile(r",|;|[A-Za-z]+|\S")
_CONNECTIVES = frozenset({",", ";", "and", "or"})


@dataclass(frozen=True)
class Answer:
    """An extracted answer and where it came from: ``box`` or ``phrase``."""

    text: str
    source: str


def after_thinking(text: str, markers: Sequence[str] = DEFAULT_THINKING_MARKERS) -> str:
    """The text after the last thinking-finished marker (the whole text if none occurs)."""
    cut = -1
    for marker in markers:
        pos = text.rfind(marker)
        if pos >= 0:
            cut = max(cut, pos + len(marker))
    return text if cut < 0 else text[cut:]


def braced_group(text: str, open_pos: int) -> Optional[str]:
    """Content of the balanced ``{...}`` group opening at ``text[open_pos]``; None if unclosed."""
    depth, i, n = 0, open_pos, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2  # `\{`, `\}` and `\\` are escapes, not group delimiters
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[open_pos + 1 : i]
        i += 1
    return None


def last_box_start(text: str, before: Optional[int] = None) -> int:
    """Start of the last ``\\boxed``/``\\fbox`` command (not the prefix of a longer command
    name such as ``\\boxedx``) that begins before ``before``; -1 if none."""
    best = -1
    for cmd in BOX_COMMANDS:
        pos = text.rfind(cmd, 0, len(text) if before is None else before)
        while pos >= 0:
            after = pos + len(cmd)
            if after >= len(text) or not text[after].isalpha():
                best = max(best, pos)
                break
            pos = text.rfind(cmd, 0, pos)
    return best


def box_at(text: str, pos: int) -> Optional[tuple[int, str]]:
    """``(end, content)`` of the box whose command starts at ``pos``: ``\\boxed{...}`` with
    balanced braces, or ``\\boxed 5`` (up to the next space or ``$``). None if unclosed."""
    cmd = next(c for c in BOX_COMMANDS if text.startswith(c, pos))
    start = i = pos + len(cmd)
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] == "{":
        content = braced_group(text, i)
        return None if content is None else (i + len(content) + 2, content)
    if i > start and i < len(text):  # "\boxed 5"
        end = i
        while end < len(text) and text[end] not in " $\n":
            end += 1
        return (end, text[i:end]) if end > i else None
    return None


def last_boxed(text: str) -> Optional[str]:
    """Content of the last box (see :func:`box_at`), or None if there is none."""
    start = last_box_start(text)
    found = box_at(text, start) if start >= 0 else None
    return found[1] if found else None


def is_list_glue(glue: str) -> bool:
    """True when ``glue``, the text between two boxes, only joins them into a list."""
    if len(glue) > MAX_GLUE_CHARS:
        return False
    bare = _GLUE_LABEL.sub(" ", _GLUE_PART.sub(" ", _GLUE_NOISE.sub(" ", glue)).rstrip())
    tokens = _GLUE_TOKEN.findall(bare)
    if not tokens:
        return True
    if len(tokens) > 1 and tokens[0].isalpha() and tokens[0].lower() not in _CONNECTIVES:
        tokens = tokens[1:]  # one word (a unit, a noun) may come before the connective
    return all(t.lower() in _CONNECTIVES for t in tokens)


def final_box_block(text: str, last_start: int) -> tuple[int, list[str]]:
    """``(end, contents)``: the box starting at ``last_start`` and the boxes joined to it by
    list glue before it, in reading order; ``contents`` is empty if that box is unclosed."""
    found = box_at(text, last_start)
    if found is None:
        return -1, []
    end, contents, start = found[0], [found[1]], last_start
    while True:
        prev = last_box_start(text, start)
        box = box_at(text, prev) if prev >= 0 else None
        if box is None or box[0] > start or not is_list_glue(text[box[0] : start]):
            break
        contents.append(box[1])
        start = prev
    return end, contents[::-1]


def _sentence_end(text: str, i: int) -> int:
    """Where the sentence starting at ``i`` ends: a newline, or ``.``/``!``/``?`` before a
    space or the end, outside math segments; at most ``_MAX_PHRASE_CHARS`` on."""
    n = min(len(text), i + _MAX_PHRASE_CHARS)
    while i < n:
        for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if text.startswith(left, i):
                close = text.find(right, i + len(left))
                i = n if close < 0 else close + len(right)
                break
        else:
            c = text[i]
            if c == "\n" or text.startswith("<|", i):
                return i
            if c in ".!?" and (i + 1 == len(text) or text[i + 1].isspace()):
                return i
            i += 1
    return min(i, n)


def phrase_value(phrase: str) -> str:
    """The answer inside an answer sentence (rule **Phrase** in :mod:`oreal.reward.answers`)."""
    phrase = _HOPE.sub("", phrase).strip().rstrip(".").strip()
    segments = list(_MATH_SEGMENT.finditer(phrase))
    if segments:
        outside = _MATH_SEGMENT.sub(" ", phrase)
        if is_list_glue(outside):
            return ", ".join(next(g for g in m.groups() if g is not None).strip() for m in segments)
    copulas = list(_COPULA.finditer(_MATH_SEGMENT.sub(lambda m: "_" * len(m.group(0)), phrase)))
    if copulas:
        return phrase_value(phrase[copulas[-1].end() :])
    return phrase.replace("$", "").replace("\\(", "").replace("\\)", "").strip()


def answer_phrase(text: str) -> Optional[tuple[int, str, bool]]:
    """``(start, answer, is_final)`` for the last "answer is ..." sentence, else None;
    ``is_final`` when it says "final answer"."""
    offset = max(0, len(text) - _PHRASE_TAIL_CHARS)
    tail = text[offset:]
    match = None
    for match in _ANSWER_IS.finditer(tail):
        pass
    if match is None:
        return None
    value = phrase_value(tail[match.end() : _sentence_end(tail, match.end())])
    if not value:
        return None
    return offset + match.start(), value, match.group("final").lower() == "final answer"


def find_answer(text: str, markers: Sequence[str] = DEFAULT_THINKING_MARKERS) -> Optional[Answer]:
    """The answer to grade: the final box block after the thinking marker, unless a "final
    answer is X" sentence follows it; else an "answer is X" sentence; else None."""
    graded = after_thinking(text, markers)
    phrase = answer_phrase(graded)
    start = last_box_start(graded)
    if start >= 0:
        end, contents = final_box_block(graded, start)
        if contents and not (phrase and phrase[2] and phrase[0] >= end):
            return Answer(", ".join(c.strip() for c in contents), "box")
    return Answer(phrase[1], "phrase") if phrase else None


def extract_answer(text: str, markers: Sequence[str] = DEFAULT_THINKING_MARKERS) -> Optional[str]:
    """The text of :func:`find_answer`, or None."""
    answer = find_answer(text, markers)
    return answer.text.strip() if answer else None
