import itertools
import json
import random
from collections import Counter

import pytest

from oreal.evaluation import EvalSample, majority_correct, pass_at_k
from oreal.reward.normalize import normalize_answer


@pytest.mark.parametrize("n,c", [(n, c) for n in range(1, 7) for c in range(n + 1)])
def test_pass_at_k_equals_brute_force_over_subsets(n, c):
    outcomes = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(range(n), k))
        brute = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
        assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


def sample(answer, correct):
    return EvalSample("p", None, None, 0, "q", "4", "", answer, correct, "correct" if correct else "incorrect", "stop", 1)


def test_majority_vote_brute_force():
    rng = random.Random(0)
    pool = ["4", "4.0", r"\frac{8}{2}", "5", "6", None]
    for _ in range(300):
        answers = [rng.choice(pool) for _ in range(rng.randint(1, 7))]
        samples = [sample(a, a is not None and normalize_answer(a) in ("4",)) for a in answers]
        # the checker would call "4.0" and "\frac{8}{2}" correct too, but the vote is over normalised strings
        votes = Counter(normalize_answer(a) for a in answers if a is not None)
        if not votes:
            expected = False
        else:
            best = max(votes.values())
            winner = next(normalize_answer(a) for a in answers if a is not None and votes[normalize_answer(a)] == best)
            expected = winner == "4"
        assert majority_correct(samples) == expected


def run_eval(tmp_path, replay_rows):
    from oreal.cli import main

    path = tmp_path / "replay.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in replay_rows))
    out = tmp_path / "out"
    code = main(["eval", "data=math_train", "rollout=replay", f"rollout.replay_path={path}", "data.system_prompt=plain",
                 "data.max_prompt_tokens=4096", "rollout.max_model_len=1024", "rollout.max_new_tokens=512",
                 f"model.path={tmp_path / 'tiny'}", "--sets", "math500", "--out", str(out)])
    assert code == 0
    return json.loads((out / "eval_math500.summary.json").read_text())


@pytest.mark.slow
def test_replayed_reference_solutions_score_one_and_rotated_ones_near_zero(tmp_path):
    from oreal.data.builtin import load_builtin_jsonl

    rows = load_builtin_jsonl("math500.jsonl")
    right = run_eval(tmp_path, [{"problem": r["problem"], "responses": [r["solution"]]} for r in rows])
    m = right["metrics"]
    assert m["eval/math500/pass@1"] == 1.0 and m["eval/math500/num_problems"] == 500 and m["eval/math500/num_skipped"] == 0
    subjects = {"algebra": 124, "intermediate_algebra": 97, "prealgebra": 82, "number_theory": 62, "precalculus": 56,
                "geometry": 41, "counting_probability": 38}
    assert {s: int(m[f"eval/math500/subject/{s}/num_problems"]) for s in subjects} == subjects
    assert [int(m[f"eval/math500/level/{lv}/num_problems"]) for lv in range(1, 6)] == [43, 90, 105, 128, 134]
    assert right["settings"]["dataset_sha256"] and right["settings"]["num_samples"] == 1

    rotated = run_eval(tmp_path, [{"problem": r["problem"], "responses": [rows[(i + 1) % 500]["solution"]]} for i, r in enumerate(rows)])
    assert rotated["metrics"]["eval/math500/pass@1"] < 0.05
    samples = [json.loads(l) for l in (tmp_path / "out" / "eval_math500.jsonl").read_text().splitlines()]
    assert len(samples) == 500 and {"response", "extracted", "reason", "subject", "level"} <= samples[0].keys()


def test_k_samples_give_pass_at_k_and_majority(tmp_path):
    rows = [{"problem": "Mia has 2 apples. She gets 2 more. How many apples does Mia have now?",
             "responses": [r"\boxed{4}", r"\boxed{5}", r"\boxed{5}", r"\boxed{4.0}"]}]
    from oreal.cli import main

    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n")
    (tmp_path / "src.jsonl").write_text(json.dumps({"problem": rows[0]["problem"], "answer": "4"}) + "\n")
    code = main(["eval", "rollout=replay", f"rollout.replay_path={path}", f"model.path={tmp_path / 'tiny'}",
                 "data.eval.cpu_heldout.source.kind=jsonl", f"data.eval.cpu_heldout.source.path={tmp_path / 'src.jsonl'}",
                 "--sets", "cpu_heldout", "--out", str(tmp_path / "o")])
    assert code == 0
    m = json.loads((tmp_path / "o" / "eval_cpu_heldout.summary.json").read_text())["metrics"]
    assert m["eval/cpu_heldout/pass@1"] == 0.5 and m["eval/cpu_heldout/pass@4"] == 1.0
    assert m["eval/cpu_heldout/maj@4"] == 0.0  # "5" wins the vote 2:1:1 against "4" and "4.0"


def test_passrate_writes_rates_that_feed_difficulty_balance(tmp_path, tiny_config):
    from oreal.cli import main
    from oreal.config.schema import FieldMap, SourceConfig
    from oreal.data.sampler import balance
    from oreal.data.sources import cpu_task_prompts, load_source
    from oreal.data.pipeline import bands

    problems = cpu_task_prompts("train", tiny_config.data.cpu_task)[:4]
    # problem i gets i correct answers out of 4 -> pass rates 0, 0.25, 0.5, 0.75
    replay = tmp_path / "r.jsonl"
    replay.write_text("".join(json.dumps({"problem": p.problem, "responses": [r"\boxed{%s}" % p.answer] * i + [r"\boxed{-1}"] * (4 - i)}) + "\n"
                              for i, p in enumerate(problems)))
    out = tmp_path / "rates.jsonl"
    assert main(["passrate", "rollout=replay", f"rollout.replay_path={replay}", "data.train.cpu_task.limit=4",
                 f"model.path={tmp_path / 'tiny'}", "--k", "4", "--out", str(out)]) == 0
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["pass_rate"] for r in rows] == [0.0, 0.25, 0.5, 0.75]
    loaded = load_source(SourceConfig(path=str(out), fields=FieldMap(pass_rate="pass_rate")))
    assert [p.pass_rate for p in loaded] == [0.0, 0.25, 0.5, 0.75]
    assert len(balance(loaded, bands(tiny_config.data))) == 6 + 4 + 4 + 2
