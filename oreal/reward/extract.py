"""Finding the final answer in a model response.

All functions here are linear-time scans (no backtracking regex over the whole response),
so a 1 MB response or 10,000 nested braces costs milliseconds.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

BOX_COMMANDS = ("\\boxed", "\\fbox")
DEFAULT_THINKING_MARKERS = ("</think>", "**Final Answer**", "<conclude>")

# "The (final) answer is X", "Answer: X" -- applied to the last few lines only.
_ANSWER_IS = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:)\s*(?P<ans>[^\n]{1,200})", re.IGNORECASE)


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


def last_boxed(text: str) -> Optional[str]:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (balanced braces), or of
    ``\\boxed 5`` (space form, up to the next space or ``$``). None if there is none."""
    best = -1
    for cmd in BOX_COMMANDS:
        pos = text.rfind(cmd)
        while pos >= 0:
            after = pos + len(cmd)
            # \boxed must not be the prefix of a longer command name (e.g. \boxedx)
            if after >= len(text) or not text[after].isalpha():
                best = max(best, pos)
                break
            pos = text.rfind(cmd, 0, pos)
    if best < 0:
        return None
    cmd = next(c for c in BOX_COMMANDS if text.startswith(c, best))
    rest_start = best + len(cmd)
    i = rest_start
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] == "{":
        return braced_group(text, i)
    if i > rest_start and i < len(text):  # "\boxed 5"
        end = i
        while end < len(text) and text[end] not in " $\n":
            end += 1
        return text[i:end] or None
    return None


def _answer_is_fallback(text: str) -> Optional[str]:
    tail = text[-2000:]
    matches = list(_ANSWER_IS.finditer(tail))
    if not matches:
        return None
    ans = matches[-1].group("ans").strip()
    # "$\frac12$." -> "\frac12"
    ans = ans.rstrip(" .")
    if ans.startswith("$") and ans.endswith("$") and len(ans) > 1:
        ans = ans.strip("$")
    elif ans.startswith("\\(") and ans.endswith("\\)"):
        ans = ans[2:-2]
    return ans.strip() or None


def extract_answer(text: str, markers: Sequence[str] = DEFAULT_THINKING_MARKERS) -> Optional[str]:
    """The answer to grade: the last box after the thinking marker, else an
    "answer is ..." phrase, else None."""
    graded = after_thinking(text, markers)
    boxed = last_boxed(graded)
    if boxed is not None:
        return boxed.strip()
    return _answer_is_fallback(graded)
