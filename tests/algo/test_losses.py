import itertools
import math

import pytest
import torch

from oreal.algo import (
    LossInputs,
    count_tokens,
    get_variant,
    oreal_loss,
    policy_gradient_loss,
    token_weighted_policy_gradient_loss,
    token_weights,
)
from oreal.algo.variants import GRPOConfig, GRPOTokenRMConfig, OrealConfig, OrealNoTokenRMConfig, ReinforceConfig, RLOOConfig
from tests.algo.batches import Batch, random_batch
from tests.algo.loop_reference import oreal_loss_loop, pg_loss_loop

DEFAULTS = dict(positive_loss_factor=1.0, negative_loss_factor=0.5, kl_coef=0.01, kl_estimator="k3", pos_mult_adv=True)


def vectorised(batch: Batch, counts, use_rm: bool, rescale="threshold", params=(0.5, 0.5), **kw):
    c = counts
    return oreal_loss(
        logprobs=batch.logp, ref_logprobs=batch.ref, rm_scores=batch.rm if use_rm else None, mask=batch.mask,
        rewards=batch.rewards, advantages=batch.adv, num_positive_tokens=c.num_positive_tokens,
        num_negative_tokens=c.num_negative_tokens, num_action_tokens=c.num_action_tokens, num_sequences=c.num_sequences,
        correct_threshold=params[0], incorrect_threshold=params[1], correct_topk_ratio=params[0],
        incorrect_topk_ratio=params[1], rescale=rescale, **kw,
    )


def grads(*tensors):
    out = [t.grad.clone() if t.grad is not None else torch.zeros_like(t) for t in tensors]
    for t in tensors:
        t.grad = None
    return out


