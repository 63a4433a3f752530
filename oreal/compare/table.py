"""Per-variant summaries over seeds: final, best and equal-wall-clock values, mean +- std.

*final* is the last logged value of an evaluation metric, and the mean of the last
``tail`` logged values of a per-step training metric (rewards, KL and lengths are noisy
step to step). *at equal wall-clock* is the metric's last value logged at or before the
time the fastest run of the sweep took to finish, so a variant that is slower per step is
judged on what it reached in the same time.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from oreal.compare.runs import Run

TIME = "time/elapsed_s"
IGNORED_CONFIG = ("seed", "run_dir", "cache_dir", "name", "logging", "cluster", "model.path")


@dataclass
class Stat:
    mean: float
    std: float  # sample std over seeds; 0 for one seed
    n: int

    def __str__(self) -> str:
        if math.isnan(self.mean):
            return "-"
        return f"{self.mean:.3f} +- {self.std:.3f}" if self.n > 1 else f"{self.mean:.3f}"


def stat(values: Iterable[Optional[float]]) -> Stat:
    vals = [v for v in values if v is not None]
    if not vals:
        return Stat(math.nan, math.nan, 0)
    return Stat(statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0, len(vals))


def final(run: Run, key: str, tail: int) -> Optional[float]:
    _, ys = run.series(key)
    if not ys:
        return None
    return ys[-1] if key.startswith("eval/") else statistics.fmean(ys[-tail:])


def best(run: Run, key: str) -> Optional[float]:
    _, ys = run.series(key)
    return max(ys) if ys else None


def at_time(run: Run, key: str, seconds: float) -> Optional[float]:
    xs, ys = run.series(key, TIME)
    before = [y for x, y in zip(xs, ys) if x <= seconds + 1e-9]
    return before[-1] if before else None


def run_seconds(run: Run) -> Optional[float]:
    times = [r[TIME] for r in run.history if TIME in r]
    return max(times) if times else None


@dataclass
class Summary:
    variant: str
    seeds: list[int]
    steps: Stat
    values: dict[str, Stat]  # column name -> statistic over seeds


def by_variant(runs: Sequence[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.variant, []).append(run)
    return groups


def summarize(runs: Sequence[Run], metric: str, extra: Sequence[str] = (), tail: int = 10) -> tuple[list[Summary], Optional[float]]:
    """One :class:`Summary` per variant (in first-seen order) and the equal wall-clock budget used."""
    times = [t for t in map(run_seconds, runs) if t is not None]
    budget = min(times) if times else None
    out = []
    for variant, group in by_variant(runs).items():
        values = {f"final {metric}": stat(final(r, metric, tail) for r in group),
                  f"best {metric}": stat(best(r, metric) for r in group)}
        if budget is not None:
            values[f"{metric} at {budget:.0f} s"] = stat(at_time(r, metric, budget) for r in group)
        for key in extra:
            values[f"final {key}"] = stat(final(r, key, tail) for r in group)
        steps = stat(max((r["step"] for r in run.history), default=None) for run in group)
        out.append(Summary(variant, sorted(r.seed for r in group), steps, values))
    return out, budget


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


def config_differences(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    """Config fields whose value differs between variants: field -> {variant: value}."""
    per_variant = {v: _flatten(group[0].config) for v, group in by_variant(runs).items()}
    keys = sorted(set().union(*per_variant.values())) if per_variant else []
    diffs = {}
    for key in keys:
        if key.startswith(IGNORED_CONFIG):
            continue
        values = {v: flat.get(key, "(unset)") for v, flat in per_variant.items()}
        if len({repr(x) for x in values.values()}) > 1:
            diffs[key] = values
    return diffs


def markdown(summaries: Sequence[Summary]) -> str:
    columns = list(summaries[0].values) if summaries else []
    lines = ["| variant | seeds | steps | " + " | ".join(columns) + " |", "|---" * (len(columns) + 3) + "|"]
    for s in summaries:
        cells = [str(s.values[c]) for c in columns]
        lines.append(f"| {s.variant} | {','.join(map(str, s.seeds))} | {s.steps.mean:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
