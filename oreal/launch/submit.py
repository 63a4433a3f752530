"""``oreal submit OVERRIDES``: submit a sweep and return.

Runs ``python -m oreal.train -m OVERRIDES`` detached from the terminal (its own session, its
log in ``runs/submissions/``), waits until Slurm has accepted the jobs, prints their ids and
the log, and returns. The detached process keeps collecting the jobs' results (it is cheap),
so closing the shell loses nothing; `squeue`, the run folders and W&B show the progress.
"""

from __future__ import annotations

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


def main(argv: Sequence[str], timeout_s: float = 300.0) -> int:
    if not any(a.startswith("cluster=") for a in argv):
        print("oreal submit: name the cluster, e.g. `oreal submit cluster=slurm experiment=oreal_7b algo=oreal,grpo`",
              file=sys.stderr)
        return 2
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
