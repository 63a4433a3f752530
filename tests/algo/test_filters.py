import pytest
import torch

from oreal.algo import OREAL_BANDS, PassRateBand, difficulty_repeats, filter_trajectories

REWARDS = torch.tensor([
    [1.0, 1.0, 1.0, 1.0],     # all correct -> dropped
    [-1.0, -1.0, -1.0, -1.0],  # all wrong -> dropped
    [1.0, -1.0, -1.0, 1.0],   # mixed
    [-1.0, -1.0, 1.0, -1.0],  # mixed, single correct
])


def test_none_keeps_everything():
    assert filter_trajectories(REWARDS, "none").all()


def test_drop_uniform():
    keep = filter_trajectories(REWARDS, "drop_uniform")
    assert keep.tolist() == [[False] * 4, [False] * 4, [True] * 4, [True] * 4]


def test_pair_keeps_one_correct_and_one_incorrect_per_mixed_group():
    for seed in range(20):
        keep = filter_trajectories(REWARDS, "pair", torch.Generator().manual_seed(seed))
        assert not keep[:2].any()
        for g in (2, 3):
            kept = REWARDS[g][keep[g]]
            assert sorted(kept.tolist()) == [-1.0, 1.0]
        assert keep[3, 2]  # the only correct sample of group 3 is always kept


def test_pair_is_seeded_and_uniform():
    a = filter_trajectories(REWARDS, "pair", torch.Generator().manual_seed(3))
    b = filter_trajectories(REWARDS, "pair", torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # over many seeds each incorrect sample of group 3 is chosen about 1/3 of the time
    counts = torch.zeros(4)
    for seed in range(600):
        counts += filter_trajectories(REWARDS, "pair", torch.Generator().manual_seed(seed))[3].float()
    assert counts[2] == 600
    for i in (0, 1, 3):
        assert 150 < counts[i] < 250


def test_unknown_filter():
    with pytest.raises(ValueError, match="unknown trajectory filter 'best'"):
        filter_trajectories(REWARDS, "best")


def test_difficulty_repeats_reference_bands():
    rates = [0.0, 0.19, 0.2, 0.39, 0.4, 0.59, 0.6, 0.79, 0.8, 1.0, None]
    assert difficulty_repeats(rates) == [6, 6, 4, 4, 4, 4, 2, 2, 0, 0, 1]
    assert difficulty_repeats([0.5], [PassRateBand(0.0, 1.01, 3)]) == [3]
    assert OREAL_BANDS[0] == PassRateBand(0.0, 0.2, 6)
    with pytest.raises(ValueError, match="pass rate must be in"):
        difficulty_repeats([1.5])
