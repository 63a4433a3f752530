"""oreal vs TRL's GRPOTrainer on CPU, side by side, from one command.

    python experiments/bench_trl/bench.py --steps 24 --repeats 3           # all three systems
    python experiments/bench_trl/bench.py --steps 14 --systems trl_grpo oreal_grpo   # timing only

Same warm-started tiny model (the default experiment's SFT cache), same prompt stream (the
CPU task's train split in oreal's sampler order), same reward (oreal's checker, +1 / -1, a
truncated answer is wrong), same group size (8) and batch (16 prompts, one optimiser step of
128 completions), same AdamW settings and schedule, same KL (k3, 0.01) and token-level loss
normalisation, the same precision (float32: TRL's ``bf16=True`` default autocasts on CPU, which
CPUs without bf16 instructions emulate, about 8x slower here) and no activation checkpointing
(TRL's default is on, oreal's off), and the same engine: Hugging Face ``generate`` on both sides
(TRL's default).
Every run trains in a fresh process (so peak memory is its own), and the systems run in
alternating order, ``--repeats`` rounds of one run each (experiments/benchlib.py); seconds per
step of a run are the median over its steps 3-12 (two warm-up steps); held-out pass@1 after the
last step comes from one evaluation function (``oreal.evaluation.evaluate``: 4 samples per
problem at temperature 1.0), run on every final model. The table gives each figure's median and
min-max over repeats, the ratios to TRL with their range over rounds, and the machine's load
(with a warning row when it was not quiet). Results: ``--out``/results.json and the table on stdout.
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
import benchlib  # noqa: E402

SYSTEMS = ("trl_grpo", "oreal_grpo", "oreal_oreal")
PROMPTS, GROUP = 16, 8
WARMUP, TIMED = 2, 10


def common_overrides(model: str, steps: int, seed: int) -> list[str]:
    return ["experiment=default_cpu", "rollout=hf", f"model.path={model}", "model.build_locally=false",
            "trainer.sft.enabled=false", f"trainer.num_steps={steps}", f"trainer.num_prompts_per_step={PROMPTS}",
            f"trainer.num_samples_per_prompt={GROUP}", f"seed={seed}", "~data.eval.math500_100",
            "logging.wandb_mode=disabled", "logging.progress_bars=false"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_seconds(ends: list[float]) -> float:
    """Median duration of the timed steps, from the clock at the end of each step (index 0: start)."""
    durations = [b - a for a, b in zip(ends, ends[1:])]
    if len(durations) < WARMUP + TIMED:
        raise SystemExit(f"need at least {WARMUP + TIMED} steps to time, got {len(durations)}")
    return statistics.median(durations[WARMUP:WARMUP + TIMED])


# ---- workers: one system per process ------------------------------------------------------------
def oreal_worker(algo: str, model: str, steps: int, seed: int, out: Path, extra: list[str]) -> dict:
    from oreal.config import load_config
    from oreal.trainer import run
    from oreal.trainer.tracking import MetricsLog

    run_dir = out / f"oreal_{algo}"
    run(load_config(common_overrides(model, steps, seed) + [f"algo={algo}", f"run_dir={run_dir}", "trainer.checkpoint_every=0",
                                                           "trainer.eval_at_start=false", f"trainer.eval_every={steps}", *extra]))
    rows = MetricsLog(run_dir / "metrics.jsonl").read()
    # time/elapsed_s is the loop's wall clock at the end of each step; the last row includes the evaluation
    ends = [0.0] + [r["time/elapsed_s"] for r in rows[:-1]]
    return {"seconds_per_step": step_seconds(ends), "peak_rss_mb": peak_rss_mb(),
            "heldout_pass@1": rows[-1]["eval/cpu_heldout/pass@1"], "final_reward_mean": rows[-1]["reward/mean"]}


def trl_worker(model: str, steps: int, seed: int, out: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from oreal.config import load_config
    from oreal.data.pipeline import build_sampler
    from oreal.data.prompting import render_prompt
    from oreal.reward import build_grader

    cfg = load_config(common_overrides(model, steps, seed))
    tokenizer = AutoTokenizer.from_pretrained(model)
    drawn = build_sampler(cfg).draw(steps * PROMPTS)  # oreal's prompt stream, in its order
    rows = [{"prompt": render_prompt(tokenizer, p.problem, cfg.data.system_prompt, cfg.data.chat_template), "answer": p.answer}
            for _, p in drawn]
    grader = build_grader(cfg.reward)
    max_new = cfg.rollout.max_new_tokens

    def correctness(prompts, completions, answer, completion_ids, **_):
        finish = ["length" if len(ids) >= max_new and ids[-1] != tokenizer.eos_token_id else "stop" for ids in completion_ids]
        return [g.reward for g in grader.grade_batch(completions, answer, finish_reasons=finish)]

    class StepClock(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_train_begin(self, *a, **k):
            self.ends = [time.perf_counter()]

        def on_step_end(self, *a, **k):
            self.ends.append(time.perf_counter())

    p, r = cfg.trainer.policy_optim, cfg.rollout
    args = GRPOConfig(
        output_dir=str(out / "trl"), use_cpu=True, seed=seed, max_steps=steps, report_to="none", save_strategy="no",
        logging_steps=1, disable_tqdm=True, per_device_train_batch_size=PROMPTS * GROUP, gradient_accumulation_steps=1,
        num_generations=GROUP, max_completion_length=max_new, temperature=r.temperature, top_p=r.top_p,
        shuffle_dataset=False, learning_rate=p.lr, lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr": p.min_lr}, warmup_steps=p.warmup_steps, weight_decay=p.weight_decay,
        adam_beta1=p.betas[0], adam_beta2=p.betas[1], max_grad_norm=p.max_grad_norm,
        beta=cfg.algo.kl_coef, loss_type="dapo", scale_rewards="group", num_iterations=1,
        bf16=False, gradient_checkpointing=False)  # oreal's settings here: float32, no recomputation
    clock = StepClock()
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model, dtype="float32"), args=args,
                          processing_class=tokenizer, reward_funcs=correctness, train_dataset=Dataset.from_list(rows),
                          callbacks=[clock])
    trainer.train()
    final = out / "trl" / "final"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    result = {"seconds_per_step": step_seconds(clock.ends), "peak_rss_mb": peak_rss_mb()}
    grader.close()
    # the same evaluation function, engine and seed as oreal's final evaluation
    from oreal.data.pipeline import PromptRenderer, eval_prompts
    from oreal.engines.factory import build_rollout_engine
    from oreal.evaluation import evaluate

    ev = cfg.data.eval["cpu_heldout"]
    prompts = eval_prompts(ev, cfg.data.cpu_task, PromptRenderer.from_config(tokenizer, cfg.data))
    res = evaluate("cpu_heldout", ev, prompts, build_rollout_engine(cfg, str(final)), build_grader(cfg.reward),
                   default_max_new_tokens=max_new, seed=seed, progress=False)
    result["heldout_pass@1"] = res.metrics["eval/cpu_heldout/pass@1"]
    return result


# ---- driver -------------------------------------------------------------------------------------
def warm_model(seed: int) -> str:
    from oreal.config import load_config
    from oreal.trainer.setup import starting_model

    return starting_model(load_config(["experiment=default_cpu", f"seed={seed}"]))


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:  # a run of oreal systems only needs no TRL
            return "not installed"

    return {"python": sys.version.split()[0], **{n: installed(n) for n in ("torch", "transformers", "trl")},
            "cpus": os.cpu_count()}


def run_worker(args: argparse.Namespace) -> None:
    if args.worker == "trl_grpo":
        result = trl_worker(args.model, args.steps, args.seed, args.result_dir)
    else:
        result = oreal_worker(args.worker.removeprefix("oreal_"), args.model, args.steps, args.seed, args.result_dir,
                              args.oreal_overrides)
    benchlib.write_result(args.result_dir, result)


def table(runs: dict[str, list[dict]], load: benchlib.MachineLoad, args: argparse.Namespace) -> str:
    spread = lambda system, key: benchlib.Spread.of([r[key] for r in runs[system]])  # noqa: E731
    rows = [[name, spread(name, "seconds_per_step").fmt(), spread(name, "peak_rss_mb").fmt(".0f"),
             spread(name, "heldout_pass@1").fmt(".3f")] for name in runs]
    base = "trl_grpo" if "trl_grpo" in runs else args.systems[0]
    ratios = [(f"{name} / {base}, {label}", benchlib.Ratio.of([r[key] for r in runs[name]], [r[key] for r in runs[base]]))
              for name in runs if name != base for key, label in (("seconds_per_step", "s / step"),
                                                                  ("peak_rss_mb", "peak RSS"))]
    overrides = f", oreal overrides: {' '.join(args.oreal_overrides)}" if args.oreal_overrides else ""
    title = (f"bench_trl: {args.steps} steps of {PROMPTS} prompts x {GROUP} samples, seed {args.seed}{overrides}; "
             f"{', '.join(f'{k} {v}' for k, v in versions().items())}")
    columns = ["system", f"s / step (median of steps {WARMUP + 1}-{WARMUP + TIMED})", "peak RSS (MB)",
               f"held-out pass@1 after {args.steps} steps"]
    return benchlib.render_table(title, columns, rows, load=load, systems=args.systems, repeats=args.repeats,
                                 ratios=ratios)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS,
                    help="the order of one round; every round runs each once")
    ap.add_argument("--repeats", type=int, default=3, help="rounds: runs per system, in alternating order (default 3)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_trl")
    ap.add_argument("--oreal-overrides", nargs="*", default=[], help="extra Hydra overrides for the oreal runs")
    ap.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--result-dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return run_worker(args)
    # oreal's last step includes the final evaluation, so it is not timed
    if args.steps < WARMUP + TIMED + 1:
        ap.error(f"--steps must be at least {WARMUP + TIMED + 1} ({WARMUP} warm-up steps, {TIMED} timed, the last with the evaluation)")
    if args.repeats < 1 or len(set(args.systems)) != len(args.systems):
        ap.error("--repeats must be >= 1 and --systems distinct")

    before = benchlib.snapshot()  # before anything of ours runs: rule 1 of benchlib's quiet-machine check
    model = warm_model(args.seed)

    def measure(system: str, repeat: int) -> dict:
        start = time.perf_counter()
        result = benchlib.in_fresh_process([sys.executable, __file__, "--worker", system, "--model", model, "--steps",
                                            str(args.steps), "--seed", str(args.seed), "--oreal-overrides",
                                            *args.oreal_overrides], cwd=ROOT)
        return {**result, "wall_s": time.perf_counter() - start}

    runs = benchlib.run_alternating(args.systems, args.repeats, measure)
    load = benchlib.MachineLoad(before, benchlib.snapshot())
    results = {"steps": args.steps, "seed": args.seed, "prompts_per_step": PROMPTS, "group_size": GROUP,
               "oreal_overrides": args.oreal_overrides, "repeats": args.repeats,
               "order": benchlib.alternating_order(args.systems, args.repeats), "versions": versions(),
               "load": load.as_dict(), "systems": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print("\n" + table(runs, load, args))


if __name__ == "__main__":
    main()
