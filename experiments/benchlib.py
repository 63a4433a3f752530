"""What every benchmark script in experiments/ shares: alternating repeats, their statistics, the
machine's load, and the Markdown table the READMEs record.

A benchmark figure has to survive a rerun. A single run of system A then system B on a 2-core
machine measures the machine as much as the systems: any other work that starts or stops during
the run lands on one side only. So the scripts:

- run the systems in alternating order, A B A B ... (``alternating_order``, ``run_alternating``),
  ``--repeats`` times each; a system that must not share a process between repeats (peak memory
  is per process; vLLM in-process changes process-wide thread state) runs each repeat in a fresh
  one (``in_fresh_process`` / ``write_result``). In A B A B every run but the first follows a run
  of the other system, so after-effects (a warm page cache, a hot core) fall on both sides alike.
- report per system the median and the min-max spread over repeats (``Spread``), and a ratio as
  the ratio of the medians with its range: min and max of the ratios of the runs of one round,
  which ran next to each other (``Ratio``);
- record the load before and after (``snapshot``, ``MachineLoad``) and print a warning row in the
  table when the machine was not quiet (``MachineLoad.warnings``).

The quiet-machine rule, for a machine with ``c`` CPUs (``c`` = ``os.cpu_count()``):

1. *before* (what matters most): the 1-minute load average when the script starts is at most
   ``0.1 c`` (0.2 on 2 cores). It is measured before the benchmark has done anything, so all of
   it is other work (or a benchmark that just ended: then wait until it decays, about 2 min).
2. *during* (where Linux's /proc/stat counts exactly these ``c`` CPUs): the CPU time the whole
   machine spent busy during the run (steal time from a VM's neighbours included), less the CPU
   time of this script and its reaped child processes, averages at most ``0.1 c`` CPUs. This is
   the direct measure of other work; the load average cannot give it, because the benchmark's
   own threads are in it.
3. *after*: the 1-minute load average at the end is at most ``1.25 c``. Each benchmark here
   keeps about one runnable thread per core, so a load near ``c`` at the end is its own; clearly
   above it means something else was runnable too. This is the weakest check: the benchmark's
   own short bursts (grading workers beside torch threads) can raise it a little.

Other work worth 0.1 CPU per CPU can still slow a benchmark that uses every core by up to about
10%, so a ratio near 1 needs a quiet verdict *and* a range that does not straddle the claim.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, TypeVar

QUIET_LOAD_PER_CPU = 0.1  # rules 1 and 2: other work allowed, in CPUs per CPU
AFTER_LOAD_PER_CPU = 1.25  # rule 3: 1-minute load allowed at the end, per CPU
RESULT_FILE = "result.json"

T = TypeVar("T")


# ---- alternating repeats ------------------------------------------------------------------------
def alternating_order(systems: Sequence[str], repeats: int) -> list[tuple[int, str]]:
    """``(repeat, system)`` in run order: every system once per round, rounds one after another
    (A B A B ... for two systems, A B C A B C ... for three)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if len(set(systems)) != len(systems) or not systems:
        raise ValueError(f"systems must be distinct and non-empty, got {list(systems)}")
    return [(r, s) for r in range(repeats) for s in systems]


def run_alternating(systems: Sequence[str], repeats: int, measure: Callable[[str, int], T]) -> dict[str, list[T]]:
    """Call ``measure(system, repeat)`` in :func:`alternating_order`; the results per system, in
    repeat order (the dict keeps the order of ``systems``)."""
    order = alternating_order(systems, repeats)
    results: dict[str, list[T]] = {s: [] for s in systems}
    for i, (repeat, system) in enumerate(order, 1):
        print(f"[bench {i}/{len(order)}] {system}, repeat {repeat + 1} of {repeats}", file=sys.stderr, flush=True)
        results[system].append(measure(system, repeat))
    return results


def in_fresh_process(argv: Sequence[str], cwd: Optional[Path] = None) -> dict:
    """Run ``argv --result-dir DIR`` as a new process and return the JSON it wrote with
    :func:`write_result`. DIR is a new temporary folder, the worker's scratch space too; it is
    deleted afterwards. A failing worker stops the benchmark (``CalledProcessError``)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        subprocess.run([*argv, "--result-dir", tmp], check=True, cwd=cwd)
        return json.loads((Path(tmp) / RESULT_FILE).read_text())


def write_result(result_dir: Path, result: dict) -> None:
    """The worker's half of :func:`in_fresh_process`."""
    (Path(result_dir) / RESULT_FILE).write_text(json.dumps(result, indent=2))


