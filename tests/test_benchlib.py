"""experiments/benchlib.py, the benchmark scripts' shared helper: run order, statistics, the
quiet-machine rule and the table, on fake timings and fake machine snapshots."""

import datetime
import os
import sys
from pathlib import Path

import pytest

# the scripts import it the same way: experiments/ is not a package of the product
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import benchlib  # noqa: E402
from benchlib import MachineLoad, Ratio, Snapshot, Spread  # noqa: E402


# ---- order --------------------------------------------------------------------------------------
def test_alternating_order_two_and_three_systems():
    assert benchlib.alternating_order(["trl", "oreal"], 3) == [
        (0, "trl"), (0, "oreal"), (1, "trl"), (1, "oreal"), (2, "trl"), (2, "oreal")]
    assert [s for _, s in benchlib.alternating_order(["a", "b", "c"], 2)] == ["a", "b", "c", "a", "b", "c"]


@pytest.mark.parametrize("systems, repeats", [(["a", "b"], 0), (["a", "a"], 3), ([], 3)])
def test_alternating_order_rejects_bad_input(systems, repeats):
    with pytest.raises(ValueError):
        benchlib.alternating_order(systems, repeats)


def test_run_alternating_calls_in_order_and_groups_by_system():
    fake = {("trl", 0): 2.09, ("oreal", 0): 2.13, ("trl", 1): 2.13, ("oreal", 1): 2.08, ("trl", 2): 2.11, ("oreal", 2): 2.10}
    calls = []

    def measure(system, repeat):
        calls.append((system, repeat))
        return fake[system, repeat]

    out = benchlib.run_alternating(["trl", "oreal"], 3, measure)
    assert calls == [("trl", 0), ("oreal", 0), ("trl", 1), ("oreal", 1), ("trl", 2), ("oreal", 2)]
    assert out == {"trl": [2.09, 2.13, 2.11], "oreal": [2.13, 2.08, 2.10]}
    assert list(out) == ["trl", "oreal"]


WORKER = ("import json, os, pathlib, sys; d = sys.argv[sys.argv.index('--result-dir') + 1]; "
          "pathlib.Path(d, 'result.json').write_text(json.dumps({'pid': os.getpid(), 'system': sys.argv[1], 'dir': d}))")


def test_fresh_process_per_repeat():
    out = benchlib.run_alternating(["a", "b"], 2, lambda s, r: benchlib.in_fresh_process([sys.executable, "-c", WORKER, s]))
    assert [r["system"] for r in out["a"] + out["b"]] == ["a", "a", "b", "b"]
    pids = {r["pid"] for r in out["a"] + out["b"]}
    assert len(pids) == 4 and os.getpid() not in pids
    assert not any(Path(r["dir"]).exists() for r in out["a"] + out["b"])  # scratch folders are removed


def test_fresh_process_failure_stops_the_benchmark():
    with pytest.raises(Exception, match="returned non-zero exit status 3"):
        benchlib.in_fresh_process([sys.executable, "-c", "raise SystemExit(3)"])


# ---- statistics ---------------------------------------------------------------------------------
def test_spread_median_min_max():
    s = Spread.of([2.13, 2.09, 2.20])
    assert (s.median, s.low, s.high, s.n) == (2.13, 2.09, 2.20, 3)
    assert s.fmt() == "2.13 (2.09-2.20)"
    assert Spread.of([4, 1, 3, 2]).median == 2.5
    assert Spread.of([4294.4, 4100.2, 5261.0]).fmt(",.0f") == "4,294 (4,100-5,261)"
    assert Spread.of([0.6125, 0.6125, 0.6125]).fmt(".3f") == "0.613"  # no spread: the value alone
    with pytest.raises(ValueError):
        Spread.of([])


def test_ratio_of_medians_and_its_range_over_rounds():
    oreal, trl = [2.13, 2.08, 2.10], [2.09, 2.13, 2.10]
    r = Ratio.of(oreal, trl)
    assert r.value == pytest.approx(2.10 / 2.10)
    assert r.low == pytest.approx(2.08 / 2.13)
    assert r.high == pytest.approx(2.13 / 2.09)
    assert r.n == 3
    assert r.fmt() == "1.00 (range 0.98-1.02 over 3 rounds)"
    # the old single-shot claim: one round, so no range to speak of
    assert Ratio.of([2.00], [2.94]).fmt() == "0.68 (range 0.68-0.68 over 1 round)"


def test_ratio_of_medians_lies_in_the_per_round_range():
    a, b = [1.0, 3.0, 5.0, 2.0], [1.0, 5.0, 3.0, 4.0]
    r = Ratio.of(a, b)
    assert r.value == pytest.approx(2.5 / 3.5)
    assert (r.low, r.high) == pytest.approx((0.5, 5 / 3))
    assert r.low <= r.value <= r.high


@pytest.mark.parametrize("num, den", [([1.0, 2.0], [1.0]), ([], []), ([1.0], [0.0])])
def test_ratio_rejects_unpaired_or_zero(num, den):
    with pytest.raises(ValueError):
        Ratio.of(num, den)


# ---- the quiet-machine rule ---------------------------------------------------------------------
def snap(t, load1, busy=None, own=0.0, cpus=2):
    return Snapshot(time_s=t, cpu_count=cpus, loadavg=(load1, 0.0, 0.0), busy_cpu_s=busy, own_cpu_s=own)


