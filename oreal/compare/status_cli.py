"""``oreal status SWEEP_OR_RUN``: one line per run: its state, the step it reached, and why it
failed or stopped (from each run folder's ``status.json``, see :mod:`oreal.trainer.status`).

    oreal status runs/oreal_7b/sweep

Exit status 1 when any run failed, so scripts and CI can act on it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import yaml


def _num_steps(folder: Path) -> Optional[int]:
    try:
        return int(yaml.safe_load((folder / "config.yaml").read_text())["trainer"]["num_steps"])
    except (FileNotFoundError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


def lines(sweep: Path) -> tuple[list[str], int]:
    """The table's lines and the number of failed runs."""
    from oreal.compare.runs import run_folders
    from oreal.trainer.status import read_status

    rows, failed = [], 0
    for folder in run_folders(sweep):
        status = read_status(folder)
        total = _num_steps(folder)
        step = "-" if status is None or status.step is None else str(status.step)
        where = "" if status is None else f"job {status.slurm_job or status.job_id}" + (f" (restart {status.restart})" if status.restart != "0" else "")
        reason = "" if status is None or not status.reason else (f"{status.task} on {status.host}: " if status.state == "failed" else "") + status.reason
        failed += bool(status and status.state == "failed")
        name = str(folder.relative_to(sweep)) if folder != sweep else folder.name
        rows.append((name, status.state if status else "no status", f"{step}/{total or '?'}", where, reason))
    width = [max(len(r[i]) for r in rows + [("run", "state", "step", "where", "")]) for i in range(4)]
    out = ["  ".join(h.ljust(w) for h, w in zip(("run", "state", "step", "where"), width)) + "  reason"]
    out += ["  ".join(c.ljust(w) for c, w in zip(r[:4], width)) + "  " + r[4] for r in rows]
    return out, failed


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="oreal status", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep", type=Path, help="a sweep folder (or one run folder)")
    args = ap.parse_args(argv)
    try:
        table, failed = lines(args.sweep)
    except FileNotFoundError as exc:
        print(f"oreal status: {exc}", file=sys.stderr)
        return 2
    print("\n".join(table))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