# ---- statistics ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spread:
    """Median and min-max of one measure over repeats."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        if not values:
            raise ValueError("no values: a system needs at least one repeat")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def fmt(self, spec: str = ".2f") -> str:
        """``2.09 (2.05-2.15)``; the value alone when the spread is zero at this precision."""
        med, low, high = (format(v, spec) for v in (self.median, self.low, self.high))
        return med if low == high else f"{med} ({low}-{high})"


@dataclass(frozen=True)
class Ratio:
    """``median(numerator) / median(denominator)``, and the min and max of the per-round ratios
    (runs of one round ran next to each other, so they share the machine's state). The ratio of
    medians always lies in that range: ``a_i >= m b_i`` for every i gives
    ``median(a) >= m median(b)``."""

    value: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, numerator: Sequence[float], denominator: Sequence[float]) -> "Ratio":
        if len(numerator) != len(denominator) or not numerator:
            raise ValueError(f"a ratio pairs the runs of each round: got {len(numerator)} and {len(denominator)} values")
        if min(denominator) <= 0:
            raise ValueError(f"denominator values must be > 0, got {list(denominator)}")
        per_round = [a / b for a, b in zip(numerator, denominator)]
        return cls(statistics.median(numerator) / statistics.median(denominator), min(per_round), max(per_round),
                   len(per_round))

    def fmt(self, spec: str = ".2f") -> str:
        rounds = "round" if self.n == 1 else "rounds"
        return f"{self.value:{spec}} (range {self.low:{spec}}-{self.high:{spec}} over {self.n} {rounds})"


# ---- machine load -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """The machine at one moment: ``busy_cpu_s`` is every CPU's busy time from /proc/stat (None
    where it is missing or counts other CPUs than ``cpu_count``); ``own_cpu_s`` is this process's
    CPU time plus that of its finished (reaped) child processes."""

    time_s: float
    cpu_count: int
    loadavg: tuple[float, float, float]
    busy_cpu_s: Optional[float]
    own_cpu_s: float


def _busy_cpu_s(cpu_count: int) -> Optional[float]:
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    if sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit()) != cpu_count:
        return None  # e.g. a container that sees the host's CPUs: others' work there is not ours
    # cpu user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    ticks = [int(x) for x in lines[0].split()[1:9]]
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
    return busy / os.sysconf("SC_CLK_TCK")


def snapshot() -> Snapshot:
    cpus = os.cpu_count() or 1
    own = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    return Snapshot(time.monotonic(), cpus, tuple(round(x, 2) for x in os.getloadavg()), _busy_cpu_s(cpus), own)


@dataclass(frozen=True)
class MachineLoad:
    """Take ``before`` when the script starts and ``after`` once every worker has exited."""

    before: Snapshot
    after: Snapshot

    @property
    def others_cpus(self) -> Optional[float]:
        """CPUs other processes kept busy on average during the run (rule 2), or None."""
        if self.before.busy_cpu_s is None or self.after.busy_cpu_s is None:
            return None
        wall = self.after.time_s - self.before.time_s
        others = (self.after.busy_cpu_s - self.before.busy_cpu_s) - (self.after.own_cpu_s - self.before.own_cpu_s)
        return max(0.0, others / wall) if wall > 0 else None

    def warnings(self) -> list[str]:
        """One line per broken rule of the module docstring; empty on a quiet machine."""
        cpus = self.before.cpu_count
        out = []
        quiet = QUIET_LOAD_PER_CPU * cpus
        if self.before.loadavg[0] > quiet:
            out.append(f"1-min load average {self.before.loadavg[0]:.2f} before the run, above {quiet:.2f} "
                       f"({QUIET_LOAD_PER_CPU:g} per CPU): other work was running or had just ended")
        others = self.others_cpus
        if others is not None and others > quiet:
            out.append(f"other processes kept {others:.2f} CPUs busy on average during the run, above {quiet:.2f}")
        after = AFTER_LOAD_PER_CPU * cpus
        if self.after.loadavg[0] > after:
            out.append(f"1-min load average {self.after.loadavg[0]:.2f} after the run, above {after:.2f} "
                       f"({AFTER_LOAD_PER_CPU:g} per CPU): more runnable work than this benchmark's own")
        return out

    def describe(self) -> str:
        b, a = (" / ".join(f"{x:.2f}" for x in s.loadavg) for s in (self.before, self.after))
        others = self.others_cpus
        during = "not measured" if others is None else f"{others:.2f} CPUs"
        return (f"{self.before.cpu_count} CPUs; load average (1 / 5 / 15 min) {b} before, {a} after; "
                f"other processes during the run: {during}")

    def as_dict(self) -> dict:
        return {"before": asdict(self.before), "after": asdict(self.after), "others_cpus": self.others_cpus,
                "warnings": self.warnings()}


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU model with its widest vector instructions and whether it has bf16 ones. Figures
    from CPUs that differ here do not compare: without ``avx512_bf16``/``amx_bf16`` torch
    emulates bf16 matrix products, several times slower than float32."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"

    def field(name: str) -> str:
        return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(name)), "")

    flags = set(field("flags").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    bf16 = "bf16 instructions" if flags & {"avx512_bf16", "amx_bf16"} else "no bf16 instructions"
    return f"{field('model name') or 'unknown CPU'} ({vector}, {bf16})"


# ---- the table ----------------------------------------------------------------------------------
def render_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], *, load: MachineLoad,
                 systems: Sequence[str], repeats: int, ratios: Sequence[tuple[str, Ratio]] = (),
                 ratio_spec: str = ".2f", date: Optional[datetime.date] = None, cpu: Optional[str] = None) -> str:
    """The Markdown block a README records: title with the date, order and machine lines (the
    CPU, ``cpu_description()`` unless given, and the load), the table (with one WARNING row per
    broken quiet-machine rule), then the ratios."""
    date = date or datetime.date.today()
    cpu = cpu or cpu_description()
    warnings = load.warnings()
    if repeats < 3:
        warnings.append(f"only {repeats} repeat{'s' if repeats > 1 else ''} per system: too few for a spread to mean much")
    pad = [""] * (len(columns) - 1)
    order = ", ".join(s for _, s in alternating_order(systems, min(repeats, 2))) + (", ..." if repeats > 2 else "")
    lines = [f"**{title}**, measured {date.isoformat()}: {repeats} repeat{'s' if repeats > 1 else ''} per system "
             f"in alternating order ({order}); cells are median (min-max) over repeats.",
             "",
             f"Machine: {cpu}, {load.describe()}. Quiet machine: {'no' if load.warnings() else 'yes'}.",
             "",
             "| " + " | ".join(columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["| " + " | ".join([f"**WARNING:** {w}", *pad]) + " |" for w in warnings]
    if ratios:
        lines += ["", *(f"- {label}: {r.fmt(ratio_spec)}" for label, r in ratios)]
    return "\n".join(lines)
