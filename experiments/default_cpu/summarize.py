"""Held-out pass@1 of the warm-started model (step 0) and after RL, per run and over seeds.

    python experiments/default_cpu/summarize.py runs/default_cpu/seed0 runs/default_cpu/seed1 ...
"""

import json
import statistics
import sys
from pathlib import Path

KEYS = ("eval/cpu_heldout/pass@1", "eval/cpu_heldout/maj@4", "eval/math500_100/pass@1")


def evals(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if KEYS[0] in r]


def main(paths):
    print("| run | step | " + " | ".join(k.replace("eval/", "") for k in KEYS) + " |")
    print("|---|---|" + "---|" * len(KEYS))
    deltas = []
    for path in map(Path, paths):
        rows = evals(path)
        for r in (rows[0], rows[-1]):
            print(f"| {path.name} | {r['step']} | " + " | ".join(f"{r.get(k, float('nan')):.3f}" for k in KEYS) + " |")
        deltas.append(rows[-1][KEYS[0]] - rows[0][KEYS[0]])
    mean = statistics.mean(deltas)
    std = statistics.stdev(deltas) if len(deltas) > 1 else 0.0
    print(f"\nheld-out pass@1 gain from RL: {100 * mean:+.1f} points (+- {100 * std:.1f} over {len(deltas)} seeds; per seed: "
          + ", ".join(f"{100 * d:+.1f}" for d in deltas) + ")")


if __name__ == "__main__":
    main(sys.argv[1:])
