import subprocess
import sys

import pytest
import torch

from oreal.engines.logprobs import chunked_entropy, chunked_logprobs


def plain(hidden, weight, labels):
    return torch.log_softmax(hidden.float() @ weight.float().t(), dim=-1).gather(1, labels[:, None]).squeeze(1)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_values_and_gradients_equal_plain_log_softmax(chunk):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(53, 16, generator=g, requires_grad=True)
    weight = torch.randn(301, 16, generator=g, requires_grad=True)
    labels = torch.randint(0, 301, (53,), generator=g)
    upstream = torch.randn(53, generator=g)
    got = chunked_logprobs(hidden, weight, labels, chunk)
    (got * upstream).sum().backward()
    gh, gw = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    want = plain(hidden, weight, labels)
    (want * upstream).sum().backward()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(gh, hidden.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gw, weight.grad, atol=1e-5, rtol=1e-5)


def test_entropy_equals_plain_entropy():
    hidden, weight = torch.randn(20, 8), torch.randn(50, 8)
    logp = torch.log_softmax(hidden @ weight.t(), dim=-1)
    torch.testing.assert_close(chunked_entropy(hidden, weight, 3), -(logp.exp() * logp).sum(-1))


PEAK_SCRIPT = r"""
import resource, sys, torch
torch.set_num_threads(1)
from oreal.engines.logprobs import chunked_logprobs
n, v, h = 4096, 65536, 64   # a full fp32 [n, v] tensor is 1 GiB
hidden = torch.randn(n, h, requires_grad=True)
weight = (torch.randn(v, h) * 0.02).requires_grad_()
labels = torch.randint(0, v, (n,))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.argv[1] == "plain":
    out = torch.log_softmax(hidden @ weight.t(), dim=-1).gather(1, labels[:, None]).squeeze(1)
else:
    out = chunked_logprobs(hidden, weight, labels, int(sys.argv[1]))
out.sum().backward()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def peak_growth(mode: str) -> int:
    proc = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, mode], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip().splitlines()[-1])


def test_never_allocates_the_full_vocabulary_tensor():
    """Forward + backward at 4096 tokens x 65,536 vocabulary: the plain computation grows the
    process by more than the 1 GiB full fp32 [tokens, vocab] tensor; the chunked one (256-token
    chunks of 64 MiB) by less than a third of it."""
    full = 4096 * 65536 * 4
    assert peak_growth("plain") > full
    assert peak_growth("256") < full / 3
