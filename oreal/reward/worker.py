"""A grading worker process: memory-capped, with sympy's string evaluation disarmed.

The parent (:mod:`oreal.reward.pool`) starts it with ``python -m oreal.reward.worker``, sends ``(response, gold)`` pairs over a pipe and kills
the process when an answer takes longer than the timeout; nothing here uses signals.
"""

from __future__ import annotations

import ast
import json
import re
import resource
import sys
from multiprocessing.connection import Connection
from typing import Sequence


class UnsafeEvaluation(RuntimeError):
    """Raised if anything in a grading worker tries to evaluate a string as Python."""


_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_RATIO = re.compile(r"([+-]?\d+)/(\d+)")
# Arithmetic longer than this, or with larger exponents, is refused (no real answer needs it).
MAX_ARITHMETIC_CHARS = 200
MAX_EXPONENT = 100


def _numerals_only(text, *args, evaluate=True, **kwargs):
    """Stand-in for ``parse_expr``: a plain numeral becomes a sympy number without ``eval``
    (latex2sympy builds its numbers with ``sympy.Number(text)``), and arithmetic on numerals
    (``2/3``, ``(1/2) * (4/3)``, ``2**10``: what Math-Verify extracts from prose) is built from
    Python's parse tree, node by node; a name, call, attribute or anything else raises."""
    if isinstance(text, str):
        t = text.strip()
        import sympy

        if _INTEGER.fullmatch(t):
            return sympy.Integer(int(t))
        if _DECIMAL.fullmatch(t):
            return sympy.Float(t)
        ratio = _RATIO.fullmatch(t)
        if ratio and int(ratio.group(2)):
            return sympy.Rational(int(ratio.group(1)), int(ratio.group(2)))
        if len(t) <= MAX_ARITHMETIC_CHARS:
            return _arithmetic(t, bool(evaluate))
    raise UnsafeEvaluation("string evaluation is disabled in grading workers")


def _arithmetic(text: str, evaluate: bool):
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise UnsafeEvaluation("not arithmetic on numerals") from None
    return _build(tree.body, text, evaluate)


def _build(node, text: str, evaluate: bool):
    """The sympy value of an arithmetic parse-tree node (numbers, + - * / **, signs)."""
    import sympy

    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        literal = ast.get_source_segment(text, node) or repr(node.value)
        return sympy.Integer(int(literal)) if isinstance(node.value, int) else sympy.Float(literal)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _build(node.operand, text, evaluate)
        return sympy.Mul(-1, inner, evaluate=evaluate) if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
        if isinstance(node.op, ast.Pow) and not _small_exponent(node.right):
            raise UnsafeEvaluation("exponent too large")
        left, right = _build(node.left, text, evaluate), _build(node.right, text, evaluate)
        if isinstance(node.op, ast.Add):
            return sympy.Add(left, right, evaluate=evaluate)
        if isinstance(node.op, ast.Sub):
            return sympy.Add(left, sympy.Mul(-1, right, evaluate=evaluate), evaluate=evaluate)
        if isinstance(node.op, ast.Mult):
            return sympy.Mul(left, right, evaluate=evaluate)
        if isinstance(node.op, ast.Div):
            return sympy.Mul(left, sympy.Pow(right, -1, evaluate=evaluate), evaluate=evaluate)
        return sympy.Pow(left, right, evaluate=evaluate)
    raise UnsafeEvaluation(f"{type(node).__name__} is not arithmetic on numerals")


def _small_exponent(node) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) is int and abs(node.value) <= MAX_EXPONENT


def disarm_string_evaluation() -> None:
    """Make every sympy route from a string to ``eval`` raise in this process, except for
    numerals and arithmetic on them, which are built without evaluation (:func:`_numerals_only`).

    ``sympify(str)`` and ``S(str)`` look up ``sympy.parsing.sympy_parser.parse_expr`` at call
    time; modules that imported their own binding (``sympy.parse_expr``, latex2sympy2) are
    rebound too, by identity, wherever they are loaded.
    """
    import latex2sympy2_extended.latex2sympy2  # noqa: F401 - load it so its binding is replaced
    import math_verify.parser  # noqa: F401 - the second stage; its binding is replaced too
    import sympy.parsing.sympy_parser as sympy_parser

    original = sympy_parser.parse_expr
    if original is _numerals_only:
        return
    for module in list(sys.modules.values()):
        if getattr(module, "parse_expr", None) is original:
            module.parse_expr = _numerals_only


def cap_memory(memory_mb: int) -> None:
    limit = int(memory_mb) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


_WARM_UP_PAIRS = (
    ("\\frac{1}{2}+x", "x+0.5"),
    ("\\sin^2 x + \\cos^2 x", "1"),
    ("e^{\\ln 2} + \\log_2 8", "5"),
    ("\\sqrt{8}+3i", "2\\sqrt{2}+3i"),
    ("(1,2]\\cup[3,4)", "[3,4)\\cup(1,2]"),
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"),
    ("y=2x+1", "2x-y+1=0"),
    ("\\binom{5}{2}+3!", "16"),
)


# Pairs that reach the second stage (Math-Verify): its extraction and comparison paths.
_WARM_UP_RESPONSES = (
    ("Therefore $x \\geq 5$ is the solution.", "x \\ge 5"),
    ("The answer is \\boxed{x \\in [-2,7]}.", "-2 \\le x \\le 7"),
    ("so the probability is 2/3 and 1,000.99", "\\frac{2}{3}"),
)


def warm_up() -> None:
    """Run the parser and simplifier over every kind of answer once, before string evaluation
    is disarmed: sympy builds some modules lazily from (trusted) strings on first use."""
    import sympy.physics.units  # noqa: F401 - imported by simplify() on first call

    from oreal.reward.checker import check
    from oreal.reward.equivalence import equivalent
    from oreal.reward.second_stage import quiet

    quiet()
    for pred, gold in _WARM_UP_PAIRS:
        equivalent(pred, gold)
    for response, gold in _WARM_UP_RESPONSES:
        check(response, gold)


def worker_main(conn, memory_mb: int, markers: Sequence[str]) -> None:
    from oreal.reward.checker import check

    warm_up()
    disarm_string_evaluation()
    cap_memory(memory_mb)
    conn.send("ready")
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        response, gold = msg
        try:
            reason, extracted = check(response, gold, markers)
            result = (reason, extracted, "")
        except (MemoryError, RecursionError, UnsafeEvaluation) as exc:
            result = ("parse_error", None, type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - a checker bug must not kill the worker; it is counted
            result = ("parse_error", None, f"{type(exc).__name__}: {exc}"[:200])
        conn.send(result)


def main(argv: Sequence[str]) -> None:
    """``python -m oreal.reward.worker FD MEMORY_MB MARKERS_JSON``: serve on the inherited
    socket FD. Started as a plain subprocess, so the caller's ``__main__`` is never re-imported."""
    fd, memory_mb, markers = int(argv[0]), int(argv[1]), json.loads(argv[2])
    worker_main(Connection(fd), memory_mb, markers)


if __name__ == "__main__":
    main(sys.argv[1:])
