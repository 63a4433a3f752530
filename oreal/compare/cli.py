"""``oreal compare``: a sweep's variants side by side.

    oreal compare runs/ablation_ladder                         # offline: run folders / JSONL logs
    oreal compare runs/ablation_ladder --plot curves.png       # + learning curves
    oreal compare --wandb my-entity/oreal --group ablation_ladder --plot curves.png   # W&B API

Prints one row per variant (seeds grouped): final and best values of ``--metric`` and its
value at equal wall-clock, the final values of ``--extra`` metrics (mean +- std over seeds),
then the config fields that differ between variants.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

DEFAULT_METRIC = "eval/cpu_heldout/pass@1"
DEFAULT_EXTRA = ("reward/mean", "kl/ref", "response/mean_length")
PLOT_METRICS = (DEFAULT_METRIC, "reward/mean", "kl/ref")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="oreal compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", nargs="?", type=Path, help="sweep folder (holds the run folders)")
    ap.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read runs from the W&B API instead")
    ap.add_argument("--group", help="W&B group (the sweep) with --wandb")
    ap.add_argument("--metric", default=DEFAULT_METRIC)
    ap.add_argument("--extra", nargs="*", default=list(DEFAULT_EXTRA))
    ap.add_argument("--tail", type=int, default=10, help="training metrics: 'final' = mean of the last N logged values")
    ap.add_argument("--plot", type=Path, help="write learning curves to this PNG")
    ap.add_argument("--json", type=Path, help="also write the table as JSON")
    args = ap.parse_args(argv)
    if (args.sweep is None) == (args.wandb is None):
        ap.error("give a sweep folder or --wandb ENTITY/PROJECT (one of them)")

    from oreal.compare import config_differences, load_local, load_wandb, summarize
    from oreal.compare.table import markdown

    try:
        runs = load_wandb(args.wandb, args.group) if args.wandb else load_local(args.sweep)
    except (FileNotFoundError, LookupError, ValueError) as exc:
        print(f"oreal compare: {exc}", file=sys.stderr)
        return 2
    failed = [r for r in runs if r.failed]
    runs = [r for r in runs if not r.failed]  # a failed run is listed, never averaged in
    if not runs:
        print(f"oreal compare: every run failed:\n" + "\n".join(f"  {r.name}: {r.reason}" for r in failed), file=sys.stderr)
        return 1
    summaries, budget = summarize(runs, args.metric, args.extra, args.tail)
    print(f"{len(runs)} runs, {len(summaries)} variants"
          + (f"; equal wall-clock = {budget:.0f} s (the fastest run's time)" if budget is not None else ""))
    print(markdown(summaries))
    if failed:
        print(f"\n{len(failed)} failed run(s), not in the table:")
        for r in failed:
            print(f"  {r.name} ({r.variant}, seed {r.seed}): {r.reason}")
    diffs = config_differences(runs)
    if diffs:
        print("\nconfig differences between variants:")
        for key, values in diffs.items():
            print(f"  {key}: " + "; ".join(f"{v}={x!r}" for v, x in values.items()))
    if args.json:
        args.json.write_text(json.dumps([{"variant": s.variant, "seeds": s.seeds, **{k: vars(v) for k, v in s.values.items()}}
                                         for s in summaries], indent=2))
    if args.plot:
        from oreal.compare.plots import plot

        metrics = [args.metric] + [m for m in PLOT_METRICS[1:] if m != args.metric]
        print(f"plot: {plot(runs, metrics, args.plot, title=str(args.sweep or args.group or args.wandb))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
