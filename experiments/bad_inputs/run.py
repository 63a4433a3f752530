"""Every bad input a new user is likely to try, run for real: the command, its exit status, the
last line it printed, and how long it took to say so.

    .venv/bin/python experiments/bad_inputs/run.py > experiments/bad_inputs/table.md
    .venv/bin/python experiments/bad_inputs/run.py checkpoint metrics   # only the cases whose name has a word

It builds what it needs in a temporary folder (a small finished run for the resume cases, copied
for each case that damages it) and prints the Markdown table that experiments/bad_inputs/README.md
records. Nothing reaches a network: HF_HUB_OFFLINE=1 and WANDB_MODE=offline.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRAIN = [sys.executable, "-m", "oreal.train"]
OREAL = [sys.executable, "-m", "oreal.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fast_run(model: str, run_dir: Path) -> list[str]:
    """A two-step run of the warm-started tiny model (the trainer tests' settings)."""
    return ["rollout=hf", "trainer.sft.enabled=false", f"model.path={model}", "model.build_locally=false",
            "data.cpu_task.levels=[1]", "trainer.num_prompts_per_step=6", "trainer.num_samples_per_prompt=4",
            "rollout.max_new_tokens=40", "trainer.num_steps=2", "algo.actor_freeze_steps=1", "trainer.eval_every=2",
            "data.eval.cpu_heldout.source.limit=6", "data.eval.cpu_heldout.num_samples=2", "data.eval.math500_100.num_problems=3",
            "trainer.checkpoint_every=1", "logging.progress_bars=false", "reward.num_workers=1", f"run_dir={run_dir}"]


def damaged_copy(finished: Path, to: Path, latest_only: bool = False, partial_metrics: bool = False) -> Path:
    """A copy of the finished run with what a kill can leave: engine.pt cut in half (the latest
    checkpoint's, or every one's) or half a metrics line."""
    shutil.copytree(finished, to)
    checkpoints = to / "checkpoints"
    cut = [checkpoints / (checkpoints / "latest").read_text().strip()] if latest_only else sorted(checkpoints.glob("step_*"))
    for ckpt in cut if not partial_metrics else []:
        engine = ckpt / "engine.pt"
        engine.write_bytes(engine.read_bytes()[: engine.stat().st_size // 2])
    if partial_metrics:
        with (to / "metrics.jsonl").open("a") as f:
            f.write('{"step": 99, "reward/me')
    return to


def cases(tmp: Path, model: str, finished: Path) -> list[tuple[str, list[str], dict]]:
    bad_row = tmp / "bad.jsonl"
    bad_row.write_text('{"problem": "1+1", "answer": "2"}\n{"problem": "2+2"}\n')
    empty = tmp / "empty.jsonl"
    empty.write_text("")
    mine = tmp / "mine.jsonl"
    mine.write_text('{"problem": "1+1", "answer": "2"}\n')
    run = f"run_dir={tmp / 'run'}"
    (tmp / "a_file").write_text("")
    port = free_port()
    return [
        ("tensor parallel size that does not divide the model", [*TRAIN, run, "engine.tensor_parallel_size=3"], {}),
        ("a key that is not in the config", [*TRAIN, run, "+trainer.learning_rate=1e-3"], {}),
        ("a value of the wrong type", [*TRAIN, run, "trainer.num_steps=many"], {}),
        ("a missing data file", [*TRAIN, run, "data=math_train", "data.train.math_train.path=/nonexistent/train.jsonl"], {}),
        ("`oreal config` with a missing data file", [*OREAL, "config", run, "data=math_train",
                                                     "data.train.math_train.path=/nonexistent/train.jsonl"], {}),
        ("a malformed row", [*TRAIN, run, "data=math_train", f"data.train.math_train.path={bad_row}",
                             "data.train.math_train.sha256=null"], {}),
        ("an empty data file", [*TRAIN, run, "data=math_train", f"data.train.math_train.path={empty}",
                                "data.train.math_train.sha256=null"], {}),
        ("one's own file in place of the pinned one", [*TRAIN, run, "data=math_train", f"data.train.math_train.path={mine}"], {}),
        ("a system prompt longer than the model's context", [*TRAIN, run, "data=math_train", f"cache_dir={tmp / 'cache'}",
                                                             f"model.path={tmp / 'cache' / 'tiny'}"], {}),
        ("a model path that does not exist", [*TRAIN, run, "model.path=/nonexistent/model", "model.build_locally=false"], {}),
        ("a hub model with no network", [*TRAIN, run, "model.path=Qwen/Qwen2.5-0.5B", "model.build_locally=false",
                                         f"cache_dir={tmp / 'cache'}"], {}),
        ("an LLM judge nobody serves", [*TRAIN, run, "reward=rule_judge", f"reward.judge.base_url=http://127.0.0.1:{port}/v1"], {}),
        ("a bad WANDB_MODE", [*TRAIN, *fast_run(model, tmp / "wandb")], {"WANDB_MODE": "loud"}),
        ("another variant in a finished run's folder", [*TRAIN, *fast_run(model, finished), "algo=grpo",
                                                        "algo.actor_freeze_steps=0"], {}),
        ("a changed learning rate in a finished run's folder", [*TRAIN, *fast_run(model, finished),
                                                                "trainer.policy_optim.lr=1e-3"], {}),
        ("a run folder that cannot be written", [*TRAIN, f"run_dir={tmp / 'a_file' / 'run'}"], {}),
        ("a truncated latest checkpoint (falls back to the one before)",
         [*TRAIN, *fast_run(model, damaged_copy(finished, tmp / "truncated", latest_only=True))], {}),
        ("every checkpoint unusable", [*TRAIN, *fast_run(model, damaged_copy(finished, tmp / "unusable"))], {}),
        ("a partial last line in metrics.jsonl (dropped)",
         [*TRAIN, *fast_run(model, damaged_copy(finished, tmp / "partial", partial_metrics=True))], {}),
        ("evaluating a model folder that does not exist", [*OREAL, "eval", "--model", "/nonexistent/run"], {}),
        ("exporting a folder without checkpoints", [*OREAL, "export", str(tmp), str(tmp / "out")], {}),
        ("the status of a sweep folder that does not exist", [*OREAL, "status", "/nonexistent/sweep"], {}),
        ("a heterogeneous job without rollout nodes", [*OREAL, "sbatch", "--hetjob", "cluster=slurm", "cluster.rollout_nodes=0"], {}),
        ("a 7B layout that does not fit the GPUs", [*OREAL, "plan", "experiment=oreal_7b", "engine.tensor_parallel_size=1"], {}),
        ("a sweep with an invalid point", [*OREAL, "submit", "--dry-run", "cluster=slurm", "experiment=oreal_7b",
                                           "engine.tensor_parallel_size=4,3"], {}),
        ("a sweep with an invalid point, run locally", [*TRAIN, "-m", "engine.tensor_parallel_size=1,3"], {}),
    ]


def main(only: list[str]) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline", TOKENIZERS_PARALLELISM="false")
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp_name:
        tmp = Path(tmp_name)
        from oreal.config import load_config
        from oreal.engines.tiny import build_tiny

        cfg = load_config([])
        model = str(build_tiny(cfg.model, cfg.data.cpu_task, tmp / "model"))
        finished = tmp / "finished"
        subprocess.run([*TRAIN, *fast_run(model, finished)], env=env, cwd=tmp, check=True, capture_output=True)
        rows = []
        for what, argv, extra in cases(tmp, model, finished):
            if only and not any(word in what for word in only):
                continue
            start = time.perf_counter()
            proc = subprocess.run(argv, env=env | extra, cwd=tmp, capture_output=True, text=True, timeout=900)
            seconds = time.perf_counter() - start
            out = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            last = out[-1] if out else ""
            shown = " ".join(a if not a.startswith(sys.executable) else "python" for a in argv).replace(tmp_name, "$TMP")
            shown = shown.replace(f"python -m oreal.cli", "oreal").replace("python -m oreal.train", "python -m oreal.train")
            traceback = "yes" if "Traceback" in proc.stderr else "no"
            rows.append(f"| {what} | `{shown[:160]}{'...' if len(shown) > 160 else ''}` | {proc.returncode} | {seconds:.1f} | "
                        f"{traceback} | {last.replace(tmp_name, '$TMP').replace('|', '/')} |")
            print(f"[{len(rows)}] {what}: exit {proc.returncode} in {seconds:.1f} s", file=sys.stderr, flush=True)
            for line in (proc.stderr.strip() or proc.stdout.strip()).splitlines()[:-1]:  # what came before the last line
                if line.startswith("oreal: "):
                    print(f"    {line.replace(tmp_name, '$TMP')}", file=sys.stderr, flush=True)
    print("| bad input | command | exit | seconds | traceback | last line printed |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
