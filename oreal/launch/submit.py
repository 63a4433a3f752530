"""``oreal submit [--dry-run] OVERRIDES``: submit a sweep and return.

    oreal submit --dry-run cluster=slurm experiment=oreal_7b algo=oreal,grpo seed=0,1   # check, submit nothing

Runs ``python -m oreal.train -m OVERRIDES`` detached from the terminal (its own session, its
log in ``runs/submissions/``), waits until Slurm has accepted the jobs, prints their ids and
the log, and returns. The detached process keeps collecting the jobs' results (it is cheap),
so closing the shell loses nothing; `squeue`, the run folders and W&B show the progress.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

SWEEP_DIR = re.compile(r"sweep output dir : (\S+)")


def submitted_jobs(log_text: str) -> list[str]:
    """Slurm job ids (array tasks included) whose submitit folders exist under the sweep dir."""
    match = SWEEP_DIR.search(log_text)
    if not match:
        return []
    folder = Path(match.group(1)) / ".submitit"
    return sorted(p.name for p in folder.glob("*") if p.is_dir()) if folder.is_dir() else []


def sweep_points(overrides: Sequence[str]) -> list[list[str]]:
    """Every point of a sweep (``algo=oreal,grpo seed=0,1`` -> four override lists), expanded
    the way Hydra's basic sweeper does."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [point for batch in BasicSweeper.split_arguments(parsed, None) for point in batch]


def dry_run(overrides: Sequence[str]) -> int:
    """Validate every sweep point (config and layout) and print the job each would be."""
    from oreal.config.load import ConfigError, load_config
    from oreal.launch.roles import fleet

    points, bad = sweep_points(overrides), 0
    print(f"{len(points)} job(s) would be submitted:")
    for i, point in enumerate(points):
        try:
            cfg = load_config(point)
        except ConfigError as exc:
            bad += 1
            print(f"  #{i} INVALID {' '.join(point)}\n      {exc}")
            continue
        c = cfg.cluster
        print(f"  #{i} {cfg.name}/{cfg.algo.name} seed {cfg.seed}: {c.nodes} node(s) x {c.num_tasks_per_node} task(s), "
              f"{len(fleet(cfg, cpus=[0])) if c.rollout_nodes else 0} rollout engine(s), {c.timeout_min} min; "
              f"{' '.join(point)}")
    print("nothing submitted (--dry-run)" + (f"; {bad} invalid point(s)" if bad else ""))
    return 2 if bad else 0


def main(argv: Sequence[str], timeout_s: float = 300.0) -> int:
    ap = argparse.ArgumentParser(prog="oreal submit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 usage="oreal submit [--dry-run] cluster=NAME OVERRIDES...")
    ap.add_argument("--dry-run", action="store_true", help="validate every sweep point and print the jobs; submit nothing")
    args, argv = ap.parse_known_args(list(argv))
    if not any(a.startswith("cluster=") for a in argv):
        print("oreal submit: name the cluster, e.g. `oreal submit cluster=slurm experiment=oreal_7b algo=oreal,grpo`",
              file=sys.stderr)
        return 2
    if args.dry_run:
        return dry_run(argv)
    logs = Path("runs") / "submissions"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / time.strftime("%Y%m%d-%H%M%S.log")
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "oreal.train", "-m", *argv], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log.read_text()
        if submitted_jobs(text):
            break
        if proc.poll() is not None:
            print(f"oreal submit: the submission failed (exit {proc.returncode}); see {log}:\n{text[-2000:]}", file=sys.stderr)
            return 1
        time.sleep(0.5)
    else:
        print(f"oreal submit: no confirmation from Slurm within {timeout_s:.0f} s; still trying in pid {proc.pid}, log {log}",
              file=sys.stderr)
        return 1
    text = log.read_text()
    points = [line.split(" : ", 1)[1] for line in text.splitlines() if re.search(r"\t#\d+ : ", line)]
    print(f"submitted {len(points)} run(s) as Slurm job(s) {', '.join(submitted_jobs(text))}; "
          f"results are collected by pid {proc.pid} (detached), log {log}")
    for point in points:
        print(f"  {point}")
    sweep = SWEEP_DIR.search(text)
    if sweep:
        print(f"outcome of each run: `oreal status {sweep.group(1)}` (sacct shows FAILED for a run that failed)")
    return 0