def test_quiet_machine_has_no_warnings():
    # the benchmark itself keeps both cores busy: load 2.0 at the end and 190 of 200 busy
    # CPU-seconds its own; the other 10 over 100 s are 0.1 CPUs, under 0.1 per CPU x 2 CPUs
    load = MachineLoad(snap(0.0, 0.02, busy=1000.0, own=5.0), snap(100.0, 2.0, busy=1200.0, own=195.0))
    assert load.others_cpus == pytest.approx(0.10)
    assert load.warnings() == []


def test_busy_before_is_a_warning():
    load = MachineLoad(snap(0.0, 0.85), snap(100.0, 1.9))
    assert load.others_cpus is None  # no /proc/stat: rule 2 is skipped, not failed
    assert load.warnings() == ["1-min load average 0.85 before the run, above 0.20 (0.1 per CPU): "
                               "other work was running or had just ended"]
    assert MachineLoad(snap(0.0, 0.20), snap(100.0, 1.9)).warnings() == []  # the limit itself is quiet


def test_other_work_during_the_run_is_a_warning():
    # 150 of the 200 busy CPU-seconds were ours: others used 50 s over 100 s = 0.5 CPUs
    load = MachineLoad(snap(0.0, 0.0, busy=0.0, own=0.0), snap(100.0, 2.0, busy=200.0, own=150.0))
    assert load.others_cpus == pytest.approx(0.5)
    assert load.warnings() == ["other processes kept 0.50 CPUs busy on average during the run, above 0.20"]


def test_load_after_above_one_and_a_quarter_per_cpu_is_a_warning():
    assert MachineLoad(snap(0.0, 0.0), snap(100.0, 2.5)).warnings() == []
    assert MachineLoad(snap(0.0, 0.0), snap(100.0, 3.1)).warnings() == [
        "1-min load average 3.10 after the run, above 2.50 (1.25 per CPU): more runnable work than this benchmark's own"]
    # on 16 CPUs the same loads are quiet
    assert MachineLoad(snap(0.0, 0.85, cpus=16), snap(100.0, 3.1, cpus=16)).warnings() == []


def test_snapshot_counts_this_process_cpu_time():
    before = benchlib.snapshot()
    x = 0
    while benchlib.snapshot().own_cpu_s - before.own_cpu_s < 0.05:
        x += 1
    after = benchlib.snapshot()
    assert after.cpu_count == os.cpu_count() and len(after.loadavg) == 3
    assert after.time_s > before.time_s
    others = MachineLoad(before, after).others_cpus
    assert others is None or others >= 0.0


# ---- the table ----------------------------------------------------------------------------------
def test_table_golden():
    load = MachineLoad(Snapshot(0.0, 2, (0.85, 0.5, 0.25), 0.0, 0.0), Snapshot(100.0, 2, (1.9, 1.2, 0.6), 180.0, 170.0))
    trl, oreal = [2.09, 2.13, 2.11], [2.13, 2.08, 2.10]
    text = benchlib.render_table(
        "oreal vs TRL", ["system", "s / step", "peak RSS (MB)"],
        [["trl_grpo", Spread.of(trl).fmt(), "1290"], ["oreal_grpo", Spread.of(oreal).fmt(), "585"]],
        load=load, systems=["trl_grpo", "oreal_grpo"], repeats=3,
        ratios=[("oreal_grpo / trl_grpo, s / step", Ratio.of(oreal, trl))], date=datetime.date(2026, 11, 27),
        cpu="AMD EPYC (AVX2, no bf16 instructions)")
    assert text == """\
**oreal vs TRL**, measured 2026-11-27: 3 repeats per system in alternating order (trl_grpo, oreal_grpo, trl_grpo, oreal_grpo, ...); cells are median (min-max) over repeats.

Machine: AMD EPYC (AVX2, no bf16 instructions), 2 CPUs; load average (1 / 5 / 15 min) 0.85 / 0.50 / 0.25 before, 1.90 / 1.20 / 0.60 after; other processes during the run: 0.10 CPUs. Quiet machine: no.

| system | s / step | peak RSS (MB) |
|---|---|---|
| trl_grpo | 2.11 (2.09-2.13) | 1290 |
| oreal_grpo | 2.10 (2.08-2.13) | 585 |
| **WARNING:** 1-min load average 0.85 before the run, above 0.20 (0.1 per CPU): other work was running or had just ended |  |  |

- oreal_grpo / trl_grpo, s / step: 1.00 (range 0.98-1.02 over 3 rounds)"""


def test_table_flags_a_single_repeat_and_says_quiet():
    load = MachineLoad(snap(0.0, 0.0), snap(10.0, 1.0))
    text = benchlib.render_table("x", ["system", "s"], [["a", "1.00"], ["b", "2.00"]], load=load, systems=["a", "b"],
                                 repeats=1, date=datetime.date(2026, 11, 27))
    assert "1 repeat per system in alternating order (a, b);" in text
    assert "Quiet machine: yes." in text
    assert text.endswith("| **WARNING:** only 1 repeat per system: too few for a spread to mean much |  |")


def test_cpu_description_names_the_vector_and_bf16_instructions(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 fma\n")
    assert benchlib.cpu_description(info) == "AMD EPYC (AVX2, no bf16 instructions)"
    info.write_text("model name\t: Intel Xeon\nflags\t\t: avx2 avx512f avx512_bf16 amx_tile\n")
    assert benchlib.cpu_description(info) == "Intel Xeon (AVX-512, bf16 instructions)"
