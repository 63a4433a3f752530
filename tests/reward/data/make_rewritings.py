"""Regenerates equivalent_rewritings.jsonl: MATH-500 gold answers rewritten into forms a
model might produce that mean the same thing. Rules are deliberately simple string or sympy
rewrites; each output row names its rule. Run from the repository root:

    python tests/reward/data/make_rewritings.py
"""

import json
import re
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
RULES = []


def rule(fn):
    RULES.append(fn)
    return fn


@rule
def thousands(a):
    if re.fullmatch(r"\d{4,}", a):
        yield f"{int(a):,}"


@rule
def trailing_zero(a):
    if re.fullmatch(r"-?\d{1,3}", a) and int(a) % 5 == 3:
        yield f"{a}.0"


@rule
def assignment(a):
    if re.fullmatch(r"-?\d+", a) and int(a) % 7 == 0:
        yield f"n = {a}"


@rule
def frac_forms(a):
    m = re.fullmatch(r"(-?)\\[dt]?frac\{?(\d+)\}?\{?(\d+)\}?", a)
    if m:
        sign, p, q = m.group(1), int(m.group(2)), int(m.group(3))
        yield f"{sign}{p}/{q}"
        yield f"{sign}\\dfrac{{{p}}}{{{q}}}"
        value = Fraction(p, q)
        d = value.denominator
        while d % 2 == 0:
            d //= 2
        while d % 5 == 0:
            d //= 5
        if d == 1:
            exact = format(value.numerator / value.denominator, ".12f").rstrip("0")
            if Fraction(exact) == value:
                yield sign + exact
        if sign:
            yield f"\\frac{{-{p}}}{{{q}}}"


@rule
def decimal_to_fraction(a):
    if re.fullmatch(r"-?\d*\.\d+", a):
        f = Fraction(a)
        yield f"\\frac{{{f.numerator}}}{{{f.denominator}}}"


@rule
def degrees(a):
    m = re.fullmatch(r"(\d+)\^\\circ", a)
    if m:
        yield m.group(1)
        yield f"{m.group(1)}^{{\\circ}}"
        yield f"{m.group(1)} degrees"


@rule
def text(a):
    m = re.fullmatch(r"\\text\{(.+)\}", a)
    if m:
        yield m.group(1)
        yield f"\\textbf{{{m.group(1)}}}"


@rule
def tuple_spacing(a):
    if a.startswith("(") and a.endswith(")") and "," in a:
        yield f"\\left( {a[1:-1]} \\right)"
        yield a.replace(" ", "")
    if a.startswith("\\left(") and a.endswith("\\right)"):
        yield "(" + a[len("\\left("):-len("\\right)")].strip() + ")"


@rule
def dollars(a):
    m = re.fullmatch(r"\\\$(.+)", a)
    if m:
        yield m.group(1)
        yield m.group(1).replace(",\\!", ",") + " dollars"


@rule
def complex_order(a):
    m = re.fullmatch(r"(-?\d+)([+-])(\d*)i", a)
    if m:
        yield f"{m.group(2) if m.group(2) == '-' else ''}{m.group(3)}i+{m.group(1)}".replace("+-", "-")


@rule
def dollar_math(a):
    if len(a) < 30 and "\\$" not in a and "=" not in a and len(a) % 4 == 1:
        yield f"${a}$"


@rule
def sqrt_power(a):
    m = re.fullmatch(r"\\sqrt\{(\d+)\}", a)
    if m:
        yield f"{m.group(1)}^{{1/2}}"
    m = re.fullmatch(r"(\d+) ?\\sqrt\{(\d+)\}", a)
    if m:
        yield f"\\sqrt{{{int(m.group(1)) ** 2 * int(m.group(2))}}}"


@rule
def matrix_kind(a):
    if "pmatrix" in a:
        yield a.replace("pmatrix", "bmatrix")


@rule
def units(a):
    m = re.fullmatch(r"(\d+) ?\\mbox\{ ?[a-z]+\}(\^2)?", a)
    if m:
        yield m.group(1)


@rule
def interval_membership(a):
    if a.startswith("x \\in "):
        yield a[len("x \\in "):]
    elif re.fullmatch(r"[\[(].+,.+[\])]", a) and "\\cup" not in a and "pmatrix" not in a and a.count(",") == 1 and a[0] + a[-1] != "()":
        yield f"x \\in {a}"


@rule
def pi_slash(a):
    m = re.fullmatch(r"(-?)\\frac\{(\d*)\\pi\}\{(\d+)\}", a)
    if m:
        yield f"{m.group(1)}{m.group(2)}\\pi/{m.group(3)}"


@rule
def sympy_forms(a):
    """Expand / factor symbolic answers with one or more variables (printed by sympy.latex)."""
    if not re.fullmatch(r"[0-9a-z+\-^ ()\\]+", a) or not re.search(r"[a-z]", a.replace("\\", "")) or "\\" in a:
        return
    import sympy
    from latex2sympy2_extended import latex2sympy

    try:
        e = latex2sympy(a)
    except Exception:
        return
    if not isinstance(e, sympy.Expr):
        return
    for form in (sympy.factor(e), sympy.expand(e)):
        text = sympy.latex(form)
        if text.replace(" ", "") != a.replace(" ", ""):
            yield text


def main():
    rows = [json.loads(l) for l in open(ROOT / "oreal/data/files/math500.jsonl")]
    out = []
    for row in rows:
        a = row["answer"]
        for fn in RULES:
            for rewritten in fn(a) or ():
                if rewritten and rewritten != a:
                    out.append({"pred": rewritten, "gold": a, "rule": fn.__name__, "id": row["unique_id"]})
    path = Path(__file__).with_name("equivalent_rewritings.jsonl")
    with open(path, "w") as f:
        for r in out:
            f.write(json.dumps(r) + "\n")
    print(f"{len(out)} rewritings -> {path}")


if __name__ == "__main__":
    main()
