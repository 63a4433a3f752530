"""Is a predicted answer equivalent to the gold answer?

Order of tests, cheapest first: normalised strings; the answer's form (lists, labels,
chains, ratios, choices: the rules are stated in :mod:`oreal.reward.answers`); exact
rationals (plain numbers, no tolerance: 0.333 is not 1/3; repeating decimals, mixed numbers);
then both sides parsed from LaTeX by latex2sympy2_extended and compared structurally
(identical expressions first, before any simplification; intervals with their open/closed
ends, ordered tuples, unordered sets, matrices, equations up to a constant factor,
inequalities up to a positive factor, a gold inequality as its solution set, complex
numbers) and symbolically (``simplify(a - b) == 0``) with floats turned into exact
rationals. Nothing that is or contains ``zoo`` or ``nan`` once evaluated equals anything
(text identical after normalisation matched before parsing).

Every comparison also says whether it *decided*: a verdict that is not decided (one side
does not parse, or the two are of kinds compared nowhere here, such as an inequality against
an interval) may be handed to the second stage (:mod:`oreal.reward.second_stage`).

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

from oreal.reward.answers import (
    Element, labelled_tuples, labels_match, ratio_parts, split_label, split_list, tuple_parts,
)
from oreal.reward.normalize import normalize_answer

MAX_SYMPY_CHARS = 400
# Longer lists are compared as whole sets by sympy instead of element by element.
MAX_LIST_ELEMENTS = 64
# A decimal with this many significant digits is a double printed in full (see _correctly_rounded).
MIN_FULL_PRECISION_DIGITS = 15
_FULL_PRECISION = re.compile(r"[+-]?\d*\.\d{14,}")
# A word of three or more letters next to other content: prose, which latex2sympy would read
# as a product of one-letter symbols.
_PROSE = re.compile(r"[A-Za-z]{3,}")
_CHOICE_LETTER = re.compile(r"[A-Ea-e]")
# `(B) 12`: a choice letter and then its value, in which no other choice is named
_CHOICE_WITH_VALUE = re.compile(r"\(([A-Ea-e])\)(?!.*\([A-Ea-e]\))(?=.)")
_MAX_DEDUPE = 8
_RELATION = re.compile(r"[<>]|\\[lg]eq|\\neq")


@dataclass(frozen=True)
class Verdict:
    equal: bool
    # False when the prediction could not be interpreted (it still may not be equal).
    parsed: bool = True
    # False when the rules here have no good answer, so a second opinion may be asked.
    decided: bool = True


EQUAL, UNEQUAL = Verdict(True), Verdict(False)
UNDECIDED, UNPARSED = Verdict(False, decided=False), Verdict(False, parsed=False, decided=False)

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_SLASH = re.compile(r"([+-]?\d+)/(\d+)")
_REPEATING = re.compile(r"([+-]?)(\d*)\.(\d*)\\overline\{(\d{1,12})\}")
_FRAC = re.compile(r"([+-]?)(\d*)\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}")
# Something sympy would evaluate into an astronomically large object.
_EXPLOSIVE = re.compile(r"\^\s*\{[^{}]*[\^!]|\^\s*[\d.]+\s*\^|\^\s*\{?\s*\d{4,}|\d{6,}\s*!|!\s*!")
_BASE = re.compile(r"([0-9A-Za-z]+)_\{?(\d+)\}?")
_WORD = re.compile(r"[a-zA-Z]{2,}")
_WORDS_ONLY = re.compile(r"[a-zA-Z\s,.']+")
_COMMAND = re.compile(r"\\(?:begin|end)\{[a-zA-Z*]+\}|\\[a-zA-Z]+")


def as_fraction(s: str) -> Optional[Fraction]:
    """Exact value of a plain number: ``12``, ``-0.25``, ``.5``, ``3/4``, ``\\frac{3}{4}``,
    the mixed number ``1\\frac{1}{2}`` (3/2, as latex2sympy reads it too) and the repeating
    decimal ``0.1\\overline{6}`` (1/6)."""
    if _NUMBER.fullmatch(s):
        return Fraction(s)
    m = _REPEATING.fullmatch(s)
    if m:
        return _repeating_value(m)
    m = _SLASH.fullmatch(s)
    if m and int(m.group(2)) != 0:
        return Fraction(int(m.group(1)), int(m.group(2)))
    m = _FRAC.fullmatch(s)
    if m and int(m.group(4)) != 0:
        value = Fraction(int(m.group(3)), int(m.group(4))) + int(m.group(2) or 0)
        return -value if m.group(1) == "-" else value
    return None


def _repeating_value(m) -> Fraction:
    """``-1.2\\overline{34}`` = -(1.2 + 0.0343434...): the repeating block over 10^k - 1."""
    whole, fixed, block = m.group(2) or "0", m.group(3) or "", m.group(4)
    value = Fraction(int(whole)) + Fraction(int(fixed or "0"), 10 ** len(fixed))
    value += Fraction(int(block), (10 ** len(block) - 1) * 10 ** len(fixed))
    return -value if m.group(1) == "-" else value


def is_text(s: str) -> bool:
    """Words: only letters (and spaces, commas, periods, apostrophes) outside LaTeX commands,
    with a run of two or more letters. Compared as strings, never as products of symbols
    (``Navin`` and ``Nivan`` are different answers), while ``ab+2a`` stays algebra."""
    bare = _COMMAND.sub(" ", s)
    return bool(_WORDS_ONLY.fullmatch(bare) and _WORD.search(bare))


def equivalent(pred: str, gold: str) -> Verdict:
    p, g = normalize_answer(pred), normalize_answer(gold)
    if p == g:
        return EQUAL
    if not p:
        return Verdict(False, parsed=False)
    return compare_answers(p, g)


def _elements(s: str) -> list[Element]:
    """The distinct elements of a normalised answer, with their labels split off."""
    tuples = labelled_tuples(s)
    if tuples is not None:
        return tuples
    seen, out = set(), []
    for part in split_list(s):
        if part not in seen:
            seen.add(part)
            out.append(split_label(part))
    return out


def compare_answers(p: str, g: str) -> Verdict:
    """Two normalised answers, by the list and label rules of :mod:`oreal.reward.answers`."""
    ps, gs = _elements(p), _elements(g)
    if len(ps) != len(gs):  # `15\frac{39}{40}, \frac{639}{40}` is one value given twice
        ps, gs = _distinct_values(ps), _distinct_values(gs)
    if len(ps) == 1 and len(gs) == 1:
        return compare_elements(ps[0], gs[0])
    if len(ps) == 1 or len(gs) == 1:
        parts = tuple_parts((ps if len(ps) == 1 else gs)[0].value)
        if parts and len(parts) == max(len(ps), len(gs)):  # `1, 3` against the pair `(1,3)`: in order
            mine = [Element(v) for v in parts]
            return _ordered(mine, gs) if len(ps) == 1 else _ordered(ps, mine)
    if len(ps) != len(gs):
        return _different_lengths(ps, gs)
    if len(ps) > MAX_LIST_ELEMENTS:
        return _as_sets(ps, gs)
    return _ordered(ps, gs) if _ordered_by_labels(ps, gs) else _unordered(ps, gs, compare_elements)


def _as_sets(ps: list[Element], gs: list[Element]) -> Verdict:
    """Both lists compared as whole sets by sympy."""
    return compare_values("\\{" + _joined(ps, gs) + "\\}", "\\{" + _joined(gs, ps) + "\\}")


def _distinct_values(es: list[Element]) -> list[Element]:
    """``es`` without the elements equal to an earlier one (short lists only)."""
    if len(es) > _MAX_DEDUPE:
        return es
    kept: list[Element] = []
    for e in es:
        if not any(compare_elements(e, k).equal for k in kept):
            kept.append(e)
    return kept


def _different_lengths(ps: list[Element], gs: list[Element]) -> Verdict:
    r"""Lists of different lengths differ, unless an element stands for several values
    (``1 \pm \sqrt{19}``: compared as whole sets) or is a relation (the second stage's)."""
    values = [e.value for e in ps + gs]
    if any(op in v for v in values for op in ("\\pm", "\\mp", "\\cup")):
        return _as_sets(ps, gs)
    if any(_RELATION.search(v) for v in values):
        return UNDECIDED
    return UNEQUAL


def _ordered_by_labels(xs: list[Element], ys: list[Element]) -> bool:
    """One side names its elements with distinct labels, the other names none."""
    def distinct(es):
        return all(e.label for e in es) and len({e.label for e in es}) == len(es)

    def bare(es):
        return not any(e.label for e in es)

    return (distinct(xs) and bare(ys)) or (bare(xs) and distinct(ys))


def _joined(mine: list[Element], other: list[Element]) -> str:
    """The list as one string for sympy, labels dropped when the other side has none."""
    keep_labels = any(e.label for e in other)
    return ",".join(e.whole if keep_labels else e.value for e in mine)


def _ordered(ps: list[Element], gs: list[Element]) -> Verdict:
    verdicts = [compare_elements(p, g) for p, g in zip(ps, gs)]
    if all(v.equal for v in verdicts):
        return EQUAL
    return _combined_failure(verdicts)


def _combined_failure(verdicts: list[Verdict]) -> Verdict:
    if all(v.decided for v in verdicts):
        return UNEQUAL
    return Verdict(False, parsed=all(v.parsed for v in verdicts), decided=False)


def _unordered(xs: list, ys: list, compare) -> Verdict:
    """A one-to-one matching of ``xs`` onto ``ys`` under ``compare`` (an equivalence, so a
    greedy matching finds one when one exists)."""
    if len(xs) != len(ys):
        return UNEQUAL
    remaining, failures = list(ys), []
    for x in xs:
        for i, y in enumerate(remaining):
            verdict = compare(x, y)
            if verdict.equal:
                remaining.pop(i)
                break
            failures.append(verdict)
        else:
            return _combined_failure(failures)
    return EQUAL


def compare_elements(p: Element, g: Element) -> Verdict:
    """Labels dropped unless both sides have one; different labels -> compared as equations."""
    if p.label and g.label:
        if labels_match(p.label, g.label):
            return compare_values(p.value, g.value)
        return compare_values(p.whole, g.whole)
    if (p.label and "=" in g.value) or (g.label and "=" in p.value):
        return compare_values(p.whole, g.whole)  # `y = 2x+3` against the equation `2x-y+3=0`
    return compare_values(p.value, g.value)


def compare_values(p: str, g: str) -> Verdict:
    """Two normalised single values (no list, no label)."""
    if p == g:
        return EQUAL
    rp, rg = ratio_parts(p), ratio_parts(g)
    if rp or rg:
        if rp and rg:
            return _ordered([Element(x) for x in rp], [Element(y) for y in rg]) if len(rp) == len(rg) else UNEQUAL
        return UNDECIDED  # a ratio against a single value: left to the second stage
    choice = _CHOICE_WITH_VALUE.match(p)
    if _CHOICE_LETTER.fullmatch(g) and choice:  # `(B) 12` against the gold choice `B`
        return Verdict(choice.group(1).upper() == g.upper())
    if is_text(p) or is_text(g):
        return Verdict(p.casefold() == g.casefold())
    if _PROSE.search(_COMMAND.sub(" ", p)):
        return UNPARSED  # words and numbers (`Sphere 3 hours ago`), not a product of symbols
    fp, fg = as_fraction(p), as_fraction(g)
    if fp is not None and fg is not None:
        if fp == fg:
            return EQUAL
        return _full_precision_verdict(p, g) or UNEQUAL
    base_p, base_g = _BASE.fullmatch(p), _BASE.fullmatch(g)
    if base_p or base_g:
        return Verdict(_same_based_number(base_p, p, base_g, g))
    if len(p) > MAX_SYMPY_CHARS or _EXPLOSIVE.search(p):
        return Verdict(False, parsed=False)
    if len(g) > MAX_SYMPY_CHARS or _EXPLOSIVE.search(g):
        return UNEQUAL
    return _full_precision_verdict(p, g) or _sympy_verdict(p, g)


def _full_precision_verdict(p: str, g: str) -> Optional[Verdict]:
    """The verdict of :func:`_correctly_rounded` when one side is a long decimal, else None."""
    if not (_FULL_PRECISION.fullmatch(p) or _FULL_PRECISION.fullmatch(g)):
        return None
    rounded = _correctly_rounded(p, g)
    return None if rounded is None else Verdict(rounded)


def _sympy_verdict(p: str, g: str) -> Verdict:
    gold_expr = to_sympy(g)
    pred_expr = to_sympy(p)
    if pred_expr is None:
        return UNPARSED
    if gold_expr is None:
        return UNDECIDED
    try:
        equal = sympy_equal(pred_expr, gold_expr)
    except (MemoryError, RecursionError):
        raise
    except Exception:  # noqa: BLE001 - a sympy failure on a comparison means "no good answer here"
        return UNDECIDED
    return UNDECIDED if equal is None else Verdict(equal)


def _significant_digits(decimal: str) -> int:
    return len(decimal.lstrip("+-").replace(".", "").lstrip("0"))


def _correctly_rounded(p: str, g: str) -> Optional[bool]:
    """A decimal printed at double precision (15+ significant digits, ``0.0833333333333333``)
    against an exact value: equal when it is that value correctly rounded to the digits shown,
    i.e. within half a unit of its last digit. Shorter decimals (``0.3333333``) never are.
    None when the other side has no numeric value."""
    decimal, exact = (p, g) if _FULL_PRECISION.fullmatch(p) else (g, p)
    if _significant_digits(decimal) < MIN_FULL_PRECISION_DIGITS:
        return None
    value = as_fraction(exact)
    if value is None:
        expr = to_sympy(exact)
        if expr is None or not getattr(expr, "is_number", False) or not expr.is_real:
            return None
        value = _to_fraction(expr)
    places = len(decimal.split(".")[1]) if "." in decimal else 0
    return abs(Fraction(decimal) - value) * 2 * 10**places <= 1


def _to_fraction(expr) -> Fraction:
    """A real sympy number to 40 significant digits, exactly as a fraction."""
    return Fraction(str(expr.evalf(40)))


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


def _non_finite(x: Any, sympy) -> bool:
    """``x``, or a part of it once evaluated, is ``zoo`` or ``nan``. latex2sympy leaves
    ``\\tan(\\pi/2)``, ``\\ln 0``, ``\\infty-\\infty`` and ``\\frac{1}{1-1}`` unevaluated, and
    rebuilt they are all zoo or nan (so equal to each other), while ``x = \\cot 0`` evaluates
    to False: every part is checked as it is rebuilt, not only the result."""
    if isinstance(x, sympy.MatrixBase):
        return any(_non_finite(e, sympy) for e in x)
    if not isinstance(x, sympy.Basic):
        return False
    if x.has(sympy.zoo, sympy.nan):
        return True
    try:
        return _rebuilt_defined(x, sympy) is None
    except (MemoryError, RecursionError):
        raise
    except Exception:  # noqa: BLE001 - a node that cannot be rebuilt is judged as written
        return False


def _rebuilt_defined(x: Any, sympy) -> Any:
    """``x`` rebuilt as by :func:`_rebuilt`, or None when a part of it evaluates to zoo or nan."""
    if x is sympy.zoo or x is sympy.nan:
        return None
    if not getattr(x, "args", None):
        return x
    args = []
    for arg in x.args:
        rebuilt = _rebuilt_defined(arg, sympy)
        if rebuilt is None:
            return None
        args.append(rebuilt)
    whole = x.func(*args)
    return None if whole is sympy.zoo or whole is sympy.nan else whole


def _rebuilt(x: Any) -> Any:
    """``x`` with every node rebuilt through its constructor: latex2sympy leaves sums and
    products unevaluated, so ``15+2\\sqrt{33}`` and ``2\\sqrt{33}+15`` only compare equal
    once their arguments are put in sympy's canonical order."""
    if not getattr(x, "args", None):
        return x
    return x.func(*[_rebuilt(a) for a in x.args])


def identical(a: Any, b: Any) -> bool:
    """The same expression, before any simplification."""
    if a == b:
        return True
    try:
        return _rebuilt(a) == _rebuilt(b)
    except Exception:  # noqa: BLE001 - a node that cannot be rebuilt is simply not identical
        return False


def sympy_equal(a: Any, b: Any) -> Optional[bool]:
    """True / False, or None when the two are of kinds not compared here."""
    import sympy

    if _non_finite(a, sympy) or _non_finite(b, sympy):
        return False
    a, b = _evaluated_matrix(a, sympy), _evaluated_matrix(b, sympy)
    if isinstance(a, sympy.MatrixBase) or isinstance(b, sympy.MatrixBase):
        if not (isinstance(a, sympy.MatrixBase) and isinstance(b, sympy.MatrixBase)) or a.shape != b.shape:
            return False
        return _all_equal(list(zip(a, b)))
    if identical(a, b):
        return True
    if isinstance(a, sympy.FiniteSet) or isinstance(b, sympy.FiniteSet):
        return _tristate(_unordered(_set_elements(a, sympy), _set_elements(b, sympy), _as_verdict))
    if isinstance(a, sympy.Union) and isinstance(b, sympy.Union):
        return _tristate(_unordered(list(a.args), list(b.args), _as_verdict))
    if isinstance(a, sympy.Interval) and isinstance(b, sympy.Interval):
        if (a.left_open, a.right_open) != (b.left_open, b.right_open):
            return False
        return _all_equal([(a.start, b.start), (a.end, b.end)])
    if isinstance(a, sympy.Tuple) and isinstance(b, sympy.Tuple):
        return _all_equal(list(zip(a, b))) if len(a) == len(b) else False
    relations = _relations_equal(a, b, sympy)
    if relations is not NotImplemented:
        return relations
    if isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr):
        return _expressions_equal(a, b, sympy)
    kinds = (sympy.Set, sympy.Tuple, sympy.Expr)
    if isinstance(a, kinds) and isinstance(b, kinds):
        return False  # a set or tuple against a number or another kind of set
    return None


