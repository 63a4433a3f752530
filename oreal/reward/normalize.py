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
_UNWRAP = (
    "\\textnormal", "\\textsf", "\\texttt", "\\text", "\\textbf", "\\textit", "\\textrm", "\\mbox", "\\mathrm", "\\mathbf",
    "\\mathit", "\\mathsf", "\\boxed", "\\fbox",
)
_DROP = (
    "\\displaystyle", "\\textstyle", "\\left.", "\\right.", "\\left", "\\right", "\\bigl", "\\bigr", "\\Bigl", "\\Bigr",
    "\\big", "\\Big", "\\,", "\\;", "\\:", "\\quad", "\\qquad", "\\ ", "~",
)
_SAME = {"\\dfrac": "\\frac", "\\tfrac": "\\frac", "\\dbinom": "\\binom", "\\tbinom": "\\binom",
         "\\varnothing": "\\emptyset", "\\lbrace": "\\{", "\\rbrace": "\\}", "{,}": ",",
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
_CHOICE = re.compile(r"^\(([A-Ea-e])\)$")
# \frac12, \frac1{19}, \frac{9}2, \sqrt2 -> braced arguments
_FRAC_DIGITS = re.compile(r"\\frac\s*(\d)\s*(\d)")
_FRAC_FIRST = re.compile(r"\\frac\s*(\d)\s*\{")
_FRAC_SECOND = re.compile(r"\\frac\s*(\{[^{}]*\})\s*(\d)")
_SQRT_DIGIT = re.compile(r"\\sqrt\s*(\d)")
_COMMAND_END = re.compile(r"\\[a-zA-Z]+$")
_SUBSCRIPT_END = re.compile(r"_(?:[0-9a-zA-Z]|\{[^{}]*\})$")
_BACKSLASH_RUN = re.compile(r"\\+")
_DOUBLED_COMMAND = re.compile(r"\\\\[a-zA-Z]")
_TRIG_DEGREES = re.compile(
    r"(\\(?:sin|cos|tan|cot|sec|csc)(?:\^\s*\{?\d\}?)?)\s*\(?\s*(-?\d+(?:\.\d+)?)\s*(?:\^\s*\{?\s*\\circ\s*\}?|°|\\degree)\s*\)?"
)
# `>=`, `\ge`, `\geqslant` -> `\geq`; `!=`, `\ne` -> `\neq`; `\lt`, `\gt` -> `<`, `>`
_RELATIONS = (
    (re.compile(r">=|\\geqslant|\\ge(?![a-zA-Z])"), r"\\geq "), (re.compile(r"<=|\\leqslant|\\le(?![a-zA-Z])"), r"\\leq "),
    (re.compile(r"!=|\\ne(?![a-zA-Z])"), r"\\neq "), (re.compile(r"\\lt(?![a-zA-Z])"), "<"), (re.compile(r"\\gt(?![a-zA-Z])"), ">"),
)
# `{,}` and `,\!` (a comma whose following space is cancelled) separate thousands
_BRACED_COMMA = re.compile(r"\s*\{\s*,\s*\}\s*|,\s*\\!\s*")
_PERCENT_WORD = re.compile(r"(?<=[\d}.])\s*(?:percentage|percent|pct)(?![a-zA-Z])", re.IGNORECASE)
# the words `and` / `or` (also `, and`) between list elements become commas
_CONNECTIVE = re.compile(r"\s*,?\s*(?<![A-Za-z\\])(?:and|or)(?![a-z])\s*,?\s*")
_MIXED_NUMBER = re.compile(r"^(-?\d+)\s+(\d+)\s*/\s*(\d+)$")
# `2^6 3^5`: a space after a bare exponent separates two factors
_EXPONENT_FACTOR = re.compile(r"(\^\s*\d+)\s+(?=\d)")
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


def undouble_backslashes(s: str) -> str:
    """``\\\\frac{1}{2}`` -> ``\\frac{1}{2}`` when every backslash of ``s`` is doubled (text that
    was escaped twice on its way here). A real LaTeX answer always has a single backslash
    somewhere (a command), so ``1\\\\2`` inside a matrix is left alone."""
    runs = _BACKSLASH_RUN.findall(s)
    if not runs or any(len(r) % 2 for r in runs) or not _DOUBLED_COMMAND.search(s):
        return s
    return _BACKSLASH_RUN.sub(lambda m: m.group(0)[: len(m.group(0)) // 2], s)


def _trig_degrees(s: str) -> str:
    """``\\sin 30^\\circ`` -> ``\\sin(\\frac{30\\pi}{180})``: a degree sign inside a trigonometric
    argument changes the value, so it is converted there instead of dropped."""
    return _TRIG_DEGREES.sub(lambda m: f"{m.group(1)}(\\frac{{{m.group(2)}\\pi}}{{180}})", s)


def _rewrite(s: str) -> str:
    """The pure rewrites, before spaces are dropped (they still separate words and numbers)."""
    s = unwrap_commands(s)
    for old, new in _SAME.items():
        s = s.replace(old, new)
    s = _BRACED_COMMA.sub(",", s).replace("\\!", "")
    for pattern, new in _RELATIONS:
        s = pattern.sub(new, s)
    for token in _DROP:
        s = s.replace(token, " ")
    s = _DEGREES.sub("", _trig_degrees(s))
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = _PERCENT_WORD.sub("", s)
    s = s.strip().rstrip(".").strip()
    s = _UNIT_TAIL.sub("", s).strip()
    s = _SIMPLE_MEMBERSHIP.sub("", s)
    s = _CONNECTIVE.sub(",", s).strip(",")
    s = _MIXED_NUMBER.sub(r"\1\\frac{\2}{\3}", s)
    s = _EXPONENT_FACTOR.sub(r"\1\\cdot ", s)
    s = _FRAC_DIGITS.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_FIRST.sub(r"\\frac{\1}{", s)
    s = _FRAC_SECOND.sub(r"\\frac\1{\2}", s)
    return _SQRT_DIGIT.sub(r"\\sqrt{\1}", s)


def normalize_answer(answer: str) -> str:
    """Canonical string form of an answer (both sides of every comparison go through this)."""
    s = undouble_backslashes(answer)
    s = _strip_math_delimiters(s.replace("\n", " ")).replace("\\\\", _LINE_BREAK)
    s = _rewrite(s)
    # thousands separators are commas with no space after them: `32, 349` is a list of two
    thousands = bool(_THOUSANDS.fullmatch(s))
    s = _drop_spaces(s)
    if thousands:
        s = s.replace(",", "")
    choice = _CHOICE.match(s)
    if choice:
        s = choice.group(1).upper()
    return s.replace(_LINE_BREAK, "\\\\")
