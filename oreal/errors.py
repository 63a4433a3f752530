"""Expected failures: what a user can fix, reported in one line without a traceback.

An :class:`OrealError` carries a message that names the bad field, file or component and
the way out. The entry point prints it as ``oreal: <message>`` and exits non-zero; any other
exception is a bug (or an unexpected failure of a component) and keeps its traceback.
This module imports nothing, so every part of the package (the light grading workers
included) can raise these.
"""

from __future__ import annotations


class OrealError(Exception):
    """A failure the user can act on; its message is the whole report."""


class ModelPathError(OrealError):
    """``model.path`` is neither a local model folder nor a reachable hub id."""


class RolloutEngineError(OrealError):
    """A rollout engine died, hung or answered with an error; the message names it."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message``, cut to ``limit`` characters (for status files,
    W&B summaries and the last line of a log)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    line = first if isinstance(exc, OrealError) else f"{type(exc).__name__}: {first}".rstrip(": ")
    return line if len(line) <= limit else line[: limit - 3] + "..."
