"""How an answer is read: the rules for boxes, lists, labels, chains, ratios, relations and numbers.

All the rules are stated here, each with the function that applies it (the box and sentence
rules live in :mod:`oreal.reward.extract`, the comparisons in :mod:`oreal.reward.equivalence`,
lists and labels below). They apply to the gold answer and to the prediction alike unless a
rule says otherwise. Each keeps the checker strict: no rule makes two different values
equal, and none lets a model gain by giving several answers. Where no rule gives a good
answer (nothing extracted, one side unparseable, kinds compared nowhere), the second stage
asks Math-Verify (:mod:`oreal.reward.second_stage`), whose "correct" stands only if these
rules can read what it extracted and do not decide otherwise.

**Boxes** (:func:`oreal.reward.extract.final_box_block`). The graded answer is the last ``\\boxed{}``/``\\fbox{}``
after the thinking marker together with the boxes just before it that are joined to it only
by list glue: spaces, commas, semicolons, ``and``/``or`` (bare or in ``\\text{}``), spacing
commands, math delimiters, line breaks, a label ``y_2 =`` right before a box, and the name of
a part of the question (``for part (a)``, ``(ii)``); one other word may precede the
connective (``\\boxed{1} papers and \\boxed{2} bins``). The contents are
read as one list answer: ``\\boxed{(2,1)}, \\boxed{(1,2)}`` is ``(2,1), (1,2)``. Any other
text between two boxes (``then``, ``not``, a sentence) ends the block, so only the later
box counts. A hedge never pays: ``\\boxed{1} or \\boxed{2}`` is the list ``1, 2``, which is
not the gold ``2``.

**Phrase** (:func:`oreal.reward.extract.phrase_value`). Without a box, or when a
``final answer is X`` sentence comes after the last box, the answer is X: the sentence after
the last ``answer is`` / ``answer:`` up to its end (``. I hope it is correct`` is dropped);
a leading math segment is taken whole, and in prose (``The largest $n$ is 34``) the part
after the last ``is``. A response with neither goes to the second stage.

**Lists** (:func:`split_list`). Top-level commas and semicolons, and the words ``and``/``or``,
separate the elements of an answer (``19, 46, \\text{ and } 82`` is ``19, 46, 82``; brackets
and braces nest). Two lists are equal when their elements match one to one, in any order
and with repeats counted once (set semantics, as a ``FiniteSet``), except that when one side
names its elements with distinct labels and the other has none they must match in order
(``AB=4, CD=5`` vs ``4, 5``). A bare list against one tuple compares in order
(``1, 3`` vs ``(1,3)``). Lists of different lengths are compared as whole sets by sympy
(``1 \\pm \\sqrt{19}`` vs ``1+\\sqrt{19}, 1-\\sqrt{19}``). Set braces around the whole answer
(``\\{1, 2\\}`` or a bare ``{1, 2}``) make it a list of its elements. Semicolon-separated
groups that each label the same unknowns (``p=5,q=2; p=7,q=2``) are the tuples
``(5,2), (7,2)`` (:func:`labelled_tuples`).

**Labels** (:func:`split_label`). An element ``LHS = value`` whose left side is only a name
(``x``, ``a_{37}``, ``f(x)``, ``|AB|``, ``AB``, ``(p,q)``, ``V_1:V_2``, ``\\frac{NO}{BO}``: letters,
subscripts, primes and Greek letters, no digits or operators outside subscripts and function
arguments) carries a label. A label is dropped when the other side's element has none
(``(p,q)=(3,2)`` vs ``(3,2)``); when both are labelled the labels must agree (``x=5`` is not
``y=5``; ``W(n)`` and ``W(x)`` agree: same function, renamed argument), and otherwise the two
are compared as equations. A left side with a digit or an operator (``2x+z=1``, ``x^2=4``)
is an equation, never a label, so ``2x+z=1`` is not the answer ``1``.

**Chains** (:func:`split_label`). ``x = 5+5+1 = 11`` has the value of its last part, 11; a
trailing ``\\approx w`` after an exact value is commentary and dropped (``x = 1/3 \\approx
0.33`` is 1/3), while ``x \\approx 11`` alone has the value 11 (compared exactly all the same).

**Ratios** (:func:`ratio_parts`). ``a:b(:c)`` compares part by part, never as the quotient a/b:
``12:00`` (12/0) is not ``1:00``, and the time ``2:30`` is not ``1:15``.

**Relations** (:func:`oreal.reward.equivalence.sympy_equal`). ``5 \\geq x`` equals ``x \\leq 5``
and ``-x > -1`` equals ``x < 1``: both sides are moved to one side and must agree up to a
positive factor with the same strictness. A gold inequality in one unknown is its solution
set, so ``(-793, 10)`` answers ``-793 < a < 10``; not the other way round: against a gold
interval (the question asked for interval notation) an inequality is not an answer, as in
Math-Verify. Equations agree when one is a non-zero multiple of the other.

**Numbers** (:func:`oreal.reward.equivalence.compare_values`). Exact, never within a
tolerance: ``0.333`` is not 1/3, and ``50\\%`` is 50, not 0.5 (the percent sign or word is
dropped, the value never rescaled). Exact forms: ``1\\frac{1}{2}`` and ``1 1/2`` are 3/2,
``0.1\\overline{6}`` is 1/6, ``1{,}000`` and ``32,\\!349`` have thousands separators while
``32, 349`` (a space after the comma) is a list; a decimal with 15 or more significant
digits (a double printed in full, ``0.0833333333333333``) equals the value it is correctly
rounded from, and shorter ones never do.

**Choices**. Against a gold choice letter ``B``, an answer ``(B) 12`` is its letter.

**Non-finite values** (:mod:`oreal.reward.equivalence`). Nothing that is or contains ``zoo`` or
``nan`` once evaluated equals anything: ``\\tan(\\pi/2)`` is not ``\\cot 0``, ``\\frac{0}{0}`` is
not ``0/0``, ``\\infty-\\infty`` is not ``0\\cdot\\infty``. The one exception is text identical
to the gold after normalisation, which matches before anything is parsed. Infinity is a value
but matches only as the same expression, never through simplification (``(1, \\infty)`` is
``(1, +\\infty)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_OPEN, _CLOSE = "([{", ")]}"


def split_top_level(s: str, seps: str) -> list[str]:
    """Split a normalised answer at the characters in ``seps`` outside brackets and braces
    (``\\{``/``\\}`` and ``\\left(`` count as brackets; an interval's ``(1,2]`` nests too)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        if c == "\\":  # a command, or an escaped character
            i += 2 if i + 1 < len(s) and not s[i + 1].isalpha() else 1
            continue
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth = max(depth - 1, 0)
        elif c in seps and depth == 0:
            parts.append(s[start:i])
            start = i + 1
        i += 1
    parts.append(s[start:])
    return parts


def _unwrap_set(s: str) -> str:
    """``\\{1,2\\}`` or ``{1,2}`` around the whole answer -> ``1,2``."""
    for left, right in (("\\{", "\\}"), ("{", "}")):
        if s.startswith(left) and s.endswith(right):
            inner = s[len(left) : len(s) - len(right)]
            if len(split_top_level(left + inner + right, ",;")) == 1 and _balanced(inner):
                return inner
    return s


def _balanced(s: str) -> bool:
    depth = 0
    for c in s.replace("\\{", "{").replace("\\}", "}"):
        depth += (c in "([{") - (c in ")]}")
        if depth < 0:
            return False
    return depth == 0


def split_list(s: str) -> list[str]:
    """The elements of a normalised answer (one element when it is not a list)."""
    parts = [p for p in split_top_level(_unwrap_set(s), ",;") if p]
    return parts or [s]


def tuple_parts(s: str) -> Optional[list[str]]:
    """Components of an answer that is one parenthesised tuple ``(a,b,...)``, else None."""
    for left, right in (("(", ")"), ("\\left(", "\\right)")):
        if s.startswith(left) and s.endswith(right):
            inner = s[len(left) : len(s) - len(right)]
            if _balanced(inner):
                parts = split_top_level(inner, ",;")
                return parts if len(parts) > 1 else None
    return None


def ratio_parts(s: str) -> Optional[list[str]]:
    """``['12', '00']`` for ``12:00``; None unless ``s`` is parts joined by top-level colons."""
    parts = split_top_level(s, ":")
    if len(parts) < 2 or any(not p or "=" in p for p in parts):
        return None
    return parts


@dataclass(frozen=True)
class Element:
    """One element of an answer: its value and, for ``x = 5``, its label ``x``."""

    value: str
    label: Optional[str] = None
    source: str = ""

    @property
    def whole(self) -> str:
        """The element as written (``x=5``), for comparing two equations."""
        return self.source or self.value


_SUBSCRIPT = re.compile(r"_(?:\{[^{}]*\}|[A-Za-z0-9])")
_FUNCTION_ARGS = re.compile(r"(?<=[A-Za-z])\([^()=]*\)")
_NAME_COMMANDS = re.compile(
    r"\\(?:frac|angle|triangle|overline|overrightarrow|vec|alpha|beta|gamma|delta|theta|phi|varphi|omega|lambda|mu|"
    r"sigma|rho|tau|epsilon|varepsilon|psi|chi|eta|kappa|nu|xi|zeta|Delta|Omega|Gamma|Phi|Theta|Lambda|Sigma)(?![a-zA-Z])"
)
_NAME_CHARS = re.compile(r"[A-Za-z(),|:/{}']+")
_APPROX = re.compile(r"\\approx|\\sim(?![a-z])|≈")


def is_name(lhs: str) -> bool:
    """True when ``lhs`` only names a quantity (see **Labels** above)."""
    bare = _FUNCTION_ARGS.sub("", _SUBSCRIPT.sub("", lhs))
    bare = _NAME_COMMANDS.sub("a", bare)  # a Greek letter is a letter
    return bool(bare) and bool(_NAME_CHARS.fullmatch(bare)) and any(c.isalpha() for c in bare)


def _drop_approximation(value: str) -> str:
    parts = _APPROX.split(value, maxsplit=1)
    return parts[0] if parts[0].strip() else (parts[1] if len(parts) > 1 else value)


def split_label(element: str) -> Element:
    """``x=5+5+1=11`` -> Element('11', 'x'); ``2x+z=1`` stays one unlabelled equation."""
    parts = split_top_level(element, "=")
    if len(parts) == 1:
        approx = _APPROX.split(element, maxsplit=1)
        if len(approx) == 2 and is_name(approx[0]) and approx[1]:
            return Element(approx[1], approx[0], element)
        return Element(_drop_approximation(element), None, element)
    if not is_name(parts[0]) or not parts[-1]:
        return Element(element)
    return Element(_drop_approximation(parts[-1]), parts[0], element)


_FUNCTION_LABEL = re.compile(r"([A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?)\(([A-Za-z])\)")


def labels_match(a: str, b: str) -> bool:
    """Same label, or the same function of a renamed argument (``W(n)`` and ``W(x)``)."""
    if a == b:
        return True
    fa, fb = _FUNCTION_LABEL.fullmatch(a), _FUNCTION_LABEL.fullmatch(b)
    return bool(fa and fb and fa.group(1) == fb.group(1))


def _labelled_tuple(group: str) -> Optional[Element]:
    """``p=5,q=2`` -> Element('(5,2)', '(p,q)'); None unless every part has its own label."""
    parts = [split_label(x) for x in split_top_level(group, ",")]
    labels = [p.label for p in parts]
    if len(parts) < 2 or not all(labels) or len(set(labels)) != len(parts):
        return None
    return Element("(" + ",".join(p.value for p in parts) + ")", "(" + ",".join(labels) + ")", group)


def labelled_tuples(s: str) -> Optional[list[Element]]:
    """The groups of ``p=5,q=2;p=7,q=2`` as tuples, when the answer has that form, else None."""
    groups = [g for g in split_top_level(s, ";") if g]
    if len(groups) < 2:
        return None
    tuples = [_labelled_tuple(g) for g in groups]
    if any(t is None for t in tuples) or len({t.label for t in tuples}) != 1:
        return None
    return tuples
