"""Rule check first, LLM judge second; the public ``grade`` / ``grade_batch`` functions."""

from __future__ import annotations

import atexit
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

from oreal.reward.extract import DEFAULT_THINKING_MARKERS, after_thinking
from oreal.reward.judge import JudgeClient, JudgeSettings
from oreal.reward.pool import Grade, GradingPool

TRUNCATED_FINISH_REASONS = frozenset({"length"})
# The judge is not asked when the rule check already says correct, nor for cut-off responses.
_NO_JUDGE = frozenset({"correct", "truncated"})


class Grader:
    def __init__(self, pool: GradingPool, judge: Optional[JudgeClient] = None,
                 thinking_markers: Sequence[str] = DEFAULT_THINKING_MARKERS):
        self.pool = pool
        self.judge = judge
        self.thinking_markers = tuple(thinking_markers)

    def grade(self, response: str, gold: str, *, finish_reason: Optional[str] = None, problem: str = "") -> Grade:
        if finish_reason in TRUNCATED_FINISH_REASONS:
            grade = Grade.of("truncated", detail="response hit the length limit")
            self.pool.record(grade)
            return grade
        grade = self.pool.check(response, gold, record=False)
        if self.judge is not None and grade.reason not in _NO_JUDGE:
            grade = self.judge.judge(problem, after_thinking(response, self.thinking_markers), gold)
        self.pool.record(grade)
        return grade

    def grade_batch(self, responses: Sequence[str], golds: Sequence[str], *,
                    finish_reasons: Optional[Sequence[Optional[str]]] = None,
                    problems: Optional[Sequence[str]] = None, progress: Optional[str] = None) -> list[Grade]:
        n = len(responses)
        if len(golds) != n:
            raise ValueError(f"{n} responses but {len(golds)} gold answers")
        finish_reasons = finish_reasons or [None] * n
        problems = problems or [""] * n
        threads = self.pool.num_workers + (self.judge.settings.max_concurrency if self.judge else 0)
        with ThreadPoolExecutor(threads, thread_name_prefix="oreal-grade") as ex:
            futures = [ex.submit(self.grade, r, g, finish_reason=f, problem=p)
                       for r, g, f, p in zip(responses, golds, finish_reasons, problems)]
            if progress:
                from tqdm import tqdm

                futures = tqdm(futures, desc=progress, unit="answer", leave=False)
            return [f.result() for f in futures]

    def stats(self, reset: bool = False) -> dict[str, float]:
        return self.pool.stats(reset)

    def close(self) -> None:
        self.pool.close()


def build_grader(reward_cfg) -> Grader:
    """From a :class:`oreal.config.schema.RewardConfig`; the judge key comes from the environment."""
    pool = GradingPool(reward_cfg.num_workers, reward_cfg.timeout_s, reward_cfg.memory_mb, reward_cfg.thinking_markers)
    judge = None
    j = reward_cfg.judge
    if j.enabled:
        settings = JudgeSettings(j.base_url, j.model, j.max_concurrency, j.request_timeout_s, j.max_retries, j.deadline_s,
                                 max_consecutive_errors=j.max_consecutive_errors)
        judge = JudgeClient(settings, api_key=os.environ.get(j.api_key_env))
    return Grader(pool, judge, reward_cfg.thinking_markers)


_default: Optional[Grader] = None
_default_lock = threading.Lock()


def default_grader() -> Grader:
    """A process-wide rule-only grader with default settings, created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Grader(GradingPool())
            atexit.register(_default.close)
        return _default


def grade(response: str, gold: str, *, finish_reason: Optional[str] = None) -> Grade:
    """Grade one response against a gold answer (thread-safe; 5 s process timeout)."""
    return default_grader().grade(response, gold, finish_reason=finish_reason)


def grade_batch(responses: Sequence[str], golds: Sequence[str], *,
                finish_reasons: Optional[Sequence[Optional[str]]] = None) -> list[Grade]:
    """Grade many responses on all cores."""
    return default_grader().grade_batch(responses, golds, finish_reasons=finish_reasons)
