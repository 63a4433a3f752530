"""The OREAL training loop: one RL step as named phases.

rollout -> grade -> advantages -> filter -> update (token RM and policy, one joint backward as
in the reference) -> sync weights -> evaluate every N steps -> log -> checkpoint.

Advantages are computed on the full groups before the pair filter (REFERENCE.md, item 4).
Engines, loss variant, data and reward all come from config, so the same loop runs every row
of the ablation ladder. A step counter ``step`` counts completed updates: metrics logged at
step N describe the N-th update, evaluation at step 0 is the warm-started model.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import torch

from oreal.algo import compute_advantages, filter_trajectories, get_variant
from oreal.config.schema import Config
from oreal.data.pipeline import build_sampler, eval_prompts
from oreal.engines.protocols import SamplingSettings
from oreal.engines.weights import CountedBuckets
from oreal.evaluation import evaluate, write_result
from oreal.errors import RolloutEngineError
from oreal.reward.judge import JudgeUnavailable
from oreal.trainer.ranks import any_rank
from oreal.trainer.rollouts import StepSamples, logprob_gaps, token_counts
from oreal.trainer.setup import RunComponents
from oreal.trainer.signals import StopSignal


class PhaseTimer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def metrics(self) -> dict[str, float]:
        return {f"perf/time/{k}": v for k, v in self.seconds.items()} | {"perf/time/step": sum(self.seconds.values())}


class Trainer:
    def __init__(self, cfg: Config, parts: RunComponents, stop: Optional[StopSignal] = None):
        self.cfg = cfg
        self.parts = parts
        self.stop = stop or StopSignal()
        self.sampler = build_sampler(cfg)
        variant = get_variant(cfg.algo.name)
        self.loss_fn = lambda inputs, counts: variant.loss(cfg.algo, inputs, counts)
        self.eval_sets = {name: eval_prompts(ev, cfg.data.cpu_task, parts.render) for name, ev in cfg.data.eval.items()}
        self.step = 0
        self._saved_step = 0
        self._sampler_before_step: Optional[dict] = None
        self.last_checkpoint_s: Optional[float] = None
        self._clock_start = time.monotonic()
        self._elapsed_before = 0.0  # training seconds of earlier attempts of this run (resume)

    def elapsed(self) -> float:
        """Wall-clock seconds this run has spent in the training loop, over all its attempts."""
        return self._elapsed_before + time.monotonic() - self._clock_start

    # ---- the loop -------------------------------------------------------------------------------
    def fit(self) -> str:
        """Train to ``trainer.num_steps``; returns "finished" or "stopped" (a stop was
        requested: every rank finished the step and saved). When a rollout engine fails,
        every rank saves the last consistent state before the error goes on."""
        self.step, self._elapsed_before = self.parts.resume(self.sampler)
        self._clock_start = time.monotonic()
        self._saved_step = self.step
        if self.step == 0 and self.cfg.trainer.eval_at_start:
            self.parts.tracker.write(0, self._on_engine_failure(self.evaluate) | {"time/elapsed_s": 0.0})
        bar = self.parts.progress(self.step)
        while self.step < self.cfg.trainer.num_steps:
            metrics = self._on_engine_failure(self.train_step)
            metrics.update(self._on_engine_failure(lambda: self.sync_weights(metrics["perf/time/step"]), metrics))
            metrics["time/elapsed_s"] = self.elapsed()  # wall-clock in the loop so far, earlier evaluations included
            if self.last_checkpoint_s is not None:
                metrics["perf/time/last_checkpoint"] = self.last_checkpoint_s
            if self._due(self.cfg.trainer.eval_every):
                metrics.update(self._on_engine_failure(self.evaluate, metrics))
            self.parts.tracker.write(self.step, metrics)
            stop = any_rank(self.stop.requested, self.parts.dist)
            if self._due(self.cfg.trainer.checkpoint_every) or stop:
                self._save()
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['reward/mean']:+.2f}", pass_rate=f"{metrics['reward/pass_rate']:.2f}")
            if stop:
                return "stopped"
        bar.close()
        return "finished"

    def _save(self) -> None:
        timer = time.perf_counter()
        self.parts.save_checkpoint(self.step, self.sampler, self.elapsed())
        self._saved_step = self.step
        self.last_checkpoint_s = time.perf_counter() - timer

    def _on_engine_failure(self, phase, metrics: Optional[dict] = None):
        """Run ``phase()``; if a rollout engine fails (every rank sees the same error), log
        what the step measured and checkpoint the state reached, then let the error go on."""
        try:
            return phase()
        except RolloutEngineError:
            if self._sampler_before_step is not None:  # failed before the update: the step never happened
                self.sampler.load_state_dict(self._sampler_before_step)
            if self.step > self._saved_step:
                if metrics is not None:
                    self.parts.tracker.write(self.step, metrics)
                self._save()
            raise

    def _due(self, every: int) -> bool:
        return self.step == self.cfg.trainer.num_steps or (every > 0 and self.step % every == 0)

    def train_step(self) -> dict[str, float]:
        timer = PhaseTimer()
        self._sampler_before_step = self.sampler.state_dict()
        with timer("rollout"):
            samples = self.rollout()
        with timer("grade"):
            self.grade(samples)
        with timer("advantages"):
            self.advantages(samples)
        with timer("filter"):
            self.filter(samples)
        with timer("update"):
            metrics = self.update(samples)
        self.step += 1  # the policy has changed: from here on, a checkpoint is of this step
        self._sampler_before_step = None
        metrics.update(samples.metrics(self.cfg.algo))
        metrics.update(self.parts.grader.stats(reset=True))
        metrics.update(timer.metrics())
        generated = sum(len(c.token_ids) for g in samples.groups for c in g.completions)
        metrics["perf/rollout_tokens_per_s"] = generated / max(timer.seconds["rollout"], 1e-9)
        self.parts.write_trajectories(self.step, samples)
        return metrics

    # ---- phases ---------------------------------------------------------------------------------
    def rollout(self) -> StepSamples:
        t, r = self.cfg.trainer, self.cfg.rollout
        drawn = [(src, p, self.parts.render(p.problem)) for src, p in self.sampler.draw(t.num_prompts_per_step)]
        drawn = [(src, p, ids) for src, p, ids in drawn if ids is not None]  # too long for max_prompt_tokens
        sampling = SamplingSettings(temperature=r.temperature, top_p=r.top_p, top_k=r.top_k, max_new_tokens=r.max_new_tokens,
                                    stop=tuple(r.stop), seed=self._seed("rollout"))
        groups = self.parts.rollout.generate([ids for _, _, ids in drawn], t.num_samples_per_prompt, sampling)
        return StepSamples([(src, p) for src, p, _ in drawn], groups, [], torch.zeros(0))

    def grade(self, samples: StepSamples) -> None:
        flat = [(p, c) for (_, p), g in zip(samples.prompts, samples.groups) for c in g.completions]
        grades = self.parts.grader.grade_batch([c.text for _, c in flat], [p.answer for p, _ in flat],
                                               finish_reasons=[c.finish_reason for _, c in flat], problems=[p.problem for p, _ in flat])
        check_judge_errors(grades, self.cfg.reward.judge)
        k = self.cfg.trainer.num_samples_per_prompt
        samples.grades = [grades[i : i + k] for i in range(0, len(grades), k)]
        samples.rewards = torch.tensor([[g.reward for g in row] for row in samples.grades])
        self.sampler.observe([p for _, p in samples.prompts], [not any(g.correct for g in row) for row in samples.grades])

    def advantages(self, samples: StepSamples) -> None:
        samples.advantages = compute_advantages(samples.rewards, self.cfg.algo.advantage_estimator)

    def filter(self, samples: StepSamples) -> None:
        generator = torch.Generator().manual_seed(self._seed("filter"))
        samples.keep = filter_trajectories(samples.rewards, self.cfg.algo.filter, generator)

    def update(self, samples: StepSamples) -> dict[str, float]:
        """One optimiser step of the token RM and (after ``actor_freeze_steps``) the policy."""
        batch = samples.training_batch()
        if len(batch) == 0:  # every group uniform: nothing to learn from this step
            return {"train/skipped_update": 1.0}
        frozen = self.step < self.cfg.algo.actor_freeze_steps
        stats = self.parts.policy.train_step(batch, self.loss_fn, token_counts(batch), update_policy=not frozen)
        stats.metrics.update(logprob_gaps(stats, samples, self.parts.dist))
        stats.metrics["train/policy_frozen"] = float(frozen)
        return stats.metrics

    def sync_weights(self, step_s: float) -> dict[str, float]:
        """The updated weights to the rollout engine(s): the step's last phase (``step_s``:
        the other phases' time), timed, with the bytes that crossed."""
        start = time.perf_counter()
        counted = CountedBuckets(self.parts.policy.export_weights(self.cfg.engine.sync_bucket_mb << 20))
        self.parts.rollout.update_weights(counted)
        seconds = time.perf_counter() - start
        return {"perf/time/sync": seconds, "perf/time/step": step_s + seconds, "perf/weight_sync_s": seconds,
                "perf/weight_sync_gb_per_s": counted.num_bytes / 1e9 / max(seconds, 1e-9)}

    def evaluate(self) -> dict[str, float]:
        metrics = {}
        for name, prompts in self.eval_sets.items():
            result = evaluate(name, self.cfg.data.eval[name], prompts, self.parts.rollout, self.parts.grader,
                              default_max_new_tokens=self.cfg.rollout.max_new_tokens, seed=self.cfg.seed,
                              progress=self.cfg.logging.progress_bars)
            if self.parts.dist.is_main:
                write_result(result, Path(self.parts.run_dir) / "eval", f"step_{self.step:06d}_{name}")
            self.parts.tracker.table(f"eval/{name}/samples", [_table_row(s) for s in result.samples[:64]], self.step)
            metrics.update(result.metrics)
        self.parts.grader.stats(reset=True)  # evaluation verdicts are not training rewards
        return metrics

    def _seed(self, purpose: str) -> int:
        """A seed per (run seed, step, purpose): resumed runs draw exactly what they would have."""
        return (self.cfg.seed * 1_000_003 + self.step * 7919 + {"rollout": 1, "filter": 2}[purpose]) % (2**31 - 1)


def _table_row(s) -> dict:
    return {"id": s.id, "sample": s.sample, "response": s.response, "extracted": s.extracted or "", "gold": s.gold,
            "correct": s.correct, "reason": s.reason}


def check_judge_errors(grades, judge) -> None:
    """Stop the run when the LLM judge failed on more of this step's answers than
    ``reward.judge.max_error_rate`` allows: each failure is a correct answer possibly punished."""
    asked = [g for g in grades if g.reason.startswith("judge_")]
    failed = [g for g in asked if g.reason == "judge_error"]
    if asked and len(failed) / len(asked) > judge.max_error_rate:
        raise JudgeUnavailable(
            f"the LLM judge failed on {len(failed)} of the {len(asked)} answers it was asked about this step "
            f"(more than reward.judge.max_error_rate={judge.max_error_rate:g}; last error: {failed[-1].detail}); "
            f"check the server at reward.judge.base_url={judge.base_url}, or train without a judge (reward=rule)")
