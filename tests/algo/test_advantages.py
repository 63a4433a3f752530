import pytest
import torch

from oreal.algo import compute_advantages
from tests.algo.loop_reference import advantages_loop


def test_rloo_hand_computed():
    # group [1, -1, -1, 1]: baselines (-1-1+1)/3=-1/3, (1-1+1)/3=1/3, 1/3, -1/3
    adv = compute_advantages(torch.tensor([[1.0, -1.0, -1.0, 1.0]]), "rloo")
    torch.testing.assert_close(adv, torch.tensor([[4 / 3, -4 / 3, -4 / 3, 4 / 3]]))


def test_grpo_hand_computed_uses_unbiased_std():
    # mean 0.5, unbiased std of [1,1,1,-1] = sqrt((3*0.25 + 2.25)/3) = 1
    adv = compute_advantages(torch.tensor([[1.0, 1.0, 1.0, -1.0]]), "grpo")
    torch.testing.assert_close(adv, torch.tensor([[0.5, 0.5, 0.5, -1.5]]) / (1 + 1e-8))


def test_uniform_group_has_zero_advantage():
    for est in ("rloo", "grpo"):
        assert torch.equal(compute_advantages(torch.ones(2, 5), est), torch.zeros(2, 5))


def test_none_is_raw_reward():
    r = torch.tensor([[1.0, -1.0], [-1.0, -1.0]])
    assert torch.equal(compute_advantages(r, "none"), r)


@pytest.mark.parametrize("estimator", ["rloo", "grpo", "none"])
def test_matches_loop(estimator):
    r = torch.where(torch.rand(7, 6, generator=torch.Generator().manual_seed(3)) < 0.4, 1.0, -1.0)
    expected = torch.tensor(advantages_loop(r.tolist(), estimator))
    torch.testing.assert_close(compute_advantages(r, estimator), expected)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown advantage estimator 'ppo'"):
        compute_advantages(torch.ones(1, 2), "ppo")
    with pytest.raises(ValueError, match="at least 2 samples"):
        compute_advantages(torch.ones(3, 1), "rloo")
    with pytest.raises(ValueError, match=r"\[num_groups, K\]"):
        compute_advantages(torch.ones(4), "rloo")
