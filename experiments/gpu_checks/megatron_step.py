"""GPU check for the Megatron engine: the tiny model, TP=1 on one GPU, bf16, one OREAL step
(token RM and reference included). Prints the losses and the step time; runs on CPU too
(that is how it is tested before a GPU is available).

    torchrun --standalone --nproc_per_node 1 experiments/gpu_checks/megatron_step.py [--dtype bfloat16]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()

    from oreal.algo import OrealConfig, get_variant
    from oreal.config.load import load_config
    from oreal.config.schema import OptimConfig
    from oreal.engines.megatron.engine import MegatronPolicyEngine
    from oreal.engines.tiny import build_tiny
    from tests.engines.policy_helpers import counts_of, rl_batch

    cfg = load_config([])
    model_dir = build_tiny(cfg.model, cfg.data.cpu_task, Path(tempfile.mkdtemp()) / "tiny")
    optim = OptimConfig(lr=1e-4, min_lr=1e-5, warmup_steps=1)
    engine = MegatronPolicyEngine(str(model_dir), dtype=args.dtype, use_reference=True, use_token_rm=True,
                                  policy_optim=optim, token_rm_optim=optim, total_steps=args.steps, micro_batch_size=4)
    variant, algo = get_variant("oreal"), OrealConfig()
    print(f"device={engine.device} ({torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}) dtype={args.dtype}")
    for step in range(args.steps):
        batch = rl_batch(32, seed=step)
        batch.token_ids = [[t + 1 for t in seq] for seq in batch.token_ids]  # keep clear of the pad id
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        stats = engine.train_step(batch, lambda inputs, counts: variant.loss(algo, inputs, counts), counts_of(batch))
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        m = stats.metrics
        print(f"step {step}: policy loss {m['loss/positive'] + m['loss/negative'] + m['loss/kl']:.5f}  "
              f"token-RM loss {m['loss/token_rm']:.5f}  grad norm {m['optim/policy_grad_norm']:.4f}  "
              f"entropy {m['entropy/mean']:.4f}  step {seconds:.3f} s")
    if torch.cuda.is_available():
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
