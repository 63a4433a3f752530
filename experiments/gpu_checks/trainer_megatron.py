"""The trainer with the Megatron engine on one GPU: a sharded save, a resume from it, and the
resumed run against the uninterrupted one (issue #14's GPU check).

    python experiments/gpu_checks/trainer_megatron.py [--cpu] [--out DIR]

Three runs of `python -m oreal.train` (the tiny model built locally, no hub; HF rollouts, so
no vLLM is needed; Megatron TP 1 in bf16 on CUDA, float32 with --cpu):

1. 4 steps straight through, a sharded checkpoint every step;
2. the same config stopped after step 2 (trainer.num_steps is not part of a run's identity, so
   the same folder is then resumed);
3. the resume of run 2 to step 4, from its step-2 sharded checkpoint.

It prints the checkpoint's files (one shard file per rank), the per-step losses of runs 1 and
3, and their largest difference; on CUDA the losses of a resumed run match to bf16 rounding.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

KEYS = ("loss/positive", "loss/negative", "loss/kl", "loss/token_rm", "kl/ref", "entropy/mean")


def overrides(run_dir: Path, steps: int, cpu: bool, cache: Path) -> list[str]:
    return ["rollout=hf", "engine=megatron", "engine.tensor_parallel_size=1", f"engine.dtype={'float32' if cpu else 'bfloat16'}",
            f"model.path={cache / 'tiny'}", f"cache_dir={cache}", "data.cpu_task.levels=[1]", "data.cpu_task.num_sft=2500",
            "trainer.sft.num_epochs=2", "trainer.num_prompts_per_step=8", "trainer.num_samples_per_prompt=4",
            "rollout.max_new_tokens=40", f"trainer.num_steps={steps}", "algo.actor_freeze_steps=1", "trainer.eval_every=0",
            "trainer.eval_at_start=false", "trainer.checkpoint_every=1", "trainer.keep_last_checkpoints=5",
            "trainer.policy_optim.lr=3e-4", "trainer.policy_optim.warmup_steps=1", "trainer.token_rm_optim.warmup_steps=1",
            "logging.wandb_mode=disabled", "logging.progress_bars=false", "trainer.export_final_model=false",
            f"run_dir={run_dir}"]


def train(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "oreal.train", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"run failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


def losses(run_dir: Path) -> dict[int, dict[str, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: {k: r[k] for k in KEYS if k in r} for r in rows if "loss/kl" in r}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run on CPU in float32 (to check the script here)")
    ap.add_argument("--out", type=Path, help="keep the run folders here (default: a temporary folder)")
    args = ap.parse_args()
    import torch

    if not args.cpu and not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        cache = root / "cache"
        straight, resumed = root / "straight", root / "resumed"
        train(overrides(straight, 4, args.cpu, cache))
        train(overrides(resumed, 2, args.cpu, cache))
        train(overrides(resumed, 4, args.cpu, cache))
        device = "cpu" if args.cpu else f"cuda ({torch.cuda.get_device_name(0)})"
        print(f"device {device}, torch {torch.__version__}")
        shards = sorted(p.name for p in (resumed / "checkpoints" / "step_000002" / "engine").iterdir())
        print(f"sharded checkpoint of step 2: {', '.join(shards)}")
        a, b = losses(straight), losses(resumed)
        worst = 0.0
        for step in sorted(a):
            diff = max(abs(a[step][k] - b[step][k]) for k in a[step])
            worst = max(worst, diff)
            print(f"step {step}: " + "  ".join(f"{k.split('/')[1]} {a[step][k]:.5f}" for k in KEYS if k in a[step])
                  + f"  | resumed run differs by {diff:.2e}")
        print(f"largest difference, resumed vs straight (steps 3-4 come after the resume): {worst:.2e}")


if __name__ == "__main__":
    main()
