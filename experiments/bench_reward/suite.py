"""Agreement with Math-Verify's public test suite: oreal's checker vs Math-Verify itself.

    .venv/bin/python experiments/bench_reward/suite.py PATH/TO/Math-Verify [--show-misses]

PATH is a local checkout of https://github.com/huggingface/Math-Verify (nothing of it is
copied into this repository; its commit is printed with the table). Its test files are read
as Python source with ``ast`` (never imported or executed) and every parametrised
``(gold, pred, expected)`` case becomes one graded pair:

- the response is the test's prediction as written when it is a model output (it has a box
  or prose); a bare answer (``$28\\%$``, ``28 percent``) becomes ``The answer is \\boxed{...}.``
- the gold is the test's gold as written.

Both checkers grade the same pairs in the same run: oreal through its ``GradingPool`` (the
product path), Math-Verify as its README documents it, ``verify(parse(gold), parse(response))``
with default settings. A case counts as a false negative when its expectation is 1 and the
checker says "not correct", and as a false positive the other way round.

Which cases are left out, and why (applied to both checkers alike):

- a case run under a *looser* setting than the default (``precision`` below 6, ``strict=False``,
  ``allow_set_relation_comp=True``) is kept only when it expects 0: a looser "equal" says
  nothing about the default, a looser "not equal" does;
- cases whose values are not literals (an f-string) cannot be read without executing code;
- :data:`WRONG_EXPECTATIONS`: expectations that are mathematically false, and
  :data:`HARNESS_ARTEFACTS`: expectations about the test's extraction settings, each with the reason.
"""

from __future__ import annotations

import argparse
import ast
import logging
import multiprocessing as mp
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from oreal.reward import Grader, GradingPool  # noqa: E402

WORKERS = 2
DEFAULT_PRECISION = 6
# (gold, pred) whose expected verdict is mathematically false; left out of both scores.
WRONG_EXPECTATIONS = {
    ("$1 - \\frac{1}{\\mathrm{e}}$", "$1 + \\frac{1}{\\mathrm{e}}$"): "1 - 1/e and 1 + 1/e differ; expected 1",
}
# (gold, pred) whose expectation is about the test's own extraction settings, not about the
# answer; left out of both scores.
HARNESS_ARTEFACTS = {
    ("$9$", "Answer $ \n 9 \n $"): "expects 0 only because the test restricts extraction to LaTeX and inline "
                                   "math may not span lines; the answer is 9 (Math-Verify's default also says 1)",
    ("$9$", "Answer \\( \n 9 \n \\)"): "as above",
}
_PROSE_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_LATEX_NAME = re.compile(r"\\(?:begin|end)\{[a-zA-Z*]+\}|\\[a-zA-Z]+")


@dataclass(frozen=True)
class Case:
    test: str  # file::function
    gold: str
    pred: str
    expected: bool


def _literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _call_keywords(func: ast.FunctionDef) -> dict:
    """Literal keyword arguments of the ``compare_strings``/``verify`` call in a test body."""
    out = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                value = _literal(kw.value) if isinstance(kw.value, ast.Constant) else None
                if kw.arg and value is not None:
                    out[kw.arg] = value
    return out


def _parametrize(func: ast.FunctionDef):
    """``(argnames, list of case nodes)`` of the function's ``pytest.mark.parametrize``."""
    for deco in func.decorator_list:
        if isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == "parametrize":
            names = [n.strip() for n in _literal(deco.args[0]).split(",")]
            return names, deco.args[1].elts
    return None, []


def read_cases(repo: Path) -> tuple[list[Case], Counter]:
    """Every usable case of ``tests/*.py`` and a count of the ones left out, by reason."""
    cases, left_out = [], Counter()
    for path in sorted((repo / "tests").glob("test_*.py")):
        for func in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(func, ast.FunctionDef):
                continue
            names, nodes = _parametrize(func)
            if not names or not {"gold", "pred"} <= set(names):
                continue
            fixed = _call_keywords(func)
            for node in nodes:
                values = [_literal(e) for e in node.elts]
                if any(v is None for v in values):
                    left_out["not a literal"] += 1
                    continue
                row = {**fixed, **dict(zip(names, values))}
                expected = bool(row.get("expected", row.get("result")))
                looser = (row.get("precision", DEFAULT_PRECISION) < DEFAULT_PRECISION or row.get("strict") is False
                          or row.get("allow_set_relation_comp") is True)
                if looser and expected:
                    left_out["expects 1 under a looser setting"] += 1
                elif (row["gold"], row["pred"]) in WRONG_EXPECTATIONS:
                    left_out["wrong expectation"] += 1
                elif (row["gold"], row["pred"]) in HARNESS_ARTEFACTS:
                    left_out["harness artefact"] += 1
                else:
                    cases.append(Case(f"{path.name}::{func.name}", row["gold"], row["pred"], expected))
    return cases, left_out


