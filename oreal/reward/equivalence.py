"""Is a predicted answer equivalent to the gold answer?

Order of tests, cheapest first: normalised strings; exact rationals (plain numbers, no
tolerance: 0.333 is not 1/3); then both sides parsed from LaTeX by latex2sympy2_extended and
compared structurally (intervals with their open/closed ends, ordered tuples, unordered sets
and answer lists, matrices, equations up to a constant factor, complex numbers) and
symbolically (``simplify(a - b) == 0``) with floats turned into exact rationals.

This module runs inside the grading pool's worker processes, under a timeout and a memory
cap; text that could make sympy blow up (nested exponents, huge literals) is compared as a
string only. latex2sympy builds sympy objects from a parse tree; no input text reaches
``eval``, ``sympify`` or ``parse_expr`` (the worker also disarms those, see
:func:`oreal.reward.worker.disarm_string_evaluation`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Optional

from oreal.reward.normalize import normalize_answer, strip_simple_lhs

MAX_SYMPY_CHARS = 400


@dataclass(frozen=True)
class Verdict:
    equal: bool
    # False when the prediction could not be interpreted (it still may not be equal).
    parsed: bool = True


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_SLASH = re.compile(r"([+-]?\d+)/(\d+)")
_FRAC = re.compile(r"([+-]?)\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}")
# Something sympy would evaluate into an astronomically large object.
_EXPLOSIVE = re.compile(r"\^\s*\{[^{}]*[\^!]|\^\s*[\d.]+\s*\^|\^\s*\{?\s*\d{4,}|\d{6,}\s*!|!\s*!")
_BASE = re.compile(r"([0-9A-Za-z]+)_\{?(\d+)\}?")
_WORD = re.compile(r"[a-zA-Z]{2,}")
_WORDS_ONLY = re.compile(r"[a-zA-Z\s,.']+")
_COMMAND = re.compile(r"\\(?:begin|end)\{[a-zA-Z*]+\}|\\[a-zA-Z]+")


def as_fraction(s: str) -> Optional[Fraction]:
    """Exact value of a plain number: ``12``, ``-0.25``, ``.5``, ``3/4``, ``\\frac{3}{4}``."""
    if _NUMBER.fullmatch(s):
        return Fraction(s)
    m = _SLASH.fullmatch(s)
    if m and int(m.group(2)) != 0:
        return Fraction(int(m.group(1)), int(m.group(2)))
    m = _FRAC.fullmatch(s)
    if m and int(m.group(3)) != 0:
        value = Fraction(int(m.group(2)), int(m.group(3)))
        return -value if m.group(1) == "-" else value
    return None


def is_text(s: str) -> bool:
    """Words: only letters (and spaces, commas, periods, apostrophes) outside LaTeX commands,
    with a run of two or more letters. Compared as strings, never as products of symbols
    (``Navin`` and ``Nivan`` are different answers), while ``ab+2a`` stays algebra."""
    bare = _COMMAND.sub(" ", s)
    return bool(_WORDS_ONLY.fullmatch(bare) and _WORD.search(bare))


def equivalent(pred: str, gold: str) -> Verdict:
    p, g = normalize_answer(pred), normalize_answer(gold)
    if p == g:
        return Verdict(True)
    if not p:
        return Verdict(False, parsed=False)
    if ("=" in p) != ("=" in g):  # `x = 5` against `5`; two equations are compared as equations
        p, g = strip_simple_lhs(p), strip_simple_lhs(g)
        if p == g:
            return Verdict(True)
    if is_text(p) or is_text(g):
        return Verdict(p.casefold() == g.casefold())
    fp, fg = as_fraction(p), as_fraction(g)
    if fp is not None and fg is not None:
        return Verdict(fp == fg)
    base_p, base_g = _BASE.fullmatch(p), _BASE.fullmatch(g)
    if base_p or base_g:
        return Verdict(_same_based_number(base_p, p, base_g, g))
    if len(p) > MAX_SYMPY_CHARS or _EXPLOSIVE.search(p):
        return Verdict(False, parsed=False)
    if len(g) > MAX_SYMPY_CHARS or _EXPLOSIVE.search(g):
        return Verdict(False)
    gold_expr = to_sympy(g)
    if gold_expr is None:
        return Verdict(False)
    pred_expr = to_sympy(p)
    if pred_expr is None:
        return Verdict(False, parsed=False)
    return Verdict(sympy_equal(pred_expr, gold_expr))


def _same_based_number(mp, p: str, mg, g: str) -> bool:
    """``2516_8`` vs ``2516_{8}``: same digits and base. Digits without a base match the
    gold's digits (the base is implied by the question); a different base never does."""
    digits_p, base_p = (mp.group(1), int(mp.group(2))) if mp else (p, None)
    digits_g, base_g = (mg.group(1), int(mg.group(2))) if mg else (g, None)
    if base_p is not None and base_g is not None and base_p != base_g:
        return False
    return digits_p.upper() == digits_g.upper()


