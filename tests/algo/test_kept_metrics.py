"""The per-step selection metrics: what the kept samples push, group by group, on hand-made
groups whose numbers follow from REFERENCE.md's formulas."""

import pytest
import torch

from oreal.algo import compute_advantages, filter_trajectories, kept_sample_metrics
from oreal.algo.variants import GRPOConfig, OrealConfig

OREAL = dict(positive_factor=1.0, negative_factor=0.5, pos_mult_adv=True)


def groups(*num_correct: int, k: int = 8) -> torch.Tensor:
    """``[len(num_correct), k]`` rewards, the first c of each row correct (+1), the rest -1."""
    return torch.tensor([[1.0 if i < c else -1.0 for i in range(k)] for c in num_correct])


def test_pair_filter_net_is_2k_minus_3c_over_k_minus_1():
    # K=8 with c = 2, 6, 8 (uniform: dropped), 7 correct; RLOO: A+ = (2K - 2c)/(K - 1), A- = -2c/(K - 1);
    # a kept pair nets A+ + 0.5 A- = (2K - 3c)/(K - 1): 10/7, -2/7, -5/7
    rewards = groups(2, 6, 8, 7)
    adv = compute_advantages(rewards, "rloo")
    keep = filter_trajectories(rewards, "pair", torch.Generator().manual_seed(0))
    m = kept_sample_metrics(rewards, adv, keep, **OREAL)
    assert m["train/num_kept_groups"].item() == 3
    assert m["advantage/kept_group_net"].item() == pytest.approx((10 - 2 - 5) / 7 / 3)
    assert m["advantage/kept_group_net_negative_frac"].item() == pytest.approx(2 / 3)
    assert m["advantage/kept_weighted_mean"].item() == pytest.approx((10 - 2 - 5) / 7 / 6)


def test_without_the_negative_factor_the_pair_of_c_5_still_pushes_down():
    # plain policy gradient (factors 1, 1) on RLOO advantages: the pair nets (2K - 4c)/(K - 1) = -4/7 at c = 5
    rewards = groups(5)
    adv = compute_advantages(rewards, "rloo")
    keep = filter_trajectories(rewards, "pair", torch.Generator().manual_seed(1))
    m = kept_sample_metrics(rewards, adv, keep)
    assert m["advantage/kept_group_net"].item() == pytest.approx(-4 / 7)
    assert m["advantage/kept_group_net_negative_frac"].item() == 1.0


def test_grpo_pair_at_half_is_exactly_balanced_not_negative():
    rewards = groups(4, 5)  # GRPO pair nets -2 mean / std: 0 at c = 4, negative at c = 5
    adv = compute_advantages(rewards, "grpo")
    keep = filter_trajectories(rewards, "pair", torch.Generator().manual_seed(2))
    m = kept_sample_metrics(rewards, adv, keep)
    std5 = torch.tensor([1.0] * 5 + [-1.0] * 3).std().item()
    assert m["advantage/kept_group_net"].item() == pytest.approx((0 - 2 * 0.25 / std5) / 2)
    assert m["advantage/kept_group_net_negative_frac"].item() == 0.5


def test_no_filter_nets_half_the_positive_advantage_and_drops_nothing():
    # every sample kept; RLOO advantages of a group sum to 0, so the net is 0.5 * sum(A+) = 0.5 c (2K - 2c)/(K - 1)
    rewards = groups(2, 6, 0)
    adv = compute_advantages(rewards, "rloo")
    keep = filter_trajectories(rewards, "none")
    m = kept_sample_metrics(rewards, adv, keep, **OREAL)
    nets = [0.5 * 2 * 12 / 7, 0.5 * 6 * 4 / 7, 0.0]  # the all-wrong group has A = 0 everywhere
    assert m["train/num_kept_groups"].item() == 3
    assert m["advantage/kept_group_net"].item() == pytest.approx(sum(nets) / 3)
    assert m["advantage/kept_group_net_negative_frac"].item() == 0.0
    assert m["advantage/kept_weighted_mean"].item() == pytest.approx(sum(nets) / 24)


def test_drop_uniform_keeps_every_sample_of_mixed_groups():
    rewards = groups(2, 8, 0, 7)
    keep = filter_trajectories(rewards, "drop_uniform")
    assert keep.tolist() == [[True] * 8, [False] * 8, [False] * 8, [True] * 8]
    m = kept_sample_metrics(rewards, compute_advantages(rewards, "rloo"), keep, **OREAL)
    assert m["train/num_kept_groups"].item() == 2
    assert m["advantage/kept_group_net"].item() == pytest.approx((0.5 * 2 * 12 / 7 + 0.5 * 7 * 2 / 7) / 2)


def test_positives_not_multiplied_by_their_advantage_weigh_their_factor():
    rewards = groups(6)
    adv = compute_advantages(rewards, "rloo")
    keep = filter_trajectories(rewards, "pair", torch.Generator().manual_seed(3))
    m = kept_sample_metrics(rewards, adv, keep, positive_factor=2.0, negative_factor=0.5, pos_mult_adv=False)
    assert m["advantage/kept_group_net"].item() == pytest.approx(2.0 + 0.5 * -12 / 7)


def test_nothing_kept_gives_zeros():
    rewards = groups(8, 0)
    keep = filter_trajectories(rewards, "pair")
    m = kept_sample_metrics(rewards, compute_advantages(rewards, "rloo"), keep, **OREAL)
    assert all(v.item() == 0.0 for v in m.values())


def test_variants_report_their_loss_factors():
    assert GRPOConfig().sample_weighting == {"positive_factor": 1.0, "negative_factor": 1.0, "pos_mult_adv": True}
    assert OrealConfig(negative_loss_factor=0.3).sample_weighting == {"positive_factor": 1.0, "negative_factor": 0.3,
                                                                      "pos_mult_adv": True}


def test_step_metrics_use_the_variants_factors():
    """The trainer's per-step metrics (oreal/trainer/rollouts.py) carry the kept-group metrics
    with the loss's own factors."""
    from oreal.engines.protocols import Completion, RolloutGroup
    from oreal.trainer.rollouts import StepSamples

    rewards = groups(2, 6, 8)
    adv = compute_advantages(rewards, "rloo")
    keep = filter_trajectories(rewards, "pair", torch.Generator().manual_seed(4))
    completion = Completion(token_ids=[1, 2, 3], text="x", logprobs=[-1.0] * 3, finish_reason="stop")
    samples = StepSamples(prompts=[], groups=[RolloutGroup([0], [completion] * 8) for _ in range(3)], grades=[],
                          rewards=rewards, advantages=adv, keep=keep)
    oreal = samples.metrics(OrealConfig())
    assert oreal["train/num_kept"] == 4 and oreal["train/num_kept_groups"] == 2
    assert oreal["advantage/kept_group_net"] == pytest.approx((10 - 2) / 7 / 2)
    assert oreal["advantage/kept_group_net_negative_frac"] == pytest.approx(0.5)
    plain = samples.metrics(GRPOConfig())  # factors 1, 1: pairs net (2K - 4c)/(K - 1) = 8/7 and -8/7
    assert plain["advantage/kept_group_net"] == pytest.approx(0.0)
    assert plain["advantage/kept_group_net_negative_frac"] == pytest.approx(0.5)
