"""Offline difficulty balance in numbers: what the balanced stream of a pass-rate file looks like.

Balancing (:func:`oreal.data.sampler.balance`) repeats each prompt by the band of its estimated
pass rate and drops the easy ones. Choosing prompts by a K-sample estimate also chooses its
noise: a prompt estimated at 1/8 is, on average, easier than 1/8. So the stream's real pass rate
is measured on an independent estimate (``check``: the same prompts sampled again, another
seed); the estimate that did the choosing (``selection_pass_rate``) reads low.

All functions take per-prompt lists in the same order: ``rates`` (the estimate that sets the
repeats), optional ``check`` rates, and ``levels`` where a level mix is wanted.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Optional, Sequence

from oreal.algo import OREAL_BANDS, PassRateBand, difficulty_repeats

# The paper's balanced prompts sit at pass rates of about 0.2-0.4 under its starting policy.
PAPER_PASS_RATE_RANGE = (0.2, 0.4)


@dataclass(frozen=True)
class StreamStats:
    num_prompts: int  # prompts the stream keeps (repeat > 0)
    num_draws: int  # its length: the sum of the repeats
    pass_rate: float  # expected pass rate of one draw, by the check rates (the selection rates without them)
    selection_pass_rate: float  # the same by the rates that chose the repeats


def _weighted_mean(weights: Sequence[int], values: Sequence[float]) -> float:
    total = sum(weights)
    return sum(w * v for w, v in zip(weights, values)) / total if total else float("nan")


def stream_stats(rates: Sequence[float], bands: Sequence[PassRateBand] = OREAL_BANDS,
                 check: Optional[Sequence[float]] = None) -> StreamStats:
    """Size and expected pass rate of the stream that balancing ``rates`` makes:
    ``sum_i repeat_i * q_i / sum_i repeat_i`` with ``q`` the check rates (or ``rates``)."""
    if check is not None and len(check) != len(rates):
        raise ValueError(f"{len(rates)} selection rates but {len(check)} check rates; they must cover the same prompts")
    repeats = difficulty_repeats(rates, bands)
    return StreamStats(num_prompts=sum(r > 0 for r in repeats), num_draws=sum(repeats),
                       pass_rate=_weighted_mean(repeats, check if check is not None else rates),
                       selection_pass_rate=_weighted_mean(repeats, rates))


@dataclass(frozen=True)
class BandRow:
    label: str  # "[0.2, 0.4)" or ">= 0.8 / no band"
    repeat: int
    num_prompts: int
    stream_share: float  # share of the stream's draws
    mean_rate: float  # mean selection rate of its prompts
    mean_check_rate: float  # mean check rate of its prompts (nan without check rates)


def band_rows(rates: Sequence[float], bands: Sequence[PassRateBand] = OREAL_BANDS,
              check: Optional[Sequence[float]] = None) -> list[BandRow]:
    """One row per band, then one for the prompts in no band (dropped)."""
    check = check if check is not None else [float("nan")] * len(rates)
    total = sum(difficulty_repeats(rates, bands)) or 1
    members: list[list[int]] = [[] for _ in range(len(bands) + 1)]  # the last: in no band
    for i, rate in enumerate(rates):
        members[next((j for j, b in enumerate(bands) if b.low <= rate < b.high), len(bands))].append(i)
    labels = [(f"[{b.low:g}, {b.high:g})", b.repeat) for b in bands] + [("no band (dropped)", 0)]
    rows = []
    for (label, repeat), idx in zip(labels, members):
        n = len(idx)
        rows.append(BandRow(label, repeat, n, n * repeat / total,
                            sum(rates[i] for i in idx) / n if n else float("nan"),
                            sum(check[i] for i in idx) / n if n else float("nan")))
    return rows


def level_mixes(rates: Sequence[float], levels: Sequence[str], bands: Sequence[PassRateBand] = OREAL_BANDS,
                check: Optional[Sequence[float]] = None) -> dict[tuple[str, ...], StreamStats]:
    """The balanced stream of every non-empty subset of levels (prompts of other levels removed
    before balancing), keyed by the sorted subset."""
    distinct = sorted(set(levels))
    out = {}
    for size in range(len(distinct), 0, -1):
        for subset in itertools.combinations(distinct, size):
            idx = [i for i, level in enumerate(levels) if level in subset]
            out[subset] = stream_stats([rates[i] for i in idx], bands, None if check is None else [check[i] for i in idx])
    return out


def recommend_mix(mixes: dict[tuple[str, ...], StreamStats],
                  target: tuple[float, float] = PAPER_PASS_RATE_RANGE) -> Optional[tuple[str, ...]]:
    """The level subset whose stream pass rate lies in ``target``, keeping as many levels as
    possible (then the one nearest the middle of the range); None when no subset does."""
    mid = (target[0] + target[1]) / 2
    fitting = [(subset, s) for subset, s in mixes.items() if s.num_draws and target[0] <= s.pass_rate <= target[1]]
    if not fitting:
        return None
    return min(fitting, key=lambda item: (-len(item[0]), abs(item[1].pass_rate - mid)))[0]
