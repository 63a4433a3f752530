"""Learning curves: one colour per variant, the mean over seeds as a line, min-max over seeds as
a band; one row against steps, one against wall-clock seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from oreal.compare.runs import Run
from oreal.compare.table import TIME, by_variant


def _mean_band(runs: Sequence[Run], key: str, x: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeds resampled onto the union of their x values; before its first and after its last
    point a seed holds its first / last value (seeds of one variant need not end together in
    wall-clock time)."""
    series = [run.series(key, x) for run in runs]
    series = [(np.asarray(xs), np.asarray(ys)) for xs, ys in series if xs]
    if not series:
        return (np.empty(0),) * 4
    grid = np.unique(np.concatenate([xs for xs, _ in series]))
    stacked = np.stack([np.interp(grid, xs, ys) for xs, ys in series])
    return grid, stacked.mean(0), stacked.min(0), stacked.max(0)


_DASHES = ("-", "--", ":", "-.")


def line_style(i: int) -> tuple[int, str]:
    """Variant ``i``'s (tab10 colour index, line style): the colours first, then the same
    colours dashed, so up to 40 variants are told apart."""
    return i % 10, _DASHES[(i // 10) % len(_DASHES)]


def plot(runs: Sequence[Run], metrics: Sequence[str], path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = by_variant(runs)
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(2, len(metrics), figsize=(4.2 * len(metrics), 6.4), squeeze=False)
    for col, key in enumerate(metrics):
        for row, (x, label) in enumerate((("step", "step"), (TIME, "wall-clock (s)"))):
            ax = axes[row][col]
            for i, (variant, group) in enumerate(groups.items()):
                grid, mean, lo, hi = _mean_band(group, key, x)
                if grid.size == 0:
                    continue
                colour, dash = line_style(i)
                ax.plot(grid, mean, color=colours(colour), ls=dash, label=f"{variant} (n={len(group)})", lw=1.6)
                ax.fill_between(grid, lo, hi, color=colours(colour), alpha=0.18, lw=0)
            ax.set_xlabel(label)
            ax.set_ylabel(key)
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3) or 1, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08 + 0.03 * ((len(labels) - 1) // 3), 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
