"""GPU check: Megatron engine training throughput and MFU on a ~1.5B Qwen2, padded-unfused vs
packed-fused, TP 1, bf16, sequences up to 8k tokens with the length spread of OREAL responses.

    python experiments/gpu_checks/megatron_mfu.py                      # on one GPU (H200 peak assumed)
    python experiments/gpu_checks/megatron_mfu.py --tiny               # CPU smoke run of the same code

The model has Qwen2-1.5B's architecture (hidden 1536, 28 layers, 12 heads, 2 KV heads, FFN
8960, vocab 151936, tied embeddings: 1.54B parameters) with random weights, built here (no hub).
Each variant builds the engine (policy, frozen reference and token RM, as an OREAL run does),
takes ``--warmup`` untimed and ``--timed`` timed OREAL steps on one fixed batch and prints:
tokens per second (real tokens, median step), the step's model FLOPs (``oreal.launch.plan.
step_flops``: real tokens only, causal attention as its half) per second, MFU against
``--peak-tflops`` (default 989, the H200's / H100 SXM's bf16 dense peak) and the peak GPU
memory. A variant that runs out of memory is reported as such and the next one runs.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments" / "bench_megatron"))
import workload  # noqa: E402

# name: (engine.attention, engine.packing)
VARIANTS = {"padded_local": ("local", False), "padded_sdpa": ("sdpa", False), "packed_sdpa": ("sdpa", True),
            "packed_flex": ("flex", True), "packed_te": ("te", True)}
QWEN2_1_5B = dict(hidden=1536, layers=28, heads=12, kv_heads=2, ffn=8960, vocab=151936, tied=True)
TINY = dict(hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=256, tied=True)


def run_variant(name: str, model_dir: Path, args: argparse.Namespace) -> None:
    from oreal.config.schema import OptimConfig
    from oreal.engines.megatron.engine import MegatronPolicyEngine
    from oreal.launch.plan import step_flops

    attention, packing = VARIANTS[name]
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    optim = OptimConfig(lr=1e-6, min_lr=1e-7, warmup_steps=1)
    engine = MegatronPolicyEngine(str(model_dir), dtype=args.dtype, use_reference=not args.policy_only,
                                  use_token_rm=not args.policy_only, policy_optim=optim, token_rm_optim=optim,
                                  total_steps=args.warmup + args.timed, micro_batch_size=args.rows, attention=attention,
                                  packing=packing, micro_batch_tokens=args.rows * args.max_len)
    lengths = workload.sequence_lengths(args.sequences, args.max_len, args.seed)
    batch, counts, loss_fn = workload.oreal_batch(lengths, engine.dims.vocab, args.seed)
    mbs = engine._micro_batches(batch, list(range(len(batch))))
    computed, real = sum(mb.shape[0] * mb.shape[1] for mb in mbs), sum(n for _, n in lengths)
    seconds, losses = [], []
    for _ in range(args.warmup + args.timed):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        stats = engine.train_step(batch, loss_fn, counts)
        if cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        losses.append(stats.metrics["loss/positive"] + stats.metrics["loss/negative"])
    step_s = statistics.median(seconds[args.warmup:])
    flops = step_flops(workload.model_config(model_dir), [n for _, n in lengths], reference=not args.policy_only,
                       token_rm=not args.policy_only)
    mfu = f"{flops / step_s / (args.peak_tflops * 1e12):.3f}" if cuda else "n/a (CPU)"
    memory = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda else "n/a (CPU)"
    print(f"{name:<13} attention={attention} packing={packing}: {len(mbs)} micro-batches of {mbs[0].shape[0]} x "
          f"{mbs[0].shape[1]} ({100 * (1 - real / computed):.0f}% padding)  step {step_s:.2f} s "
          f"(all: {', '.join(f'{s:.2f}' for s in seconds)})  {real / step_s:,.0f} tokens/s  "
          f"{flops / step_s / 1e12:.1f} TFLOP/s  MFU {mfu}  peak memory {memory}  "
          f"policy loss {', '.join(f'{x:.5f}' for x in losses)}", flush=True)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["padded_local", "packed_sdpa"], choices=list(VARIANTS))
    ap.add_argument("--tiny", action="store_true", help="a tiny model, short sequences: runs on CPU in seconds")
    ap.add_argument("--max-len", type=int, default=8192, help="context the 16k-token length spread is scaled to")
    ap.add_argument("--sequences", type=int, default=32)
    ap.add_argument("--rows", type=int, default=1, help="sequences per padded micro-batch (packed: rows x max-len tokens)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--timed", type=int, default=2)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="the GPU's dense peak in --dtype (H200 / H100 SXM bf16: 989)")
    ap.add_argument("--policy-only", action="store_true", help="no reference and no token RM (a third of the model states)")
    ap.add_argument("--model-dir", type=Path, help="where the random model is built (default: a temporary folder)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.tiny:
        args.max_len, args.sequences, args.warmup, args.timed = min(args.max_len, 256), min(args.sequences, 8), 1, 1
    return args


def main() -> None:
    args = parse_args()
    os.environ.setdefault("MASTER_PORT", str(workload.free_port()))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    import megatron.core

    te = "installed" if importlib.util.find_spec("transformer_engine") else "not installed"
    print(f"device {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}; torch {torch.__version__}, "
          f"megatron-core {megatron.core.__version__}, Transformer Engine {te}; {args.dtype}, TP 1; "
          f"{args.sequences} sequences of at most {args.max_len} tokens", flush=True)
    with tempfile.TemporaryDirectory(prefix="megatron_mfu_") as tmp:  # the model is removed afterwards unless --model-dir
        run_all(args, args.model_dir or Path(tmp) / ("tiny" if args.tiny else "qwen2_1.5b_random"), device)


def run_all(args: argparse.Namespace, model_dir: Path, device: str) -> None:
    dims = TINY if args.tiny else QWEN2_1_5B
    start = time.perf_counter()
    workload.build_model(model_dir, max_positions=max(args.max_len, 32768), device=device, **dims)
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    lengths = [n for _, n in workload.sequence_lengths(args.sequences, args.max_len, args.seed)]
    print(f"model built in {time.perf_counter() - start:.0f} s; lengths: {sum(lengths):,} tokens, mean {statistics.mean(lengths):.0f}, "
          f"max {max(lengths)}", flush=True)
    for name in args.variants:
        try:
            run_variant(name, model_dir, args)
        except torch.OutOfMemoryError as exc:
            print(f"{name:<13} out of GPU memory: {str(exc).splitlines()[0]}", flush=True)
        except (ValueError, NotImplementedError) as exc:  # te without Transformer Engine; flex training on CPU
            print(f"{name:<13} skipped: {exc}", flush=True)
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
