"""Answer-checking throughput and accuracy: oreal's grading pool vs math-verify, side by side.

    .venv/bin/python experiments/bench_reward/bench.py

Both systems see the same pairs on the same machine in one run. math-verify is run as its
authors document it, ``verify(parse(gold), parse(response))``, in a 2-process pool (one per
core, like ours) and in a single process. Prints a Markdown table (recorded in README.md).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from oreal.data.builtin import load_builtin_jsonl  # noqa: E402
from oreal.reward import Grader, GradingPool  # noqa: E402
from tests.reward.test_pool import hostile_inputs  # noqa: E402

DATA = ROOT / "tests/reward/data"
WORKERS = 2


def regression_pairs():
    rows = lambda name: [json.loads(l) for l in (DATA / name).read_text().splitlines()]  # noqa: E731
    wrong = [("\\boxed{%s}" % r["pred"], r["gold"], False) for r in rows("wrong_pairs.jsonl")]
    right = [("\\boxed{%s}" % r["pred"], r["gold"], True) for r in rows("equivalent_rewritings.jsonl") + rows("equivalent_hand.jsonl")]
    return wrong + right


def _mv_one(pair):
    import logging

    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # it logs every hostile input in full

    response, gold = pair
    try:
        return bool(verify(parse("$" + gold + "$" if "\\boxed" not in gold else gold), parse(response)))
    except Exception:  # noqa: BLE001 - count a crash as "not correct"
        return False


def math_verify_batch(pairs, processes):
    if processes == 1:
        return [_mv_one(p) for p in pairs]
    with mp.get_context("spawn").Pool(processes) as pool:
        pool.map(_mv_one, pairs[:WORKERS])  # warm up the workers' imports
        return pool.map(_mv_one, pairs, chunksize=8)


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main():
    problems = load_builtin_jsonl("math500.jsonl")
    math500 = [(p["solution"], p["answer"]) for p in problems] + [("\\boxed{%s}" % p["answer"], p["answer"]) for p in problems]
    regression = regression_pairs()
    hostile = [(r, g) for r, g in hostile_inputs("/nonexistent/never-created")]

    rows = []
    with GradingPool(num_workers=WORKERS) as pool:
        grader = Grader(pool)
        grader.grade_batch([r for r, _ in math500[:8]], [g for _, g in math500[:8]])  # warm-up
        for name, pairs in (("MATH-500 self-pairs", math500), ("hostile inputs", hostile)):
            grades, secs = timed(grader.grade_batch, [r for r, _ in pairs], [g for _, g in pairs])
            rows.append(("oreal (2 workers)", name, len(pairs), secs, sum(g.correct for g in grades)))
        reg, secs = timed(grader.grade_batch, [r for r, _, _ in regression], [g for _, g, _ in regression])
        rows.append(("oreal (2 workers)", "regression files", len(regression), secs, sum(g.correct for g in reg)))
        ours_errors = sum(g.correct != want for g, (_, _, want) in zip(reg, regression))
        ours_fp = sum(g.correct and not want for g, (_, _, want) in zip(reg, regression))

    for procs in (WORKERS, 1):
        label = f"math-verify ({procs} process{'es' if procs > 1 else ''})"
        for name, pairs in (("MATH-500 self-pairs", math500), ("hostile inputs", hostile)):
            verdicts, secs = timed(math_verify_batch, pairs, procs)
            rows.append((label, name, len(pairs), secs, sum(verdicts)))
    mv_reg, secs = timed(math_verify_batch, [(r, g) for r, g, _ in regression], WORKERS)
    rows.append((f"math-verify ({WORKERS} processes)", "regression files", len(regression), secs, sum(mv_reg)))
    mv_errors = sum(v != want for v, (_, _, want) in zip(mv_reg, regression))
    mv_fp = sum(v and not want for v, (_, _, want) in zip(mv_reg, regression))

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"math-verify {version('math-verify')}, sympy {version('sympy')}")
    print("\n| checker | pairs | n | seconds | answers/s | graded correct |\n|---|---|---|---|---|---|")
    for label, name, n, secs, correct in rows:
        print(f"| {label} | {name} | {n} | {secs:.2f} | {n / secs:,.0f} | {correct} |")
    print(f"\nregression files ({len(regression)} pairs: {sum(not w for *_, w in regression)} wrong, "
          f"{sum(w for *_, w in regression)} equivalent):")
    print(f"- oreal: {ours_errors} errors ({ours_fp} false positives)")
    print(f"- math-verify: {mv_errors} errors ({mv_fp} false positives)")


if __name__ == "__main__":
    main()
