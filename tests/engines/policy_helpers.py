"""A fixed RL batch and loss for the policy-engine tests."""

import torch

from oreal.algo import OrealConfig, TokenCounts, get_variant
from oreal.config.schema import OptimConfig
from oreal.engines.protocols import SequenceBatch

OPTIM = OptimConfig(lr=1e-3, min_lr=1e-4, warmup_steps=1, weight_decay=0.01, max_grad_norm=1.0)


def rl_batch(num: int = 8, seed: int = 0) -> SequenceBatch:
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(0, 460, (int(torch.randint(6, 24, (1,), generator=g)),), generator=g).tolist() for _ in range(num)]
    prompts = [int(torch.randint(2, 5, (1,), generator=g)) for _ in range(num)]
    rewards = torch.tensor([1.0 if i % 3 == 0 else -1.0 for i in range(num)])
    advantages = rewards * torch.linspace(0.5, 1.5, num)
    return SequenceBatch(seqs, prompts, rewards, advantages)


def counts_of(batch: SequenceBatch) -> TokenCounts:
    n = batch.num_response_tokens()
    pos = sum(k for k, r in zip(n, batch.rewards) if r > 0)
    return TokenCounts(pos, sum(n) - pos, sum(n), len(batch))


def oreal_loss_fn(cfg=None):
    cfg = cfg or OrealConfig()
    variant = get_variant(cfg.name)
    return lambda inputs, counts: variant.loss(cfg, inputs, counts)


def make_engine(model_dir, **kw):
    from oreal.engines.torch_policy import TorchPolicyEngine

    args = dict(use_reference=True, use_token_rm=True, policy_optim=OPTIM, token_rm_optim=OPTIM, total_steps=10, micro_batch_size=3)
    args.update(kw)
    return TorchPolicyEngine(str(model_dir), **args)


def params(engine):
    out = {f"policy.{k}": v.detach().clone() for k, v in engine.policy.named_parameters()}
    if engine.token_rm is not None:
        out.update({f"rm.{k}": v.detach().clone() for k, v in engine.token_rm.named_parameters()})
    return out