def to_sympy(s: str) -> Any:
    """Parse normalised LaTeX into sympy (None when it does not parse)."""
    import sympy
    from latex2sympy2_extended import latex2sympy

    try:
        expr = latex2sympy(s, normalization_config=None)
    except Exception:  # noqa: BLE001 - any parser failure means "could not interpret"
        return None
    return _exact(expr, sympy)


def _exact(expr: Any, sympy) -> Any:
    """Floats -> exact rationals from their decimal text; the symbol ``i`` -> the imaginary unit."""
    if isinstance(expr, sympy.MatrixBase):
        return expr.applyfunc(lambda e: _exact(e, sympy))
    if not isinstance(expr, sympy.Basic):
        return expr
    floats = {f: sympy.Rational(str(f)) for f in expr.atoms(sympy.Float)}
    if floats:
        expr = expr.xreplace(floats)
    return expr.xreplace({sympy.Symbol("i"): sympy.I})


def sympy_equal(a: Any, b: Any) -> bool:
    import sympy

    if isinstance(a, sympy.MatrixBase) or isinstance(b, sympy.MatrixBase):
        if not (isinstance(a, sympy.MatrixBase) and isinstance(b, sympy.MatrixBase)) or a.shape != b.shape:
            return False
        return all(sympy_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, sympy.FiniteSet) or isinstance(b, sympy.FiniteSet):
        return _unordered_equal(_elements(a, sympy), _elements(b, sympy))
    if isinstance(a, sympy.Union) and isinstance(b, sympy.Union):
        return _unordered_equal(list(a.args), list(b.args))
    if isinstance(a, sympy.Interval) and isinstance(b, sympy.Interval):
        return (a.left_open, a.right_open) == (b.left_open, b.right_open) and sympy_equal(a.start, b.start) and sympy_equal(a.end, b.end)
    if isinstance(a, sympy.Tuple) and isinstance(b, sympy.Tuple):
        return len(a) == len(b) and all(sympy_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, sympy.Eq) and isinstance(b, sympy.Eq):
        return _equations_equal(a, b, sympy)
    if isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr):
        return _expressions_equal(a, b, sympy)
    return a == b


def _elements(x: Any, sympy) -> list:
    return list(x.args) if isinstance(x, sympy.FiniteSet) else [x]


def _unordered_equal(xs: list, ys: list) -> bool:
    if len(xs) != len(ys):
        return False
    remaining = list(ys)
    for x in xs:
        match = next((i for i, y in enumerate(remaining) if sympy_equal(x, y)), None)
        if match is None:
            return False
        remaining.pop(match)
    return True


def _expressions_equal(a, b, sympy) -> bool:
    if a == b:
        return True
    if a.has(sympy.oo, -sympy.oo, sympy.zoo) or b.has(sympy.oo, -sympy.oo, sympy.zoo):
        return False
    diff = sympy.simplify(a - b)
    return diff == 0


def _equations_equal(a, b, sympy) -> bool:
    """Same solution set for linear-style equations: ``l1 - r1`` is a non-zero constant
    multiple of ``l2 - r2`` (so ``y = 2x`` matches ``2x - y = 0``)."""
    u, v = a.lhs - a.rhs, b.lhs - b.rhs
    if _expressions_equal(u, v, sympy):
        return True
    if v == 0:
        return False
    ratio = sympy.simplify(u / v)
    return bool(ratio.is_number and ratio != 0 and ratio.is_finite)
