"""``oreal grade FILE.jsonl``: grade ``response`` against ``gold`` for every row.

Writes the rows with ``correct``, ``reason`` and ``extracted`` added (to FILE.graded.jsonl
unless --out is given) and prints the count per reason. A malformed row stops the run with
its file, line and field before anything is graded.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

from oreal.reward.checker import REASONS
from oreal.reward.extract import DEFAULT_THINKING_MARKERS
from oreal.reward.grader import Grader
from oreal.reward.pool import GradingPool


class RowError(ValueError):
    pass


def read_rows(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RowError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise RowError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            for field in ("response", "gold"):
                if not isinstance(row.get(field), str):
                    got = "missing" if field not in row else f"a {type(row[field]).__name__}"
                    raise RowError(f"{path}:{lineno}: field {field!r} must be a string, it is {got}")
            for field in ("finish_reason", "problem"):
                if row.get(field) is not None and not isinstance(row[field], str):
                    raise RowError(f"{path}:{lineno}: field {field!r} must be a string or null")
            rows.append(row)
    return rows


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="oreal grade", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, help="JSONL with fields response, gold (optional: finish_reason, problem)")
    parser.add_argument("--out", type=Path, help="where to write verdicts (default: FILE.graded.jsonl)")
    parser.add_argument("--timeout-s", type=float, default=5.0, help="per-answer process timeout (default 5)")
    parser.add_argument("--workers", type=int, default=0, help="grading processes (default: one per core)")
    parser.add_argument("--memory-mb", type=int, default=2048, help="memory cap per grading process")
    args = parser.parse_args(argv)
    try:
        rows = read_rows(args.file)
    except (RowError, OSError) as exc:
        print(f"oreal grade: {exc}", file=sys.stderr)
        return 2
    out = args.out or args.file.with_suffix(".graded.jsonl")
    with GradingPool(args.workers, args.timeout_s, args.memory_mb, DEFAULT_THINKING_MARKERS) as pool:
        grades = Grader(pool).grade_batch(
            [r["response"] for r in rows], [r["gold"] for r in rows],
            finish_reasons=[r.get("finish_reason") for r in rows], problems=[r.get("problem") or "" for r in rows],
            progress="grading",
        )
    with out.open("w", encoding="utf-8") as f:
        for row, g in zip(rows, grades):
            f.write(json.dumps({**row, "correct": g.correct, "reason": g.reason, "extracted": g.extracted}) + "\n")
    counts = Counter(g.reason for g in grades)
    print(f"{len(grades)} answers graded, {sum(g.correct for g in grades)} correct -> {out}")
    for reason in REASONS:
        if counts[reason]:
            print(f"  {reason:<16} {counts[reason]:>8}  {counts[reason] / len(grades):7.1%}")
    return 0
