"""One engine run for the Megatron parity tests, started under torchrun (or alone for the
torch engine): scores a batch, takes three OREAL steps (token RM included) and saves, on rank
0, the per-step losses, the first step's gradients and the final weights in HF names.

    torchrun --standalone --nproc_per_node 2 tests/engines/megatron/worker.py MODEL OUT --tp 2
    ... --attention sdpa --packing --micro-batch-tokens 40   # fused attention on packed rows
"""

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from tests.engines.policy_helpers import OPTIM, counts_of, oreal_loss_fn, rl_batch  # noqa: E402

STEPS = 3
# AdamW turns gradients of ~1e-8 (which carry float32 summation-order noise of ~1%) into
# full-size steps; at 1e-4 that noise moves weights by ~1e-6, under the 1e-5 tolerance.
# Three warm-up steps: the learning rate differs at every step, so a resume that restored the
# schedule but not the optimiser's own learning rate shows.
OPTIM = dataclasses.replace(OPTIM, lr=1e-4, min_lr=1e-5, warmup_steps=3)
def batch(num, seed):
    """The policy tests' batch without token 0, the pad id: transformers' embedding never
    updates the pad row (``padding_idx``), Megatron's has no such notion."""
    b = rl_batch(num, seed=seed)
    b.token_ids = [[t + 1 for t in seq] for seq in b.token_ids]
    return b


LOSS_KEYS = ("loss/positive", "loss/negative", "loss/kl", "loss/token_rm", "token_rm/accuracy", "kl/ref", "entropy/mean")


def grads_recorder(engine, opt, named):
    """Wrap ``opt.step`` to keep the (clipped, data-parallel summed) gradients of its first call."""
    seen, calls = {}, []
    step = opt.step

    def recording_step(*a, **k):
        if not calls:  # every rank takes part in the gather; rank 0 receives the tensors
            seen.update(named())
        calls.append(1)
        return step(*a, **k)

    opt.step = recording_step
    return seen


def run_megatron(model_dir, tp, pp, mbs, attention="local", packing=False, micro_batch_tokens=0, schedule_delay=0,
                 distributed_optimizer=False, dtype="float32"):
    from oreal.engines.megatron.engine import MegatronPolicyEngine

    engine = MegatronPolicyEngine(model_dir, tensor_parallel_size=tp, pipeline_parallel_size=pp, use_reference=True,
                                  use_token_rm=True, policy_optim=OPTIM, token_rm_optim=OPTIM, total_steps=10,
                                  policy_schedule_delay=schedule_delay, micro_batch_size=mbs, attention=attention,
                                  packing=packing, micro_batch_tokens=micro_batch_tokens,
                                  distributed_optimizer=distributed_optimizer, dtype=dtype)
    master = engine.policy.master  # in bf16 the gradients have moved to the fp32 masters (of the parameters it owns)
    grads = grads_recorder(engine, engine.policy.opt, lambda: {
        k: v for unit in engine._gathered(engine.policy, {n: master[n].grad if n in master else p.grad
                                                          for n, p in engine.policy.params().items()})
        for k, v in unit.items()})
    logits = None
    if pp == 1:
        logits = megatron_logits(engine, batch(4, seed=5))
    return engine, grads, lambda: {k: v for unit in engine._gathered(engine.policy) for k, v in unit.items()}, logits


def megatron_logits(engine, batch):
    """Full-vocabulary logits (gathered over TP ranks) of the first sequence, for the HF check."""
    import torch.distributed as dist
    from megatron.core import parallel_state as ps

    mb = engine._micro_batches(batch, [0])[0]
    with torch.no_grad():
        out = engine._forward(engine.policy.module, mb)[0, : len(batch.token_ids[0])].contiguous()
    parts = [torch.empty_like(out) for _ in range(engine.layout.tp)]
    dist.all_gather(parts, out, group=ps.get_tensor_model_parallel_group())
    return torch.cat(parts, -1)


