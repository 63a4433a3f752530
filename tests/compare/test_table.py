"""`oreal compare` arithmetic on hand-made runs: every number checked against a hand computation."""

import json
import math

import pytest

from oreal.compare import Run, config_differences, summarize
from oreal.compare.runs import load_local, load_wandb, variant_of
from oreal.compare.table import at_time, markdown

P = "eval/cpu_heldout/pass@1"


def run(variant, seed, evals, kl=(), seconds_per_step=10.0, algo="grpo"):
    """``evals``: pass@1 at steps 0, 2, 4, ...; ``kl``: kl/ref at steps 1, 2, ..."""
    rows = {}
    for i, v in enumerate(evals):
        rows.setdefault(2 * i, {})[P] = v
    for i, v in enumerate(kl, 1):
        rows.setdefault(i, {})["kl/ref"] = v
    history = [{"step": s, "time/elapsed_s": s * seconds_per_step, **r} for s, r in sorted(rows.items())]
    return Run(f"{variant}-{seed}", variant, seed, {"seed": seed, "algo": {"name": algo, "kl_coef": 0.01}}, history)


def test_final_best_and_equal_wall_clock_over_seeds():
    runs = [run("a", 0, [0.5, 0.7, 0.6]), run("a", 1, [0.4, 0.5, 0.8]),
            run("b", 0, [0.5, 0.9], seconds_per_step=20.0, algo="rloo")]
    summaries, budget = summarize(runs, P)
    assert budget == 40.0  # a's runs end at step 4 x 10 s, b's at step 2 x 20 s
    a, b = summaries
    assert (a.variant, a.seeds, b.seeds) == ("a", [0, 1], [0])
    final = a.values[f"final {P}"]
    assert final.mean == pytest.approx(0.7) and final.std == pytest.approx(math.sqrt(0.02))  # (0.6, 0.8)
    assert a.values[f"best {P}"].mean == pytest.approx(0.75)  # (0.7, 0.8)
    # in 40 s: a reached step 4 (0.6, 0.8); b reached step 2 (0.9)
    assert a.values[f"{P} at 40 s"].mean == pytest.approx(0.7)
    assert b.values[f"{P} at 40 s"].mean == pytest.approx(0.9) and b.values[f"{P} at 40 s"].n == 1
    table = markdown(summaries)
    assert "| a | 0,1 | 4 | 0.700 +- 0.141 | 0.750 +- 0.071 | 0.700 +- 0.141 |" in table


def test_training_metrics_are_averaged_over_the_tail():
    runs = [run("a", 0, [0.1], kl=[0.0, 1.0, 2.0, 3.0]), run("a", 1, [0.1], kl=[0.0, 0.0, 4.0, 6.0])]
    (s,), _ = summarize(runs, P, extra=["kl/ref"], tail=2)
    assert s.values["final kl/ref"].mean == pytest.approx((2.5 + 5.0) / 2)


def test_at_time_takes_the_last_value_logged_in_time():
    r = run("a", 0, [0.1, 0.2, 0.3])
    assert [at_time(r, P, t) for t in (0, 19.9, 20, 39, 1000)] == [0.1, 0.1, 0.2, 0.2, 0.3]


def test_config_differences_name_only_fields_that_differ():
    runs = [run("a", 0, [0.1], algo="grpo"), run("a", 1, [0.1], algo="grpo"), run("b", 0, [0.1], algo="rloo")]
    assert config_differences(runs) == {"algo.name": {"a": "grpo", "b": "rloo"}}  # not seed, not kl_coef


def test_variant_is_the_overrides_without_seed_placement_and_what_all_runs_share():
    assert variant_of(["seed=2", "ladder=4_token_rm", "experiment=ablation_ladder", "cluster=local_slurm",
                       "logging.progress_bars=false", "algo.kl_coef=0"]) == "algo.kl_coef=0,ladder=4_token_rm"
    assert variant_of(["seed=1"]) == "default"
    assert variant_of(["algo=grpo", "trainer.num_steps=2", "seed=0"], frozenset({"trainer.num_steps=2"})) == "algo=grpo"


def test_overrides_shared_by_every_run_of_a_sweep_do_not_name_variants(tmp_path):
    for algo in ("grpo", "rloo"):
        folder = tmp_path / algo
        (folder / "hydra").mkdir(parents=True)
        (folder / "hydra" / "overrides.yaml").write_text(f"- trainer.num_steps=2\n- algo={algo}\n- seed=0\n")
        (folder / "metrics.jsonl").write_text('{"step": 0}\n')
    assert [r.variant for r in load_local(tmp_path)] == ["algo=grpo", "algo=rloo"]


def test_run_folders_load_and_a_killed_runs_partial_last_line_is_skipped(tmp_path):
    folder = tmp_path / "algo=grpo,seed=3"
    (folder / "hydra").mkdir(parents=True)
    (folder / "hydra" / "overrides.yaml").write_text("- algo=grpo\n- seed=3\n")
    (folder / "config.yaml").write_text("seed: 3\nalgo: {name: grpo}\n")
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 0, P: 0.5}) + "\n" + '{"step": 1, "rew')
    (r,) = load_local(tmp_path)
    assert (r.variant, r.seed, r.history) == ("algo=grpo", 3, [{"step": 0, P: 0.5}])


def test_a_malformed_row_names_the_file_and_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 0}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a JSON row"):
        load_local(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no run under"):
        load_local(tmp_path / "empty")


class _FakeApi:
    """The two calls `load_wandb` makes, answering like `wandb.Api` (no network here)."""

    class _Run:
        def __init__(self, name, job_type, seed, rows, state="finished"):
            self.name, self.job_type, self.config, self._rows, self.state = name, job_type, {"seed": seed}, rows, state

        def scan_history(self):
            return iter(self._rows)

    def __init__(self):
        self.calls = []

    def runs(self, path, filters):
        self.calls.append((path, filters))
        return [self._Run("r0", "4_token_rm", 0, [{"_step": 0, P: 0.5}, {"_step": 5, P: 0.7}]),
                self._Run("r1", "4_token_rm", 1, [{"_step": 0, P: 0.5}], state="crashed")]


def test_wandb_runs_are_grouped_by_job_type():
    api = _FakeApi()
    r, crashed = load_wandb("me/oreal", "ablation_ladder", api=api)
    assert api.calls == [("me/oreal", {"group": "ablation_ladder"})]
    assert (r.variant, r.seed, r.series(P), r.failed) == ("4_token_rm", 0, ([0.0, 5.0], [0.5, 0.7]), False)
    assert crashed.failed  # W&B's "crashed" and "failed" runs are kept out of the tables


def test_more_than_ten_variants_keep_distinct_line_styles():
    from oreal.compare.plots import line_style

    styles = [line_style(i) for i in range(40)]
    assert len(set(styles)) == 40
    assert styles[:2] == [(0, "-"), (1, "-")] and styles[10] == (0, "--") and styles[11] == (1, "--")
