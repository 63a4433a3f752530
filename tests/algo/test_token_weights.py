import math

import pytest
import torch

from oreal.algo import running_mean, token_weights
from oreal.algo.token_weights import threshold_rescale, topk_rescale
from tests.algo.loop_reference import weights_loop


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_running_mean_ignores_prompt_and_padding():
    s = torch.tensor([[9.0, 1.0, 3.0, 2.0, 7.0]])
    m = torch.tensor([[False, True, True, True, False]])
    torch.testing.assert_close(running_mean(s, m), torch.tensor([[0.0, 1.0, 2.0, 2.0, 0.0]]))


def test_threshold_weights_hand_computed():
    # scores [2, -2]: running means 2, 0 -> p = sigmoid(2), 0.5
    s = torch.tensor([[2.0, -2.0]], dtype=torch.float64)
    m = torch.ones(1, 2, dtype=torch.bool)
    w_pos, w_neg = token_weights(s, m, rescale="threshold", correct_param=0.5, incorrect_param=0.5)
    p = sigmoid(2.0)
    torch.testing.assert_close(w_pos, torch.tensor([[(p - 0.5) / 0.5, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(w_neg, torch.tensor([[0.0, 0.0]], dtype=torch.float64))


def test_threshold_rescale_respects_separate_thresholds():
    p = torch.tensor([[0.2, 0.6, 0.9]])
    m = torch.ones(1, 3, dtype=torch.bool)
    torch.testing.assert_close(threshold_rescale(p, m, 0.5), torch.tensor([[0.0, 0.2, 0.8]]))
    torch.testing.assert_close(threshold_rescale(p, m, 0.0), p)


def test_topk_hand_computed():
    p = torch.tensor([[0.1, 0.9, 0.5, 0.7, 0.3]])
    m = torch.tensor([[True, True, True, True, False]])  # n=4, ratio 0.5 -> keep 0.9 and 0.7
    out = topk_rescale(p, m, 0.5)
    torch.testing.assert_close(out, torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0]]))
    out = topk_rescale(p, m, 0.75)  # keep 0.9, 0.7, 0.5 -> (v-0.5)/0.4
    torch.testing.assert_close(out, torch.tensor([[0.0, 1.0, 0.0, 0.5, 0.0]]))


def test_topk_equal_values_and_empty_rows():
    p = torch.tensor([[0.4, 0.4, 0.4], [0.9, 0.1, 0.5]])
    m = torch.tensor([[True, True, True], [True, False, False]])
    out = topk_rescale(p, m, 0.5)  # row 0: k=1, single kept value -> 1; row 1: n=1, k=0 -> zeros
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))


@pytest.mark.parametrize("rescale,params", [("threshold", (0.5, 0.5)), ("threshold", (0.3, 0.7)), ("topk", (0.25, 0.5))])
def test_matches_loop(rescale, params):
    g = torch.Generator().manual_seed(1)
    s = torch.randn(6, 15, generator=g, dtype=torch.float64) * 2
    m = torch.zeros(6, 15, dtype=torch.bool)
    for i, (a, n) in enumerate([(1, 9), (0, 15), (3, 2), (2, 12), (5, 1), (4, 7)]):
        m[i, a:a + n] = True
    w_pos, w_neg = token_weights(s, m, rescale=rescale, correct_param=params[0], incorrect_param=params[1])
    for i in range(6):
        torch.testing.assert_close(w_pos[i][m[i]], weights_loop(s[i][m[i]], rescale, params[0], invert=False))
        torch.testing.assert_close(w_neg[i][m[i]], weights_loop(s[i][m[i]], rescale, params[1], invert=True))
        assert not w_pos[i][~m[i]].any() and not w_neg[i][~m[i]].any()


def test_weights_carry_no_gradient():
    s = torch.randn(2, 4, requires_grad=True)
    w_pos, w_neg = token_weights(s, torch.ones(2, 4, dtype=torch.bool))
    assert not w_pos.requires_grad and not w_neg.requires_grad


def test_bad_rescale_is_named():
    with pytest.raises(ValueError, match="unknown token-weight rescale 'softmax'"):
        token_weights(torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.bool), rescale="softmax")


def test_uniform_weights_are_one_on_the_response_whatever_the_scores():
    s = torch.tensor([[5.0, -5.0, 0.3, 9.0], [-2.0, 1.0, 0.0, 0.0]])
    m = torch.tensor([[False, True, True, True], [True, True, False, False]])
    w_pos, w_neg = token_weights(s, m, rescale="uniform", correct_param=0.9, incorrect_param=0.1)
    expected = torch.tensor([[0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(w_pos, expected)
    torch.testing.assert_close(w_neg, expected)
