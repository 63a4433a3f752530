"""A grading worker process: memory-capped, with sympy's string evaluation disarmed.

The parent (:mod:`oreal.reward.pool`) starts it with ``python -m oreal.reward.worker``, sends ``(response, gold)`` pairs over a pipe and kills
the process when an answer takes longer than the timeout; nothing here uses signals.
"""

from __future__ import annotations

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


def _numerals_only(text, *args, **kwargs):
    """Stand-in for ``parse_expr``: a plain numeral becomes a sympy number without ``eval``
    (latex2sympy builds its numbers with ``sympy.Number(text)``); anything else raises."""
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
    raise UnsafeEvaluation("string evaluation is disabled in grading workers")


def disarm_string_evaluation() -> None:
    """Make every sympy route from a string to ``eval`` raise in this process, except for
    plain numerals, which are converted without evaluation.

    ``sympify(str)`` and ``S(str)`` look up ``sympy.parsing.sympy_parser.parse_expr`` at call
    time; modules that imported their own binding (``sympy.parse_expr``, latex2sympy2) are
    rebound too, by identity, wherever they are loaded.
    """
    import latex2sympy2_extended.latex2sympy2  # noqa: F401 - load it so its binding is replaced
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


def warm_up() -> None:
    """Run the parser and simplifier over every kind of answer once, before string evaluation
    is disarmed: sympy builds some modules lazily from (trusted) strings on first use."""
    import sympy.physics.units  # noqa: F401 - imported by simplify() on first call

    from oreal.reward.equivalence import equivalent

    for pred, gold in _WARM_UP_PAIRS:
        equivalent(pred, gold)


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