def _evaluated_matrix(x: Any, sympy) -> Any:
    """A sum or product of explicit matrices (``A + B``, ``I I``) as the matrix it is."""
    if isinstance(x, sympy.MatrixExpr) and not isinstance(x, sympy.MatrixBase):
        done = x.doit()
        return done.as_explicit() if isinstance(done, sympy.MatrixExpr) and done.is_Matrix is False else done
    return x


def _as_verdict(x: Any, y: Any) -> Verdict:
    equal = sympy_equal(x, y)
    return UNDECIDED if equal is None else Verdict(equal)


def _tristate(verdict: Verdict) -> Optional[bool]:
    return True if verdict.equal else (False if verdict.decided else None)


def _all_equal(pairs: list) -> Optional[bool]:
    results = [sympy_equal(x, y) for x, y in pairs]
    if all(r is True for r in results):
        return True
    return False if all(r is not None for r in results) else None


def _set_elements(x: Any, sympy) -> list:
    return list(x.args) if isinstance(x, sympy.FiniteSet) else [x]


_ONE_SIDED = {"StrictGreaterThan": (1, True), "GreaterThan": (1, False), "StrictLessThan": (-1, True), "LessThan": (-1, False)}


def _relations_equal(a, b, sympy) -> Any:
    """Equations, inequalities and ``\\neq``; NotImplemented when neither side is a relation,
    None when only one is (an inequality against an interval is the second stage's)."""
    rel_a, rel_b = isinstance(a, sympy.core.relational.Relational), isinstance(b, sympy.core.relational.Relational)
    logic = (sympy.And, sympy.Or)
    if not (rel_a or rel_b or isinstance(a, logic) or isinstance(b, logic)):
        return NotImplemented
    if not (rel_a and rel_b):
        return _relation_against_set(a, b, sympy)
    if isinstance(a, sympy.Eq) and isinstance(b, sympy.Eq):
        return _equations_equal(a, b, sympy)
    if isinstance(a, sympy.Ne) and isinstance(b, sympy.Ne):
        return True if _constant_ratio(a.lhs - a.rhs, b.lhs - b.rhs, sympy) not in (None, 0) else None
    sa, sb = _ONE_SIDED.get(type(a).__name__), _ONE_SIDED.get(type(b).__name__)
    if sa is None or sb is None:
        return None
    if sa[1] != sb[1]:  # strict against non-strict
        return False
    u, v = sa[0] * (a.lhs - a.rhs), sb[0] * (b.lhs - b.rhs)
    ratio = _constant_ratio(u, v, sympy)
    return None if ratio is None else bool(ratio > 0)


