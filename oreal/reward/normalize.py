"""Answer normalisation, applied identically to the gold answer and the prediction.

The reference checker normalised only the prediction, so gold answers such as ``90^\\circ``,
``\\text{Evelyn}`` or ``x=5`` never matched. Every rule here is a pure string rewrite that
keeps the mathematical value: presentation (spacing, sizing, ``\\dfrac``), decoration
(degrees, dollars, percent signs, units, ``x =``) and thousands separators go; nothing that
changes a number does (0.5 and 50% stay different numbers: the percent sign is dropped, the
value is not rescaled).
"""

from __future__ import annotations

import re

from oreal.reward.extract import braced_group

# Commands whose argument is kept and the wrapper dropped.
_UNWRAP = ("\\text", "\\textbf", "\\textit", "\\textrm", "\\mbox", "\\mathrm", "\\mathbf", "\\mathit", "\\boxed", "\\fbox")
_DROP = (
    "\\displaystyle", "\\textstyle", "\\left.", "\\right.", "\\left", "\\right", "\\bigl", "\\bigr", "\\Bigl", "\\Bigr",
    "\\big", "\\Big", "\\!", "\\,", "\\;", "\\:", "\\quad", "\\qquad", "\\ ", "~",
)
_SAME = {"\\dfrac": "\\frac", "\\tfrac": "\\frac", "\\dbinom": "\\binom", "\\tbinom": "\\binom", "\\le ": "\\leq ",
         "\\ge ": "\\geq ", "\\varnothing": "\\emptyset", "\\lbrace": "\\{", "\\rbrace": "\\}", "{,}": ",",
         "{bmatrix}": "{pmatrix}", "{Bmatrix}": "{pmatrix}", "{matrix}": "{pmatrix}", "{smallmatrix}": "{pmatrix}"}
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree")
_UNITS = (
    "square units", "sq units", "units", "unit", "square feet", "square inches", "square meters", "square centimeters",
    "sq ft", "feet", "foot", "ft", "inches", "inch", "in", "cm", "mm", "km", "meters", "meter", "m", "miles", "mile",
    "mph", "yards", "yard", "hours", "hour", "hrs", "minutes", "minute", "min", "seconds", "second", "sec", "s", "days",
    "day", "weeks", "years", "degrees", "degree", "dollars", "dollar", "cents", "pounds", "lbs", "kg", "grams", "g",
    "liters", "ml", "gallons", "people", "students", "ways", "cubic feet", "cubic units", "cubic inches",
)
_UNIT_TAIL = re.compile(r"(?<=[0-9}).\s])\s*(?:" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True)) + r")(?:\s*\^\s*\{?[23]\}?)?\s*$")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SIMPLE_MEMBERSHIP = re.compile(r"^\s*[a-zA-Z](?:_\{?[a-zA-Z0-9]+\}?)?\s*\\in\s*")
# `x = 5`, `y_1 = 2`: a single variable on the left
SIMPLE_LHS = re.compile(r"^[a-zA-Z](?:_\{?[a-zA-Z0-9]+\}?)?=")
_CHOICE = re.compile(r"^\(([A-Ea-e])\)$")
# \frac12, \frac1{19}, \frac{9}2, \sqrt2 -> braced arguments
_FRAC_DIGITS = re.compile(r"\\frac\s*(\d)\s*(\d)")
_FRAC_FIRST = re.compile(r"\\frac\s*(\d)\s*\{")
_FRAC_SECOND = re.compile(r"\\frac\s*(\{[^{}]*\})\s*(\d)")
_SQRT_DIGIT = re.compile(r"\\sqrt\s*(\d)")
_COMMAND_END = re.compile(r"\\[a-zA-Z]+$")
_SUBSCRIPT_END = re.compile(r"_(?:[0-9a-zA-Z]|\{[^{}]*\})$")
_LINE_BREAK = "\x00"  # stands in for `\\` while spacing commands such as `\ ` are dropped


def unwrap_commands(s: str, commands=_UNWRAP) -> str:
    """``\\text{abc}`` -> ``abc`` for each command, with balanced braces; linear per command."""
    for cmd in commands:
        out, i = [], 0
        while True:
            j = s.find(cmd + "{", i)
            if j < 0:
                out.append(s[i:])
                break
            content = braced_group(s, j + len(cmd))
            if content is None:
                out.append(s[i:])
                break
            out.append(s[i:j])
            out.append(content)
            i = j + len(cmd) + len(content) + 2
        s = "".join(out)
    return s


def _drop_spaces(s: str) -> str:
    """Drop whitespace, except one space before a letter or digit where it separates a
    command (``\\cot x``), a letter (``a b``) or a subscript (``\\log_2 8``) from it.
    Between two digits it goes: ``8 000`` is 8000."""
    parts = s.split()
    out = parts[0] if parts else ""
    for part in parts[1:]:
        tail = out[-24:]
        keep = part[0].isalnum() and (tail[-1].isalpha() or _COMMAND_END.search(tail) or _SUBSCRIPT_END.search(tail))
        out += (" " if keep else "") + part
    return out


def _strip_math_delimiters(s: str) -> str:
    s = s.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            s = s[len(left) : len(s) - len(right)].strip()
    return s


def normalize_answer(answer: str) -> str:
    """Canonical string form of an answer (both sides of every comparison go through this)."""
    s = _strip_math_delimiters(answer.replace("\n", " ")).replace("\\\\", _LINE_BREAK)
    s = unwrap_commands(s)
    for old, new in _SAME.items():
        s = s.replace(old, new)
    for token in _DROP:
        s = s.replace(token, " ")
    s = _DEGREES.sub("", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = s.strip().rstrip(".").strip()
    s = _UNIT_TAIL.sub("", s).strip()
    s = _SIMPLE_MEMBERSHIP.sub("", s)
    s = _FRAC_DIGITS.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_FIRST.sub(r"\\frac{\1}{", s)
    s = _FRAC_SECOND.sub(r"\\frac\1{\2}", s)
    s = _SQRT_DIGIT.sub(r"\\sqrt{\1}", s)
    s = _drop_spaces(s)
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    choice = _CHOICE.match(s)
    if choice:
        s = choice.group(1).upper()
    return s.replace(_LINE_BREAK, "\\\\")


def strip_simple_lhs(s: str) -> str:
    """``x=5`` -> ``5`` for a normalised answer with exactly one ``=`` and a bare variable on
    the left. Applied only when the other side is not itself an equation."""
    return SIMPLE_LHS.sub("", s) if s.count("=") == 1 else s
