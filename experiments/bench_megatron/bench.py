"""Megatron engine training-step throughput on CPU: padded vs packed micro-batches, local
(unfused) vs SDPA attention, on sequences with the length spread of OREAL responses.

    python experiments/bench_megatron/bench.py --repeats 3           # the recorded measurement
    python experiments/bench_megatron/bench.py --smoke                # seconds: does it run?

Systems (engine.attention, engine.packing): ``padded_local`` (the engine before issue #18),
``padded_sdpa``, ``packed_sdpa``. Each run is a fresh single-rank process (peak memory is its
own) that builds the engine on a random-weight Qwen2 model (float32, TP 1), takes
``--warmup`` untimed and ``--timed`` timed OREAL steps (reference forward, token RM and policy
forward and backward) on one fixed batch, and reports real tokens per second (median over its
timed steps). Padded micro-batches hold ``--rows`` sequences, each padded to the longest of the
batch; packed ones hold up to ``--rows x --max-len`` tokens, the same micro-batch size in
tokens. Lengths: ``workload.py`` (a log-normal of OREAL-like responses, scaled from a 16k to a
``--max-len`` context). The systems alternate over ``--repeats`` rounds (experiments/benchlib.py);
the table gives medians (min-max), the ratios to ``padded_local`` with their range over rounds,
and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
sys.path.insert(0, str(ROOT))
import benchlib  # noqa: E402

SYSTEMS = {"padded_local": ("local", False), "padded_sdpa": ("sdpa", False), "packed_sdpa": ("sdpa", True)}
# hidden 384 x 6 layers (~11M parameters): big enough that matrix multiplies, not Python, set the pace on CPU
MODEL = dict(hidden=384, layers=6, heads=6, kv_heads=2, ffn=1024, vocab=2048, tied=False)
SMOKE_MODEL = dict(hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=256, tied=False)


def run_worker(args: argparse.Namespace) -> None:
    import torch

    from oreal.config.schema import OptimConfig
    from oreal.engines.megatron.engine import MegatronPolicyEngine
    import workload  # this folder, put on the path by main

    os.environ["MASTER_PORT"] = str(workload.free_port())
    attention, packing = SYSTEMS[args.worker]
    optim = OptimConfig(lr=1e-5, min_lr=1e-6, warmup_steps=1)
    engine = MegatronPolicyEngine(str(args.model), dtype="float32", use_reference=True, use_token_rm=True,
                                  policy_optim=optim, token_rm_optim=optim, total_steps=args.warmup + args.timed,
                                  micro_batch_size=args.rows, attention=attention, packing=packing,
                                  micro_batch_tokens=args.rows * args.max_len)
    lengths = workload.sequence_lengths(args.sequences, args.max_len, args.seed)
    batch, counts, loss_fn = workload.oreal_batch(lengths, engine.dims.vocab, args.seed)
    mbs = engine._micro_batches(batch, list(range(len(batch))))
    seconds = []
    for _ in range(args.warmup + args.timed):
        start = time.perf_counter()
        stats = engine.train_step(batch, loss_fn, counts)
        seconds.append(time.perf_counter() - start)
    step_s = statistics.median(seconds[args.warmup:])
    real = sum(n for _, n in lengths)
    benchlib.write_result(args.result_dir, {
        "tokens_per_s": real / step_s, "step_s": step_s, "real_tokens": real,
        "computed_tokens": sum(mb.shape[0] * mb.shape[1] for mb in mbs), "num_micro_batches": len(mbs),
        "first_loss": stats.metrics["loss/positive"] + stats.metrics["loss/negative"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": torch.get_num_threads()})


def table(runs: dict[str, list[dict]], load: benchlib.MachineLoad, args: argparse.Namespace, params: int) -> str:
    spread = lambda system, key: benchlib.Spread.of([r[key] for r in runs[system]])  # noqa: E731
    rows = []
    for name, results in runs.items():
        r = results[0]
        rows.append([name, spread(name, "tokens_per_s").fmt(".0f"), spread(name, "step_s").fmt(".2f"),
                     f"{r['computed_tokens']:,} ({100 * (1 - r['real_tokens'] / r['computed_tokens']):.0f}% padding)",
                     str(r["num_micro_batches"]), spread(name, "peak_rss_mb").fmt(".0f")])
    base = "padded_local" if "padded_local" in runs else args.systems[0]
    ratios = [(f"{name} / {base}, tokens/s", benchlib.Ratio.of([r["tokens_per_s"] for r in runs[name]],
                                                                [r["tokens_per_s"] for r in runs[base]]))
              for name in runs if name != base]
    title = (f"bench_megatron: {args.sequences} sequences, {runs[base][0]['real_tokens']:,} tokens "
             f"(log-normal lengths, --max-len {args.max_len}), Qwen2 {params / 1e6:.1f}M parameters float32 TP 1, "
             f"median of {args.timed} timed OREAL steps after {args.warmup}")
    columns = ["system", "tokens / s", "s / step", "tokens computed per pass", "micro-batches", "peak RSS (MB)"]
    return benchlib.render_table(title, columns, rows, load=load, systems=args.systems, repeats=args.repeats, ratios=ratios)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS),
                    help="the order of one round; every round runs each once")
    ap.add_argument("--repeats", type=int, default=3, help="rounds: runs per system, in alternating order (default 3)")
    ap.add_argument("--sequences", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=1024, help="context length the 16k length spread is scaled to")
    ap.add_argument("--rows", type=int, default=2, help="sequences per padded micro-batch (packed: rows x max-len tokens)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--timed", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="a tiny model and batch, one repeat: checks that it runs")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_megatron")
    ap.add_argument("--worker", choices=list(SYSTEMS), help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result-dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.smoke:
        args.sequences, args.max_len, args.repeats, args.warmup, args.timed = 6, 128, 1, 1, 1
    return args


def main() -> None:
    args = parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    if args.worker:
        return run_worker(args)
    before = benchlib.snapshot()  # before anything of ours runs: rule 1 of benchlib's quiet-machine check
    import workload

    dims = SMOKE_MODEL if args.smoke else MODEL
    name = "smoke" if args.smoke else "h{hidden}_l{layers}_v{vocab}".format(**dims)
    model = workload.build_model(args.out / "models" / f"{name}_ctx{args.max_len}", max_positions=args.max_len, **dims)
    from oreal.launch.plan import param_count

    params = param_count(workload.model_config(model))

    def measure(system: str, repeat: int) -> dict:
        return benchlib.in_fresh_process([sys.executable, __file__, "--worker", system, "--model", str(model),
                                          *(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                                            if k in ("sequences", "max_len", "rows", "warmup", "timed", "seed"))])

    runs = benchlib.run_alternating(args.systems, args.repeats, measure)
    load = benchlib.MachineLoad(before, benchlib.snapshot())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"runs": runs, "load": load.as_dict(), "args": {
        k: str(v) for k, v in vars(args).items()}, "lengths": workload.sequence_lengths(args.sequences, args.max_len, args.seed)},
        indent=2))
    print(table(runs, load, args, params))


if __name__ == "__main__":
    main()