def run_torch(model_dir, mbs, schedule_delay=0):
    from oreal.engines.torch_policy import TorchPolicyEngine

    engine = TorchPolicyEngine(model_dir, use_reference=True, use_token_rm=True, policy_optim=OPTIM, token_rm_optim=OPTIM,
                               total_steps=10, policy_schedule_delay=schedule_delay, micro_batch_size=mbs)
    grads = grads_recorder(engine, engine.policy_opt, lambda: {n: p.grad.clone() for n, p in engine.policy.named_parameters()})
    return engine, grads, lambda: {k: v.detach().clone() for k, v in engine.policy.state_dict().items()}, None


def optimizers(engine, model):
    """The torch.optim optimiser of ``model`` in either engine."""
    if hasattr(engine, "policy_opt"):
        return engine.policy_opt if model == "policy" else engine.rm_opt
    return getattr(engine, model).opt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--engine", default="megatron")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--pp", type=int, default=1)
    ap.add_argument("--micro-batch-size", type=int, default=3)
    ap.add_argument("--save-state", help="save the engine state into this folder after the first step")
    ap.add_argument("--resume", help="load the state saved in this folder and start at the second step")
    ap.add_argument("--attention", default="local", help="engine.attention of the Megatron engine")
    ap.add_argument("--packing", action="store_true", help="packed micro-batches of --micro-batch-tokens tokens")
    ap.add_argument("--micro-batch-tokens", type=int, default=40)
    ap.add_argument("--score-only", action="store_true", help="score, and take no training step (flex on CPU)")
    ap.add_argument("--freeze-first", action="store_true", help="the first step trains the token RM only")
    ap.add_argument("--schedule-delay", type=int, default=0, help="policy_schedule_delay of the engine")
    ap.add_argument("--distributed-optimizer", action="store_true", help="optimiser state split over data-parallel ranks")
    ap.add_argument("--dtype", default="float32", help="the Megatron engine's weights (bfloat16: fp32 masters)")
    ap.add_argument("--export", help="write the trained policy into this folder as a Hugging Face model")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.engine == "torch":
        engine, grads, weights, logits = run_torch(args.model_dir, args.micro_batch_size, args.schedule_delay)
    else:
        engine, grads, weights, logits = run_megatron(args.model_dir, args.tp, args.pp, args.micro_batch_size, args.attention,
                                                      args.packing, args.micro_batch_tokens, args.schedule_delay,
                                                      args.distributed_optimizer, args.dtype)
    scored = engine.score(batch(8, seed=7), with_entropy=True)
    rank = int(os.environ.get("RANK", "0"))
    if args.score_only:
        if rank == 0:
            torch.save({"logits": logits, "logprobs": scored.logprobs, "entropy": scored.entropy}, args.out)
        return
    if args.resume:
        engine.load(Path(args.resume))
    losses, lrs, grad_norms = [], [], []
    for step in range(1 if args.resume else 0, STEPS):
        step_batch = batch(8, seed=step)
        # the learning rates this step's update uses (a resume must restore them, not only the schedule)
        lrs.append([g["lr"] for m in ("policy", "token_rm") for g in optimizers(engine, m).param_groups])
        frozen = args.freeze_first and step == 0
        stats = engine.train_step(step_batch, oreal_loss_fn(), counts_of(step_batch), update_policy=not frozen)
        losses.append({k: stats.metrics[k] for k in LOSS_KEYS})
        grad_norms.append([stats.metrics.get(f"optim/{m}_grad_norm") for m in ("policy", "token_rm")])
        if step == 0 and args.save_state:
            Path(args.save_state).mkdir(parents=True, exist_ok=True)
            engine.save(Path(args.save_state))  # every rank writes its own shards
    final = weights()
    if args.export:
        engine.save_pretrained(args.export)  # every rank takes part in the gathers
    if rank == 0:
        torch.save({"losses": losses, "lrs": lrs, "grad_norms": grad_norms, "grads": dict(grads), "weights": final, "logits": logits,
                    "logprobs": scored.logprobs, "entropy": scored.entropy}, args.out)


if __name__ == "__main__":
    main()
