"""Difficulty balance of a pass-rate file (the paper-regime ladder): the per-source level filter,
the balanced stream's size and pass rate, band rows and level mixes, by hand."""

import json

import pytest

from oreal.algo import PassRateBand
from oreal.config.schema import FieldMap, SourceConfig
from oreal.data.difficulty import band_rows, level_mixes, recommend_mix, stream_stats
from oreal.data.pipeline import build_sampler
from oreal.data.sources import DataError, load_source

PASSRATE_FIELDS = FieldMap(problem="problem", answer="answer", pass_rate="pass_rate", subject="subject", level="level", id="id")


def passrate_file(tmp_path, rates_by_level):
    """An `oreal passrate`-shaped JSONL: one row per (level, rate)."""
    rows = [{"id": f"p{i}", "problem": f"q{i}", "answer": "1", "subject": f"s{level}", "level": str(level),
             "source": "cpu_task", "pass_rate": rate}
            for i, (level, rate) in enumerate((lv, r) for lv, rates in rates_by_level.items() for r in rates)]
    path = tmp_path / "passrates.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_stream_stats_by_hand():
    # repeats 6, 4, 4, 2, 0 -> 16 draws of 4 prompts; by the selection rates (6*0.1 + 4*0.3 + 4*0.5 + 2*0.7) / 16
    rates = [0.1, 0.3, 0.5, 0.7, 0.9]
    s = stream_stats(rates)
    assert (s.num_prompts, s.num_draws) == (4, 16)
    assert s.pass_rate == s.selection_pass_rate == pytest.approx(5.2 / 16)
    # an independent estimate finds the chosen prompts easier than the estimate that chose them
    s = stream_stats(rates, check=[0.3, 0.4, 0.5, 0.6, 1.0])
    assert s.pass_rate == pytest.approx((6 * 0.3 + 4 * 0.4 + 4 * 0.5 + 2 * 0.6) / 16)
    assert s.selection_pass_rate == pytest.approx(5.2 / 16)
    with pytest.raises(ValueError, match="5 selection rates but 2 check rates"):
        stream_stats(rates, check=[0.1, 0.2])


def test_band_rows_by_hand():
    rows = band_rows([0.0, 0.1, 0.3, 0.8, 1.0], check=[0.2, 0.0, 0.5, 0.9, 1.0])
    assert [r.label for r in rows] == ["[0, 0.2)", "[0.2, 0.4)", "[0.4, 0.6)", "[0.6, 0.8)", "no band (dropped)"]
    assert [r.num_prompts for r in rows] == [2, 1, 0, 0, 2]
    assert [r.stream_share for r in rows] == pytest.approx([12 / 16, 4 / 16, 0, 0, 0])
    assert rows[0].mean_rate == pytest.approx(0.05) and rows[0].mean_check_rate == pytest.approx(0.1)
    assert rows[4].mean_check_rate == pytest.approx(0.95)


def test_level_mixes_and_the_recommended_harder_mix():
    # level 1 easy (0.7 and 0.9: one kept x2), level 2 hard (0.1 x6), level 3 middling (0.5 x4)
    rates, levels = [0.7, 0.9, 0.1, 0.5], ["1", "1", "2", "3"]
    mixes = level_mixes(rates, levels)
    assert set(mixes) == {("1", "2", "3"), ("1", "2"), ("1", "3"), ("2", "3"), ("1",), ("2",), ("3",)}
    assert mixes[("1", "2", "3")].pass_rate == pytest.approx((2 * 0.7 + 6 * 0.1 + 4 * 0.5) / 12)  # 0.333
    assert mixes[("1", "3")].pass_rate == pytest.approx((2 * 0.7 + 4 * 0.5) / 6)  # 0.567
    assert recommend_mix(mixes) == ("1", "2", "3")  # all levels are already in 0.2-0.4
    # level 2 estimated at 0.45 (x4) but 0.3 by the check: all levels give 0.46 by the check, too easy;
    # levels 2+3 give 0.4 and level 2 alone 0.3, both in range: the mix with more levels wins
    mixes = level_mixes([0.7, 0.9, 0.45, 0.5], levels, check=[0.7, 0.9, 0.3, 0.5])
    assert mixes[("1", "2", "3")].pass_rate == pytest.approx((2 * 0.7 + 4 * 0.3 + 4 * 0.5) / 10)  # 0.46 by the check
    assert mixes[("2", "3")].pass_rate == pytest.approx(0.4)
    assert recommend_mix(mixes) == ("2", "3")  # the most levels within 0.2-0.4
    assert recommend_mix(mixes, target=(0.0, 0.1)) is None


def test_source_levels_keep_only_those_levels(tmp_path):
    path = passrate_file(tmp_path, {1: [0.9, 0.5], 2: [0.1], 3: [0.3]})
    src = SourceConfig(path=str(path), fields=PASSRATE_FIELDS, levels=["2", "3"])
    assert [p.id for p in load_source(src)] == ["p2", "p3"]
    assert [p.pass_rate for p in load_source(src)] == [0.1, 0.3]
    with pytest.raises(DataError, match=r"no prompt has a level in levels=\['7'\]; its levels: 1, 2, 3"):
        load_source(SourceConfig(path=str(path), fields=PASSRATE_FIELDS, levels=["7"]))


def test_the_paper_regime_stream_repeats_by_band_and_drops_easy_prompts(tmp_path):
    """The experiment's data path end to end: pass-rate file -> difficulty balance -> sampler."""
    from oreal.config import load_config

    path = passrate_file(tmp_path, {1: [0.9, 0.65], 2: [0.1], 3: [0.3]})
    every_level = ["experiment=ablation_ladder_paper_regime", f"data.train.cpu_task.path={path}",
                   "data.train.cpu_task.levels=null"]
    cfg = load_config(every_level)
    assert cfg.data.difficulty_balance
    sampler = build_sampler(cfg)
    stream = sorted(p.id for p in sampler.sources["cpu_task"])
    assert stream == ["p1"] * 2 + ["p2"] * 6 + ["p3"] * 4  # 0.9 dropped
    # the shipped mix (levels 2-4) drops level 1; level 4 is absent from this file
    cfg = load_config(["experiment=ablation_ladder_paper_regime", f"data.train.cpu_task.path={path}"])
    assert [str(x) for x in cfg.data.train["cpu_task"].levels] == ["2", "3", "4"]
    assert sorted(p.id for p in build_sampler(cfg).sources["cpu_task"]) == ["p2"] * 6 + ["p3"] * 4


def test_custom_bands():
    assert stream_stats([0.5, 0.95], bands=[PassRateBand(0.0, 1.01, 3)]).num_draws == 6
