from collections import Counter

import pytest

from oreal.algo import OREAL_BANDS
from oreal.data.sampler import PromptSampler, balance
from oreal.data.sources import Prompt


def prompts(prefix, n, rates=None):
    return [Prompt(f"{prefix}{i}", str(i), f"{prefix}{i}", None if rates is None else rates[i]) for i in range(n)]


def make(seed=0):
    return PromptSampler({"a": prompts("a", 7), "b": prompts("b", 3)}, {"a": 2.0, "b": 1.0}, seed)


def ids(draws):
    return [p.id for _, p in draws]


def test_resumed_sampler_yields_exactly_the_uninterrupted_stream():
    straight = make()
    expected = ids(straight.draw(5)) + ids(straight.draw(40))
    first = make()
    head = ids(first.draw(5))
    state = first.state_dict()
    import json

    state = json.loads(json.dumps(state))  # it goes through a JSON checkpoint
    resumed = make()
    resumed.load_state_dict(state)
    assert head + ids(resumed.draw(40)) == expected


def test_every_prompt_once_per_epoch_and_weights_respected():
    s = PromptSampler({"a": prompts("a", 10)}, {"a": 1.0}, 3)
    first_epoch = ids(s.draw(10))
    assert sorted(first_epoch) == sorted(f"a{i}" for i in range(10))
    assert ids(s.draw(10)) != first_epoch  # reshuffled
    mixed = make(1)
    counts = Counter(name for name, _ in mixed.draw(3000))
    assert 0.62 < counts["a"] / 3000 < 0.71  # weight 2:1


def test_seed_changes_the_order():
    assert ids(make(0).draw(10)) != ids(make(1).draw(10))


def test_resume_on_other_data_is_refused():
    state = make().state_dict()
    other = PromptSampler({"a": prompts("a", 8), "b": prompts("b", 3)}, {"a": 2.0, "b": 1.0}, 0)
    with pytest.raises(ValueError, match="built on other data"):
        other.load_state_dict(state)


def test_difficulty_balance_repeats_by_band_and_drops_easy():
    rates = [0.0, 0.3, 0.5, 0.7, 0.9, 1.0]
    out = balance(prompts("p", 6, rates), OREAL_BANDS)
    assert Counter(p.id for p in out) == {"p0": 6, "p1": 4, "p2": 4, "p3": 2}
