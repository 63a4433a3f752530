"""Weight sync to a fleet of rollout engines: the collective transport vs the socket fallback.

    .venv/bin/python experiments/bench_rollout/weight_sync.py [--sizes tiny 100m] [--engines 2] [--repeats 3]

The trainer side is oreal's own ``RolloutFleet`` (oreal/launch/fleet.py); every engine is a real
``RolloutServer`` (oreal/launch/rollout_service.py) in its own process, found through a real
rendezvous folder, holding a sink engine that receives every tensor and drops it. So the figures
are the transport itself (one gloo broadcast to all engines vs pickled buckets streamed over each
engine's connection), not vLLM's weight loading, which is the same for both. The weights are the
HF-named tensors of a Qwen2 model in float32: the tiny CPU model's shapes, and a ~100M-parameter
Qwen2 (hidden 768, 12 layers, vocab 32k). Transports alternate (collective, socket, ...) over
``--repeats`` rounds, each round with fresh servers; a round times 5 full syncs after one warm-up
and keeps their median. MB/s counts the payload once (what every engine receives).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))
import benchlib  # noqa: E402

SIZES = {  # name: (vocab, hidden, ffn, layers, heads, kv_heads)
    "tiny": (1024, 64, 176, 4, 4, 2),
    "100m": (32000, 768, 2048, 12, 12, 4),
}
TRANSPORTS = ("collective", "socket")


def qwen2_tensors(size: str):
    """HF-named float32 tensors with the shapes of a Qwen2 model (random values)."""
    import torch

    vocab, h, ffn, layers, heads, kv = SIZES[size]
    hd = h // heads
    out = {"model.embed_tokens.weight": (vocab, h), "model.norm.weight": (h,), "lm_head.weight": (vocab, h)}
    for i in range(layers):
        p = f"model.layers.{i}."
        out |= {p + "self_attn.q_proj.weight": (h, h), p + "self_attn.q_proj.bias": (h,),
                p + "self_attn.k_proj.weight": (kv * hd, h), p + "self_attn.k_proj.bias": (kv * hd,),
                p + "self_attn.v_proj.weight": (kv * hd, h), p + "self_attn.v_proj.bias": (kv * hd,),
                p + "self_attn.o_proj.weight": (h, h), p + "mlp.gate_proj.weight": (ffn, h), p + "mlp.up_proj.weight": (ffn, h),
                p + "mlp.down_proj.weight": (h, ffn), p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,)}
    g = torch.Generator().manual_seed(0)
    return {name: torch.randn(shape, generator=g) for name, shape in out.items()}


class SinkEngine:
    """Receives weights and drops them (the transport is what is measured)."""

    def generate(self, prompts, n, sampling):
        return []

    def update_weights(self, buckets):
        for bucket in buckets:
            for _, t in bucket:
                t.sum()  # touch every byte

    def close(self):
        pass


def serve(run_dir: str, index: int, engines: int) -> None:
    from oreal.config.load import load_config
    from oreal.launch.layout import engine_slots
    from oreal.launch.rollout_service import RolloutServer

    slot = engine_slots(1, 0, 1, configured=engines, cpus=list(range(engines)))[index]
    RolloutServer(SinkEngine(), Path(run_dir), slot, load_config([]).rollout).serve()


def measure(size: str, transport: str, engines: int, syncs: int = 5) -> dict:
    from oreal.config.load import load_config
    from oreal.engines.weights import buckets
    from oreal.launch.fleet import RolloutFleet

    tensors = qwen2_tensors(size)
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    with tempfile.TemporaryDirectory(prefix="sync-") as run_dir:
        env = dict(os.environ, SLURM_JOB_ID="bench", SLURM_RESTART_COUNT="0")
        servers = [subprocess.Popen([sys.executable, __file__, "--serve", run_dir, str(i), str(engines)], env=env)
                   for i in range(engines)]
        os.environ.update(SLURM_JOB_ID="bench", SLURM_RESTART_COUNT="0")
        fleet = RolloutFleet.connect(Path(run_dir), engines, load_config([f"rollout.weight_transport={transport}"]).rollout)
        times = []
        for i in range(syncs + 1):
            start = time.perf_counter()
            fleet.update_weights(buckets(tensors.items(), 64 << 20))
            if i:  # the first sync warms up
                times.append(time.perf_counter() - start)
        fleet.close()
        for s in servers:
            s.wait(60)
    seconds = statistics.median(times)
    return {"seconds": seconds, "mb_per_s": nbytes / 1e6 / seconds, "mb": nbytes / 1e6}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        return serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--engines", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    before = benchlib.snapshot()
    rows, ratios = [], []
    for size in args.sizes:
        runs = benchlib.run_alternating(TRANSPORTS, args.repeats, lambda t, r: measure(size, t, args.engines))
        for t in TRANSPORTS:
            s = benchlib.Spread.of([r["seconds"] for r in runs[t]])
            mbs = benchlib.Spread.of([r["mb_per_s"] for r in runs[t]])
            rows.append([size, f"{runs[t][0]['mb']:.1f}", t, s.fmt(".3f"), mbs.fmt(".0f")])
        ratios.append((f"{size}: socket / collective seconds per sync",
                       benchlib.Ratio.of([r["seconds"] for r in runs["socket"]], [r["seconds"] for r in runs["collective"]])))
    load = benchlib.MachineLoad(before, benchlib.snapshot())
    print(benchlib.render_table(f"Weight sync to {args.engines} engines (oreal RolloutFleet, sink engines)",
                                ["model", "MB per sync", "transport", "s per sync", "MB/s"], rows, load=load,
                                systems=list(TRANSPORTS), repeats=args.repeats, ratios=ratios))


if __name__ == "__main__":
    main()
