"""Answer-checking throughput and accuracy: oreal's grading pool vs math-verify, side by side.

    .venv/bin/python experiments/bench_reward/bench.py [--repeats 3] [--sets math500 hostile regression]

Three checkers see the same pairs on the same machine: oreal's ``GradingPool`` with 2 workers,
and math-verify as its authors document it, ``verify(parse(gold), parse(response))``, in a
2-process pool (one per core, like ours) and in a single process. Every checker is started and
warmed up (workers spawned, imports done) before any timing, and stays up for the whole run. The
checkers then run in alternating order, ``--repeats`` rounds (experiments/benchlib.py); in each
run a checker grades every pair set once. The table gives seconds, answers/s and the count graded
correct as median (min-max) over repeats, how many times longer math-verify (2 processes) takes
than oreal per set with its range over rounds, the accuracy on the regression files, and the
machine's load (with a warning row when it was not quiet).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import platform
import sys
import time
from argparse import ArgumentParser
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

import benchlib  # noqa: E402
from oreal.data.builtin import load_builtin_jsonl  # noqa: E402
from oreal.reward import Grader, GradingPool  # noqa: E402
from tests.reward.test_pool import hostile_inputs  # noqa: E402

DATA = ROOT / "tests/reward/data"
WORKERS = 2
SETS = {"math500": "MATH-500 self-pairs", "hostile": "hostile inputs", "regression": "regression files"}
OREAL, MV_POOL, MV_ONE = "oreal (2 workers)", f"math-verify ({WORKERS} processes)", "math-verify (1 process)"


def pair_sets() -> dict[str, list[tuple[str, str, bool | None]]]:
    """(response, gold, equivalent?) per set; None where every pair of the set is what it is."""
    rows = lambda name: [json.loads(l) for l in (DATA / name).read_text().splitlines()]  # noqa: E731
    problems = load_builtin_jsonl("math500.jsonl")
    return {
        "math500": [(p["solution"], p["answer"], None) for p in problems] + [("\\boxed{%s}" % p["answer"], p["answer"], None) for p in problems],
        "hostile": [(r, g, None) for r, g in hostile_inputs("/nonexistent/never-created")],
        "regression": [("\\boxed{%s}" % r["pred"], r["gold"], False) for r in rows("wrong_pairs.jsonl")]
        + [("\\boxed{%s}" % r["pred"], r["gold"], True) for r in rows("equivalent_rewritings.jsonl") + rows("equivalent_hand.jsonl")],
    }


def _mv_import():
    """Each math-verify process's start-up, done before any timing: imports, and one check so
    that whatever it loads on first use is loaded."""
    import logging

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # it logs every hostile input in full
    _mv_one(("\\boxed{\\frac{1}{2}}", "0.5"))


def _mv_one(pair):
    from math_verify import parse, verify

    response, gold = pair
    try:
        return bool(verify(parse("$" + gold + "$" if "\\boxed" not in gold else gold), parse(response)))
    except Exception:  # noqa: BLE001 - count a crash as "not correct"
        return False


def measure_all(checkers: dict, sets: dict, repeats: int) -> dict[str, list[dict]]:
    """Warm every checker up, then alternate them; per checker and repeat: {set: (seconds, verdicts)}."""
    warm = [(r, g) for r, g, _ in sets.get("math500", next(iter(sets.values())))[:8]]
    for check in checkers.values():
        check(warm)

    def measure(name: str, _repeat: int) -> dict:
        out = {}
        for key, pairs in sets.items():
            start = time.perf_counter()
            verdicts = checkers[name]([(r, g) for r, g, _ in pairs])
            out[key] = (time.perf_counter() - start, verdicts)
        return out

    return benchlib.run_alternating(list(checkers), repeats, measure)


def table(runs: dict[str, list[dict]], sets: dict, load: benchlib.MachineLoad, repeats: int) -> str:
    rows, ratios, accuracy = [], [], []
    for name, per_repeat in runs.items():
        for key, pairs in sets.items():
            secs = [r[key][0] for r in per_repeat]
            correct = benchlib.Spread.of([sum(r[key][1]) for r in per_repeat])
            rows.append([name, SETS[key], str(len(pairs)), benchlib.Spread.of(secs).fmt(),
                         benchlib.Spread.of([len(pairs) / s for s in secs]).fmt(",.0f"), correct.fmt(".0f")])
        if "regression" in sets:
            want = [w for *_, w in sets["regression"]]
            errors = benchlib.Spread.of([sum(v != w for v, w in zip(r["regression"][1], want)) for r in per_repeat])
            false_pos = benchlib.Spread.of([sum(v and not w for v, w in zip(r["regression"][1], want)) for r in per_repeat])
            accuracy.append(f"- {name}: {errors.fmt('.0f')} errors ({false_pos.fmt('.0f')} false positives)")
    if OREAL in runs and MV_POOL in runs:
        ratios = [(f"{SETS[key]}: {MV_POOL} seconds / {OREAL} seconds",
                   benchlib.Ratio.of([r[key][0] for r in runs[MV_POOL]], [r[key][0] for r in runs[OREAL]])) for key in sets]
    title = (f"bench_reward: {platform.machine()}, Python {platform.python_version()}, math-verify {version('math-verify')}, "
             f"sympy {version('sympy')}")
    text = benchlib.render_table(title, ["checker", "pairs", "n", "seconds", "answers/s", "graded correct"], rows,
                                 load=load, systems=list(runs), repeats=repeats, ratios=ratios, ratio_spec=".1f")
    if accuracy:
        reg = sets["regression"]
        text += (f"\n\nRegression files ({len(reg)} pairs: {sum(not w for *_, w in reg)} wrong, "
                 f"{sum(w for *_, w in reg)} equivalent):\n" + "\n".join(accuracy))
    return text


def main():
    ap = ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3, help="rounds: runs per checker, in alternating order (default 3)")
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS, help="pair sets each checker grades per run")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")

    before = benchlib.snapshot()  # before anything of ours runs: rule 1 of benchlib's quiet-machine check
    sets = {k: v for k, v in pair_sets().items() if k in args.sets}
    _mv_import()  # the single-process checker runs in this process
    with GradingPool(num_workers=WORKERS) as pool, mp.get_context("spawn").Pool(WORKERS, initializer=_mv_import) as mv_pool:
        grader = Grader(pool)
        checkers = {OREAL: lambda pairs: [g.correct for g in grader.grade_batch([r for r, _ in pairs], [g for _, g in pairs])],
                    MV_POOL: lambda pairs: mv_pool.map(_mv_one, pairs, chunksize=8),
                    MV_ONE: lambda pairs: [_mv_one(p) for p in pairs]}
        runs = measure_all(checkers, sets, args.repeats)
    load = benchlib.MachineLoad(before, benchlib.snapshot())  # after the pools' workers have exited
    print("\n" + table(runs, sets, load, args.repeats))


if __name__ == "__main__":
    main()
