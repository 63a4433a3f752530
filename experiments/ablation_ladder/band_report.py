"""What difficulty balance makes of a pass-rate file (``oreal passrate`` output): prompts and
stream share per pass-rate band, per level, the balanced stream's expected pass rate, and the
level mix that brings it into the paper's 0.2-0.4 if all levels together do not.

    .venv/bin/python experiments/ablation_ladder/band_report.py SELECTION.jsonl --check CHECK.jsonl

SELECTION sets the repeats (the file the experiment trains on); CHECK is the same prompts
sampled again with another seed, an independent estimate of how hard the chosen prompts really
are (see oreal/data/difficulty.py).
"""

import argparse
import json
import sys
from pathlib import Path

from oreal.data.difficulty import PAPER_PASS_RATE_RANGE, band_rows, level_mixes, recommend_mix, stream_stats


def read(path: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {row["id"]: row for row in rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("selection", type=Path)
    ap.add_argument("--check", type=Path)
    args = ap.parse_args()
    sel = read(args.selection)
    ids = sorted(sel)
    check = None
    if args.check:
        chk = read(args.check)
        missing = [i for i in ids if i not in chk]
        if missing:
            print(f"band_report: {len(missing)} prompts of {args.selection} are not in {args.check} (e.g. {missing[0]})", file=sys.stderr)
            return 2
        check = [chk[i]["pass_rate"] for i in ids]
    rates = [sel[i]["pass_rate"] for i in ids]
    levels = [str(sel[i].get("level")) for i in ids]

    print(f"{len(ids)} prompts, mean pass rate {sum(rates) / len(rates):.3f}"
          + (f" (check {sum(check) / len(check):.3f})" if check else ""))
    print("\n| band | repeat | prompts | share of stream | mean pass rate | mean check pass rate |\n|---|---|---|---|---|---|")
    for b in band_rows(rates, check=check):
        print(f"| {b.label} | {b.repeat} | {b.num_prompts} | {b.stream_share:.3f} | {b.mean_rate:.3f} | {b.mean_check_rate:.3f} |")

    mixes = level_mixes(rates, levels, check=check)
    print("\n| levels | prompts kept | stream length | stream pass rate (check) | by the selection rates |\n|---|---|---|---|---|")
    for subset, s in mixes.items():
        print(f"| {','.join(subset)} | {s.num_prompts} | {s.num_draws} | {s.pass_rate:.3f} | {s.selection_pass_rate:.3f} |")

    everything = stream_stats(rates, check=check)
    low, high = PAPER_PASS_RATE_RANGE
    print(f"\nbalanced stream, all levels: expected pass rate {everything.pass_rate:.3f} "
          f"({'check' if check else 'selection'} estimate), paper: {low}-{high}")
    best = recommend_mix(mixes)
    if low <= everything.pass_rate <= high:
        print("=> in range: keep `levels: null` in conf/experiment/ablation_ladder_paper_regime.yaml")
    elif best is not None:
        print(f"=> harder mix: set `levels: [{', '.join(best)}]` under data.train.cpu_task in "
              f"conf/experiment/ablation_ladder_paper_regime.yaml (stream pass rate {mixes[best].pass_rate:.3f})")
    else:
        print("=> no level mix reaches the range: note it in the README and run with the nearest one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
