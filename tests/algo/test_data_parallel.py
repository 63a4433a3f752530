"""Two gloo processes, each with half of a step's samples and the GLOBAL token counts, give
the same gradient as one process with the whole step (REFERENCE.md: the loss is right under
any data-parallel size)."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from oreal.algo import count_tokens, oreal_loss
from tests.algo.batches import random_batch

WORLD = 2


class TinyPolicy(torch.nn.Module):
    """log-probs and token-RM scores as functions of parameters, so gradients are of weights."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.scale = torch.nn.Parameter(torch.rand(12, generator=g, dtype=torch.float64) + 0.5)
        self.rm = torch.nn.Parameter(torch.randn(12, generator=g, dtype=torch.float64))

    def forward(self, base_logp, base_rm):
        return base_logp * self.scale, base_rm * self.rm


def step_gradient(model, batch, counts, dp_size):
    logp, rm = model(batch.logp.detach(), batch.rm.detach())
    out = oreal_loss(logprobs=logp, ref_logprobs=batch.ref, rm_scores=rm, mask=batch.mask, rewards=batch.rewards,
                     advantages=batch.adv, num_positive_tokens=counts.num_positive_tokens,
                     num_negative_tokens=counts.num_negative_tokens, num_action_tokens=counts.num_action_tokens,
                     num_sequences=counts.num_sequences)
    # each rank scales by the DP size because the all-reduce averages gradients
    ((out.policy_loss + out.rm_loss) * dp_size).backward()


def worker(rank, port, result_file):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    batch = random_batch(num_groups=4, k=4, max_len=12, seed=21)
    local = batch.rows(slice(rank * 8, rank * 8 + 8))
    # global counts: all-reduce the local counts
    c = count_tokens(local.mask, local.rewards)
    t = torch.tensor([c.num_positive_tokens, c.num_negative_tokens, c.num_action_tokens, c.num_sequences])
    dist.all_reduce(t)
    from oreal.algo import TokenCounts

    counts = TokenCounts(*map(int, t))
    model = TinyPolicy()
    step_gradient(model, local, counts, WORLD)
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= WORLD
    if rank == 0:
        torch.save([p.grad for p in model.parameters()], result_file)
    dist.destroy_process_group()


def test_two_process_gradients_equal_single_process(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = tmp_path / "grads.pt"
    mp.start_processes(worker, args=(port, str(result)), nprocs=WORLD, start_method="spawn", join=True)
    dp_grads = torch.load(result)

    batch = random_batch(num_groups=4, k=4, max_len=12, seed=21)
    model = TinyPolicy()
    step_gradient(model, batch, count_tokens(batch.mask, batch.rewards), 1)
    for got, want in zip(dp_grads, [p.grad for p in model.parameters()]):
        assert want.abs().sum() > 0
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)