def _whole_math(s: str):
    """The inside of ``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]`` when that is all of ``s``."""
    for left, right in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if s.startswith(left) and s.endswith(right) and len(s) > len(left) + len(right):
            inner = s[len(left) : len(s) - len(right)]
            if "$" not in inner.replace("\\$", "") and "\\(" not in inner and "\\[" not in inner:
                return inner.strip()
    return None


def as_response(pred: str) -> str:
    """A model output as written; a bare answer boxed in a one-line response."""
    s = pred.strip()
    if "\\boxed" in s or "\\fbox" in s:
        return pred
    inner = _whole_math(s)
    plain = s.replace("\\$", "")  # an escaped dollar is a currency sign, not a math delimiter
    if inner is None and not any(d in plain for d in ("$", "\\(", "\\[")) and len(_PROSE_WORD.findall(_LATEX_NAME.sub(" ", s))) < 2:
        inner = s
    return pred if inner is None else "The answer is \\boxed{%s}." % inner


def _mv_one(pair) -> bool:
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    response, gold = pair
    try:
        return bool(verify(parse(gold), parse(response)))
    except Exception:  # noqa: BLE001 - a crash counts as "not correct"
        return False


def math_verify_verdicts(pairs) -> list[bool]:
    with mp.get_context("spawn").Pool(WORKERS) as pool:
        return pool.map(_mv_one, pairs, chunksize=4)


def score(verdicts, cases) -> tuple[int, int, int]:
    agree = sum(v == c.expected for v, c in zip(verdicts, cases))
    fn = sum(c.expected and not v for v, c in zip(verdicts, cases))
    fp = sum(v and not c.expected for v, c in zip(verdicts, cases))
    return agree, fn, fp


def repo_commit(repo: Path) -> str:
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else "unknown (not a git checkout)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", type=Path, help="local checkout of huggingface/Math-Verify")
    parser.add_argument("--show-misses", action="store_true", help="print every case either checker gets wrong")
    args = parser.parse_args(argv)
    if not (args.repo / "tests").is_dir():
        raise SystemExit(f"{args.repo}/tests not found: pass the root of a Math-Verify checkout")
    cases, left_out = read_cases(args.repo)
    pairs = [(as_response(c.pred), c.gold) for c in cases]
    with GradingPool(num_workers=WORKERS) as pool:
        ours = Grader(pool).grade_batch([r for r, _ in pairs], [g for _, g in pairs])
    theirs = math_verify_verdicts(pairs)

    print(f"Math-Verify commit {repo_commit(args.repo)}: {len(cases)} cases "
          f"({sum(c.expected for c in cases)} expect 1); left out: {dict(left_out)}")
    print("\n| checker | agree | false negatives | false positives |\n|---|---|---|---|")
    for name, verdicts in (("oreal", [g.correct for g in ours]), ("math-verify (default)", theirs)):
        agree, fn, fp = score(verdicts, cases)
        print(f"| {name} | {agree}/{len(cases)} ({agree / len(cases):.1%}) | {fn} | {fp} |")
    reasons = Counter(g.reason for g in ours)
    print(f"\noreal reasons: {dict(reasons)}")
    if args.show_misses:
        for c, (resp, _), g, mv in zip(cases, pairs, ours, theirs):
            if g.correct != c.expected or mv != c.expected:
                print(f"\n[{c.test}] expected={int(c.expected)} oreal={g.reason} mv={int(mv)}\n"
                      f"  gold: {c.gold[:160]!r}\n  resp: {resp[-200:]!r}\n  extracted: {g.extracted!r}")


if __name__ == "__main__":
    main()
