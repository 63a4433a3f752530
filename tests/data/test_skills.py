"""Skill-based enhancement (ladder row 5): failed skills come back, nothing else changes."""

import json
from collections import Counter

import pytest

from oreal.config import load_config
from oreal.config.load import ConfigError
from oreal.config.schema import SkillReplayConfig
from oreal.data.sampler import PromptSampler
from oreal.data.skills import SOURCE_NAME, SkillReplaySampler
from oreal.data.sources import Prompt

SKILLS = ("add", "mul", "div")


def pool(n=30):
    return [Prompt(f"p{i}", str(i), f"p{i}", subject=SKILLS[i % 3], level=str(1 + i % 2)) for i in range(n)]


def make(fraction=0.25, memory=4, key="subject"):
    stream = PromptSampler({"train": pool()}, {"train": 1.0}, seed=0)
    return SkillReplaySampler(stream, SkillReplayConfig(enabled=True, fraction=fraction, memory=memory, key=key), seed=0)


def test_without_failures_it_is_the_plain_stream():
    plain = PromptSampler({"train": pool()}, {"train": 1.0}, seed=0)
    assert [p.id for _, p in make().draw(12)] == [p.id for _, p in plain.draw(12)]


def test_a_failed_skill_fills_the_replay_share_of_the_next_batch():
    s = make(fraction=0.25)
    first = s.draw(8)
    failed = next(p for _, p in first if p.subject == "mul")
    s.observe([p for _, p in first], [p.id == failed.id for _, p in first])
    batch = s.draw(8)
    replayed = [p for src, p in batch if src == SOURCE_NAME]
    assert len(replayed) == 2  # round(8 * 0.25)
    assert {p.subject for p in replayed} == {"mul"}
    assert len([src for src, _ in batch if src == "train"]) == 6


def test_memory_keeps_only_the_last_failures_and_skills_are_weighted_by_count():
    s = make(memory=3)
    mul, add, div = (next(p for p in pool() if p.subject == k) for k in ("mul", "add", "div"))
    s.observe([mul, mul, add, div], [True, True, True, True])
    assert s.failed_skills() == {"mul": 1, "add": 1, "div": 1}  # the oldest "mul" fell out
    s.observe([mul, mul], [True, False])  # only all-wrong groups count
    assert s.failed_skills() == {"add": 1, "div": 1, "mul": 1}
    heavy = make(fraction=1.0, memory=10)
    heavy.observe([mul] * 9 + [add], [True] * 10)
    counts = Counter(p.subject for _, p in heavy.draw(400))
    assert set(counts) == {"mul", "add"} and counts["mul"] > 6 * counts["add"]


def test_subject_level_key_groups_by_both_fields():
    s = make(fraction=1.0, key="subject_level")
    failed = pool()[4]  # subject mul, level 1
    s.observe([failed], [True])
    assert {(p.subject, p.level) for _, p in s.draw(20)} == {(failed.subject, failed.level)}


def test_resumed_sampler_draws_what_the_uninterrupted_one_draws():
    def play(s, steps, start=0):
        out = []
        for step in range(start, steps):
            batch = s.draw(6)
            s.observe([p for _, p in batch], [i % 3 == step % 3 for i in range(6)])
            out.append([(src, p.id) for src, p in batch])
        return out

    straight = play(make(), 8)
    first = make()
    head = play(first, 4)
    state = json.loads(json.dumps(first.state_dict()))
    resumed = make()
    resumed.load_state_dict(state)
    assert head + play(resumed, 8, start=4) == straight


def test_mismatched_checkpoint_states_are_refused():
    plain = PromptSampler({"train": pool()}, {"train": 1.0}, seed=0)
    with pytest.raises(ValueError, match="skill_replay enabled"):
        plain.load_state_dict(make().state_dict())
    with pytest.raises(ValueError, match="without data.skill_replay"):
        make().load_state_dict(plain.state_dict())


def test_prompts_without_the_skill_field_are_refused_naming_the_setting():
    stream = PromptSampler({"train": [Prompt("q", "1", "q0")]}, {"train": 1.0}, seed=0)
    with pytest.raises(ValueError, match=r"data.skill_replay.*'subject'"):
        SkillReplaySampler(stream, SkillReplayConfig(enabled=True), seed=0)


@pytest.mark.parametrize("override, field", [("data.skill_replay.key=topic", "data.skill_replay.key"),
                                             ("data.skill_replay.fraction=0", "data.skill_replay.fraction")])
def test_bad_skill_replay_config_names_the_field(override, field):
    with pytest.raises((ConfigError, ValueError), match=field):
        load_config(["data.skill_replay.enabled=true", override])