def _relation_against_set(pred, gold, sympy) -> Optional[bool]:
    """A gold inequality in one unknown (``-793 < a < 10``, ``0 < f(x) < 1``) is the set of its
    solutions, so an interval answers it. The converse is not an answer: a gold interval (the
    question asked for interval notation) is not answered by an inequality. None for anything
    else (the second stage's)."""
    if isinstance(gold, sympy.Set) and not isinstance(pred, sympy.Set):
        return False
    if not isinstance(pred, sympy.Set) or isinstance(gold, sympy.Eq) or gold.atoms(sympy.Eq):
        return None
    from sympy.core.function import AppliedUndef

    gold = gold.xreplace({f: sympy.Dummy(str(f)) for f in gold.atoms(AppliedUndef)})  # f(x) is the unknown
    if len(gold.free_symbols) != 1:
        return None
    solutions = gold.as_set()
    equal = sympy_equal(pred, solutions)
    return equal if equal is not None else bool(solutions == pred)


def _constant_ratio(u, v, sympy) -> Any:
    """``u / v`` when it is a constant number, else None."""
    if v == 0:
        return None
    ratio = sympy.simplify(u / v)
    return ratio if ratio.is_number and ratio.is_finite and ratio.is_real else None


def _expressions_equal(a, b, sympy) -> bool:
    if a.has(sympy.oo, -sympy.oo) or b.has(sympy.oo, -sympy.oo):
        return False  # equal infinities were already found identical
    diff = sympy.simplify(a - b)
    return diff == 0


def _equations_equal(a, b, sympy) -> bool:
    """Same solution set for linear-style equations: ``l1 - r1`` is a non-zero constant
    multiple of ``l2 - r2`` (so ``y = 2x`` matches ``2x - y = 0``)."""
    u, v = a.lhs - a.rhs, b.lhs - b.rhs
    if identical(u, v) or _expressions_equal(u, v, sympy):
        return True
    ratio = _constant_ratio(u, v, sympy)
    return ratio is not None and ratio != 0