def test_hand_computed_two_samples():
    # one positive (A=+1) and one negative (A=-1) sample, two response tokens each, no RM.
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -1.5]], requires_grad=True)
    ref = torch.tensor([[-1.0, -1.0], [-0.5, -0.5]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    out = oreal_loss(logprobs=logp, ref_logprobs=ref, rm_scores=None, mask=mask, rewards=torch.tensor([1.0, -1.0]),
                     advantages=torch.tensor([1.0, -1.0]), num_positive_tokens=2, num_negative_tokens=2,
                     num_action_tokens=4, num_sequences=2)
    # L+ = 1 * (1 + 2) / 2 = 1.5 ; L- = -(-1 * 2) / 2 * 0.5 = 0.5
    # KL k3, d = ref - logp = [0, 1, 0, 1]: e^1 - 1 - 1 = e - 2 twice -> 0.01 * 2(e-2) / 4
    kl = 0.01 * 2 * (math.e - 2) / 4
    assert out.metrics["loss/positive"].item() == pytest.approx(1.5)
    assert out.metrics["loss/negative"].item() == pytest.approx(0.5)
    assert out.metrics["loss/kl"].item() == pytest.approx(kl)
    assert out.policy_loss.item() == pytest.approx(2.0 + kl)
    assert out.rm_loss is None
    # mean per-token k1 KL: (logp - ref) = [0, -1, 0, -1] / 4
    assert out.metrics["kl/ref"].item() == pytest.approx(-0.5)
    out.policy_loss.backward()
    # d/dlogp: positive tokens -1/2 (BC) ; negative tokens -(-1)(0.5)/2 = +0.25 ; k3 grad 0.01/4*(1 - e^d)
    kl_grad = lambda d: 0.01 / 4 * (1 - math.exp(d))
    expected = torch.tensor([[-0.5 + kl_grad(0), -0.5 + kl_grad(1)], [0.25 + kl_grad(0), 0.25 + kl_grad(1)]])
    torch.testing.assert_close(logp.grad, expected)


def test_token_rm_loss_hand_computed():
    rm = torch.tensor([[1.0, 3.0, 0.0], [-2.0, 0.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    logp = torch.full((2, 3), -1.0, requires_grad=True)
    out = oreal_loss(logprobs=logp, ref_logprobs=logp.detach(), rm_scores=rm, mask=mask,
                     rewards=torch.tensor([1.0, -1.0]), advantages=torch.tensor([1.0, -1.0]),
                     num_positive_tokens=2, num_negative_tokens=1, num_action_tokens=3, num_sequences=4)
    # sequence logits: mean(1, 3) = 2 (label 1), -2 (label 0); BCE = log(1 + e^-2) each; / num_sequences=4
    assert out.rm_loss.item() == pytest.approx(2 * math.log1p(math.exp(-2)) / 4)
    assert out.metrics["token_rm/accuracy"].item() == pytest.approx(2 / 4)
    out.rm_loss.backward()
    # d/ds of BCE(mean s) = (sigmoid(2) - 1) / 2 per token of row 0, sigmoid(-2) for row 1's single token
    sig = lambda x: 1 / (1 + math.exp(-x))
    expected = torch.tensor([[(sig(2) - 1) / 2 / 4] * 2 + [0.0], [sig(-2) / 4, 0.0, 0.0]])
    torch.testing.assert_close(rm.grad, expected)


CASES = list(itertools.product(["rloo", "grpo", "none"], ["k1", "k2", "k3"], [False, True]))


@pytest.mark.parametrize("estimator,kl_estimator,use_rm", CASES)
def test_vectorised_matches_loop(estimator, kl_estimator, use_rm):
    for seed in range(3):
        batch = random_batch(num_groups=3, k=4, estimator=estimator, seed=seed)
        counts = count_tokens(batch.mask, batch.rewards)
        kw = dict(DEFAULTS, kl_estimator=kl_estimator, pos_mult_adv=bool(seed % 2))
        out = vectorised(batch, counts, use_rm, **kw)
        (out.policy_loss + (out.rm_loss if use_rm else 0)).backward()
        g_logp, g_rm = grads(batch.logp, batch.rm)

        samples = batch.samples()
        if not use_rm:
            for s in samples:
                s["rm"] = None
        c = (counts.num_positive_tokens, counts.num_negative_tokens, counts.num_action_tokens, counts.num_sequences)
        policy, rm_loss = oreal_loss_loop(samples, counts=c, rescale="threshold", correct_param=0.5, incorrect_param=0.5, **kw)
        (policy + (rm_loss if use_rm else 0)).backward()
        e_logp, e_rm = grads(batch.logp, batch.rm)

        torch.testing.assert_close(out.policy_loss, policy, atol=1e-6, rtol=0)
        torch.testing.assert_close(g_logp, e_logp, atol=1e-6, rtol=0)
        if use_rm:
            torch.testing.assert_close(out.rm_loss, rm_loss, atol=1e-6, rtol=0)
            torch.testing.assert_close(g_rm, e_rm, atol=1e-6, rtol=0)
        else:
            assert out.rm_loss is None


@pytest.mark.parametrize("params", [(0.25, 0.25), (0.5, 0.75)])
def test_topk_matches_loop(params):
    batch = random_batch(num_groups=4, k=4, seed=7)
    counts = count_tokens(batch.mask, batch.rewards)
    out = vectorised(batch, counts, True, rescale="topk", params=params, **DEFAULTS)
    out.policy_loss.backward()
    (g,) = grads(batch.logp)
    c = (counts.num_positive_tokens, counts.num_negative_tokens, counts.num_action_tokens, counts.num_sequences)
    policy, _ = oreal_loss_loop(batch.samples(), counts=c, rescale="topk", correct_param=params[0], incorrect_param=params[1], **DEFAULTS)
    policy.backward()
    (e,) = grads(batch.logp)
    torch.testing.assert_close(out.policy_loss, policy, atol=1e-6, rtol=0)
    torch.testing.assert_close(g, e, atol=1e-6, rtol=0)


@pytest.mark.parametrize("use_rm", [False, True])
@pytest.mark.parametrize("splits", [[12], [1] * 12, [5, 7], [3, 3, 3, 3], [2, 9, 1]])
def test_sum_over_microbatches_is_invariant(use_rm, splits):
    batch = random_batch(num_groups=3, k=4, seed=11)
    counts = count_tokens(batch.mask, batch.rewards)  # global counts for the whole step
    whole = vectorised(batch, counts, use_rm, **DEFAULTS)
    (whole.policy_loss + (whole.rm_loss if use_rm else 0)).backward()
    g_whole = grads(batch.logp, batch.rm)
    metrics_whole = {k: v.clone() for k, v in whole.metrics.items()}

    total, metric_sums, start = 0.0, {}, 0
    for size in splits:
        part = vectorised(batch.rows(slice(start, start + size)), counts, use_rm, **DEFAULTS)
        loss = part.policy_loss + (part.rm_loss if use_rm else 0)
        loss.backward()
        total = total + loss.detach()
        for k, v in part.metrics.items():
            metric_sums[k] = metric_sums.get(k, 0) + v
        start += size
    g_split = grads(batch.logp, batch.rm)
    torch.testing.assert_close(total, (whole.policy_loss + (whole.rm_loss if use_rm else 0)).detach(), atol=1e-12, rtol=1e-12)
    for a, b in zip(g_split, g_whole):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    assert metric_sums.keys() == metrics_whole.keys()
    for k in metrics_whole:
        torch.testing.assert_close(metric_sums[k], metrics_whole[k], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("use_rm", [False, True])
def test_negative_gradient_is_scaled_policy_gradient(use_rm):
    """d L- / d logp_t = -A * w-_t * negative_loss_factor / N_neg (the ratio is 1 at the sample)."""
    batch = random_batch(num_groups=2, k=4, seed=5, rewards=torch.tensor([[1.0, -1.0, -1.0, -1.0], [-1.0, 1.0, -1.0, 1.0]]))
    counts = count_tokens(batch.mask, batch.rewards)
    out = vectorised(batch, counts, use_rm, **dict(DEFAULTS, kl_coef=0.0, negative_loss_factor=0.7))
    out.metrics["loss/negative"]  # value only
    neg_only = vectorised(batch, counts, use_rm, **dict(DEFAULTS, kl_coef=0.0, negative_loss_factor=0.7, positive_loss_factor=0.0))
    neg_only.policy_loss.backward()
    from oreal.algo import token_weights

    w_neg = token_weights(batch.rm, batch.mask)[1] if use_rm else batch.mask.double()
    negative = (batch.rewards <= 0).double()[:, None]
    expected = -batch.adv[:, None] * w_neg * 0.7 / counts.num_negative_tokens * negative * batch.mask
    torch.testing.assert_close(batch.logp.grad, expected, atol=1e-12, rtol=0)
    # and its value is -A * sum(w-) * factor / N_neg
    value = (-(batch.adv[:, None] * w_neg * negative).sum() * 0.7 / counts.num_negative_tokens)
    torch.testing.assert_close(neg_only.metrics["loss/negative"], value.detach())


def test_empty_classes_do_not_divide_by_zero():
    batch = random_batch(num_groups=2, k=3, seed=2, rewards=-torch.ones(2, 3))
    counts = count_tokens(batch.mask, batch.rewards)
    assert counts.num_positive_tokens == 0
    out = vectorised(batch, counts, True, **DEFAULTS)
    assert torch.isfinite(out.policy_loss) and out.metrics["loss/positive"].item() == 0.0


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_policy_gradient_loss_matches_loop(estimator):
    batch = random_batch(num_groups=3, k=4, estimator="grpo", seed=4)
    counts = count_tokens(batch.mask, batch.rewards)
    out = policy_gradient_loss(logprobs=batch.logp, ref_logprobs=batch.ref, mask=batch.mask, advantages=batch.adv,
                               num_action_tokens=counts.num_action_tokens, kl_coef=0.05, kl_estimator=estimator)
    out.policy_loss.backward()
    (g,) = grads(batch.logp)
    expected = pg_loss_loop(batch.samples(), num_action_tokens=counts.num_action_tokens, kl_coef=0.05, kl_estimator=estimator)
    expected.backward()
    (e,) = grads(batch.logp)
    torch.testing.assert_close(out.policy_loss, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(g, e, atol=1e-6, rtol=0)


def test_k3_is_nonnegative_and_k1_is_the_log_ratio():
    from oreal.algo import kl_per_token

    logp, ref = torch.randn(100).double(), torch.randn(100).double()
    assert (kl_per_token(logp, ref, "k3") >= 0).all()
    torch.testing.assert_close(kl_per_token(logp, ref, "k1"), logp - ref)


@pytest.mark.parametrize(
    "cfg", [ReinforceConfig(), GRPOConfig(), RLOOConfig(), OrealNoTokenRMConfig(), OrealConfig(), GRPOTokenRMConfig()],
    ids=lambda c: c.name,
)
def test_registered_variants(cfg):
    """Each variant name resolves to its own config class and computes the documented loss."""
    variant = get_variant(cfg.name)
    assert variant.config_cls is type(cfg)
    batch = random_batch(num_groups=2, k=4, estimator=cfg.advantage_estimator, seed=9)
    counts = count_tokens(batch.mask, batch.rewards)
    inputs = LossInputs(batch.logp, batch.mask, batch.rewards, batch.adv, batch.ref, batch.rm if cfg.uses_token_rm else None)
    out = variant.loss(cfg, inputs, counts)
    if isinstance(cfg, OrealNoTokenRMConfig):
        ref = vectorised(batch, counts, cfg.uses_token_rm, **DEFAULTS)
    elif isinstance(cfg, GRPOTokenRMConfig):
        ref = weighted_pg(batch, counts)
    else:
        ref = policy_gradient_loss(logprobs=batch.logp, ref_logprobs=batch.ref, mask=batch.mask, advantages=batch.adv,
                                   num_action_tokens=counts.num_action_tokens)
    torch.testing.assert_close(out.policy_loss, ref.policy_loss)
    assert (out.rm_loss is None) == (not cfg.uses_token_rm)


def test_oreal_without_rm_scores_is_an_error():
    batch = random_batch(seed=1)
    inputs = LossInputs(batch.logp, batch.mask, batch.rewards, batch.adv, batch.ref, None)
    with pytest.raises(ValueError, match="oreal_no_token_rm"):
        get_variant("oreal").loss(OrealConfig(), inputs, count_tokens(batch.mask, batch.rewards))
    with pytest.raises(ValueError, match="use 'grpo' to run without one"):
        get_variant("grpo_token_rm").loss(GRPOTokenRMConfig(), inputs, count_tokens(batch.mask, batch.rewards))
    with pytest.raises(ValueError, match="unknown loss variant 'ppo'"):
        get_variant("ppo")


# ---- the factor table's controls and the GRPO-style token-weighted loss ---------------------------


def weighted_pg(batch: Batch, counts, rescale="threshold", params=(0.5, 0.5), kl_coef=0.01, kl_estimator="k3"):
    c = counts
    return token_weighted_policy_gradient_loss(
        logprobs=batch.logp, ref_logprobs=batch.ref, rm_scores=batch.rm, mask=batch.mask, rewards=batch.rewards,
        advantages=batch.adv, num_positive_tokens=c.num_positive_tokens, num_negative_tokens=c.num_negative_tokens,
        num_action_tokens=c.num_action_tokens, num_sequences=c.num_sequences, kl_coef=kl_coef, kl_estimator=kl_estimator,
        rescale=rescale, correct_param=params[0], incorrect_param=params[1],
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uniform_token_weights_reduce_to_row_3_exactly(seed):
    """Row 3b's control: the RM is trained (same rm_loss as row 4) but the policy loss and its
    gradient are bit for bit row 3's."""
    batch = random_batch(num_groups=3, k=4, seed=seed)
    counts = count_tokens(batch.mask, batch.rewards)
    row3 = vectorised(batch, counts, False, **DEFAULTS)
    row3.policy_loss.backward()
    (g3,) = grads(batch.logp)
    uniform = vectorised(batch, counts, True, rescale="uniform", **DEFAULTS)
    uniform.policy_loss.backward()
    (gu,) = grads(batch.logp)
    assert torch.equal(uniform.policy_loss, row3.policy_loss)
    assert torch.equal(gu, g3)
    row4 = vectorised(batch, counts, True, **DEFAULTS)
    assert torch.equal(uniform.rm_loss, row4.rm_loss)  # the RM learns exactly as in row 4
    assert uniform.metrics["token_rm/weight_pos"].item() == 1.0 and uniform.metrics["token_rm/weight_neg"].item() == 1.0


def test_uniform_token_weights_reduce_to_grpo_exactly():
    batch = random_batch(num_groups=3, k=4, estimator="grpo", seed=3)
    counts = count_tokens(batch.mask, batch.rewards)
    plain = policy_gradient_loss(logprobs=batch.logp, ref_logprobs=batch.ref, mask=batch.mask, advantages=batch.adv,
                                 num_action_tokens=counts.num_action_tokens)
    plain.policy_loss.backward()
    (gp,) = grads(batch.logp)
    uniform = weighted_pg(batch, counts, rescale="uniform")
    uniform.policy_loss.backward()
    (gu,) = grads(batch.logp)
    assert torch.equal(uniform.policy_loss, plain.policy_loss)
    assert torch.equal(gu, gp)
    assert uniform.rm_loss is not None


def test_token_weighted_policy_gradient_hand_computed():
    # positive sample (A=+1), RM scores [2, -2] -> running means 2, 0 -> w+ = [2 sig(2) - 1, 0];
    # negative sample (A=-1), scores [-2, 2] -> running means -2, 0 -> w- = [2 (1 - sig(-2)) - 1, 0]
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    w = 2 * sig(2) - 1
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -1.5]], dtype=torch.float64, requires_grad=True)
    rm = torch.tensor([[2.0, -2.0], [-2.0, 2.0]], dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 2, dtype=torch.bool)
    out = token_weighted_policy_gradient_loss(
        logprobs=logp, ref_logprobs=None, rm_scores=rm, mask=mask, rewards=torch.tensor([1.0, -1.0], dtype=torch.float64),
        advantages=torch.tensor([1.0, -1.0], dtype=torch.float64), num_positive_tokens=2, num_negative_tokens=2,
        num_action_tokens=4, num_sequences=2, kl_coef=0.0)
    # L = -(1 * w + (-1) * w) / 4 = 0 ; gradient -A w / 4 on the first token of each sample
    assert out.policy_loss.item() == pytest.approx(0.0)
    out.policy_loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-w / 4, 0.0], [w / 4, 0.0]], dtype=torch.float64))
    assert out.metrics["token_rm/weight_pos"].item() == pytest.approx(w / 2)
    assert out.metrics["token_rm/weight_neg"].item() == pytest.approx(w / 2)
    # both sequence logits are 0: BCE = ln 2 each, / num_sequences = 2; accuracy: 0 > 0 is "wrong" -> 1 of 2
    assert out.rm_loss.item() == pytest.approx(math.log(2))
    assert out.metrics["token_rm/accuracy"].item() == pytest.approx(0.5)


@pytest.mark.parametrize("rescale,params", [("threshold", (0.5, 0.5)), ("topk", (0.25, 0.5))])
def test_token_weighted_policy_gradient_matches_loop(rescale, params):
    from tests.algo.loop_reference import kl_loop, weights_loop

    batch = random_batch(num_groups=3, k=4, estimator="grpo", seed=8)
    counts = count_tokens(batch.mask, batch.rewards)
    out = weighted_pg(batch, counts, rescale=rescale, params=params, kl_coef=0.05)
    out.policy_loss.backward()
    (g,) = grads(batch.logp)
    expected = 0.0
    for s in batch.samples():
        w = weights_loop(s["rm"].detach(), rescale, params[0] if s["reward"] > 0 else params[1], invert=s["reward"] <= 0)
        for t in range(s["logp"].numel()):
            ratio = torch.exp(s["logp"][t] - s["logp"][t].detach())
            expected = expected - ratio * s["adv"] * w[t] / counts.num_action_tokens
            expected = expected + 0.05 * kl_loop(s["logp"][t], s["ref"][t], "k3") / counts.num_action_tokens
    expected.backward()
    (e,) = grads(batch.logp)
    torch.testing.assert_close(out.policy_loss, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(g, e, atol=1e-6, rtol=0)


@pytest.mark.parametrize("splits", [[12], [1] * 12, [5, 7], [2, 9, 1]])
def test_token_weighted_policy_gradient_sums_over_microbatches(splits):
    batch = random_batch(num_groups=3, k=4, estimator="grpo", seed=12)
    counts = count_tokens(batch.mask, batch.rewards)
    whole = weighted_pg(batch, counts)
    (whole.policy_loss + whole.rm_loss).backward()
    g_whole = grads(batch.logp, batch.rm)
    sums, start = {}, 0
    for size in splits:
        part = weighted_pg(batch.rows(slice(start, start + size)), counts)
        (part.policy_loss + part.rm_loss).backward()
        for k, v in part.metrics.items():
            sums[k] = sums.get(k, 0) + v
        start += size
    for a, b in zip(grads(batch.logp, batch.rm), g_whole):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    assert sums.keys() == whole.metrics.keys()
    for k, v in whole.metrics.items():
        torch.testing.assert_close(sums[k], v, atol=1e-12, rtol=1e-12)


def test_weight_metrics_are_means_over_each_class_tokens():
    batch = random_batch(num_groups=2, k=4, seed=6, rewards=torch.tensor([[1.0, -1.0, -1.0, 1.0], [-1.0, 1.0, -1.0, -1.0]]))
    counts = count_tokens(batch.mask, batch.rewards)
    out = vectorised(batch, counts, True, **DEFAULTS)
    w_pos, w_neg = token_weights(batch.rm, batch.mask)
    pos = batch.rewards > 0
    assert out.metrics["token_rm/weight_pos"].item() == pytest.approx(w_pos[pos][batch.mask[pos]].mean().item())
    assert out.metrics["token_rm/weight_neg"].item() == pytest.approx(w_neg[~pos][batch.mask[~pos]].mean().item())
