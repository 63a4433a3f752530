"""Evaluation: k samples per problem through any rollout engine, graded by the reward checker.

Reports pass@1 as the mean over the k samples, the unbiased pass@k of Chen et al. (2021),
maj@k (majority vote over normalised extracted answers), truncation rate and mean response
length, overall and per subject and level. Used by ``oreal eval`` and by the trainer.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

from oreal.config.schema import EvalSetConfig
from oreal.data.pipeline import EvalPrompts
from oreal.data.sources import write_jsonl
from oreal.engines.protocols import RolloutEngine, SamplingSettings
from oreal.reward.grader import Grader
from oreal.reward.normalize import normalize_answer


@dataclass
class EvalSample:
    id: str
    subject: Optional[str]
    level: Optional[str]
    sample: int
    problem: str
    gold: str
    response: str
    extracted: Optional[str]
    correct: bool
    reason: str
    finish_reason: str
    num_tokens: int


@dataclass
class EvalResult:
    name: str
    metrics: dict[str, float]
    samples: list[EvalSample]
    settings: dict = field(default_factory=dict)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimator of P(at least one of k samples is correct) from n samples, c correct:
    ``1 - C(n - c, k) / C(n, k)``."""
    if not 0 < k <= n or not 0 <= c <= n:
        raise ValueError(f"need 0 < k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_correct(samples: list[EvalSample]) -> bool:
    """Vote over the normalised extracted answers (samples without an answer do not vote);
    ties go to the answer seen first. Correct when the winning answer was graded correct."""
    votes = [(normalize_answer(s.extracted), s) for s in samples if s.extracted]
    if not votes:
        return False
    counts = Counter(key for key, _ in votes)
    best = max(counts.values())
    winner = next(key for key, _ in votes if counts[key] == best)
    return any(s.correct for key, s in votes if key == winner)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "none"


def summarise(name: str, samples: list[EvalSample], k: int) -> dict[str, float]:
    by_problem: dict[str, list[EvalSample]] = defaultdict(list)
    for s in samples:
        by_problem[s.id].append(s)
    prefix = f"eval/{name}"
    metrics = _group_metrics(prefix, by_problem, k)
    for attr in ("subject", "level"):
        groups: dict[str, dict[str, list[EvalSample]]] = defaultdict(dict)
        for pid, group in by_problem.items():
            value = getattr(group[0], attr)
            if value is not None:
                groups[value][pid] = group
        for value, sub in sorted(groups.items()):
            m = _group_metrics(f"{prefix}/{attr}/{_slug(value)}", sub, k)
            metrics.update({key: v for key, v in m.items() if key.rsplit("/", 1)[1] in ("pass@1", "num_problems")})
    return metrics


def _group_metrics(prefix: str, by_problem: dict[str, list[EvalSample]], k: int) -> dict[str, float]:
    groups = list(by_problem.values())
    flat = [s for g in groups for s in g]
    n_problems = len(groups)
    out = {
        f"{prefix}/pass@1": sum(sum(s.correct for s in g) / len(g) for g in groups) / n_problems,
        f"{prefix}/num_problems": float(n_problems),
        f"{prefix}/truncation_rate": sum(s.finish_reason == "length" for s in flat) / len(flat),
        f"{prefix}/mean_length": sum(s.num_tokens for s in flat) / len(flat),
    }
    if k > 1:
        out[f"{prefix}/pass@{k}"] = sum(pass_at_k(len(g), sum(s.correct for s in g), k) for g in groups) / n_problems
        out[f"{prefix}/maj@{k}"] = sum(majority_correct(g) for g in groups) / n_problems
    return out


def generate_in_chunks(engine: RolloutEngine, token_ids: list[list[int]], n: int, sampling: SamplingSettings,
                       progress: Optional[str], num_chunks: int = 10, min_chunk: int = 64) -> list:
    """``engine.generate`` over about ``num_chunks`` slices of the prompts (at least
    ``min_chunk`` each), with a progress bar; each slice keeps its prompts' positions
    (``prompt_offset``), so every prompt samples with the seed it has in one call."""
    from tqdm import tqdm

    size = max(min_chunk, -(-len(token_ids) // num_chunks))
    groups: list = []
    with tqdm(total=len(token_ids), desc=progress, unit="problem", leave=False, disable=progress is None) as bar:
        for start in range(0, len(token_ids), size):
            chunk = token_ids[start : start + size]
            groups += engine.generate(chunk, n, replace(sampling, prompt_offset=start))
            bar.update(len(chunk))
    return groups


def evaluate(name: str, ev: EvalSetConfig, prompts: EvalPrompts, engine: RolloutEngine, grader: Grader, *,
             default_max_new_tokens: int, seed: int = 0, progress: bool = True) -> EvalResult:
    if not prompts.prompts:
        raise ValueError(f"eval set {name!r} has no problem that fits in the prompt budget")
    sampling = SamplingSettings(temperature=ev.temperature, top_p=ev.top_p, seed=seed,
                                max_new_tokens=ev.max_new_tokens or default_max_new_tokens)
    groups = generate_in_chunks(engine, prompts.token_ids, ev.num_samples, sampling, f"sampling {name}" if progress else None)
    flat = [(p, i, c) for p, g in zip(prompts.prompts, groups) for i, c in enumerate(g.completions)]
    grades = grader.grade_batch([c.text for _, _, c in flat], [p.answer for p, _, _ in flat],
                                finish_reasons=[c.finish_reason for _, _, c in flat], problems=[p.problem for p, _, _ in flat],
                                progress=f"grading {name}" if progress else None)
    samples = [EvalSample(p.id, p.subject, p.level, i, p.problem, p.answer, c.text, g.extracted, g.correct, g.reason,
                          c.finish_reason, len(c.token_ids)) for (p, i, c), g in zip(flat, grades)]
    metrics = summarise(name, samples, ev.num_samples)
    metrics[f"eval/{name}/num_skipped"] = float(prompts.num_skipped)
    settings = {"num_samples": ev.num_samples, "temperature": ev.temperature, "top_p": ev.top_p,
                "max_new_tokens": sampling.max_new_tokens, "seed": seed, "source": ev.source.path,
                "num_problems": len(prompts.prompts), "num_skipped": prompts.num_skipped,
                "dataset_sha256": prompts.dataset_sha256}
    return EvalResult(name, metrics, samples, settings)


def write_result(result: EvalResult, out_dir: Path, stem: Optional[str] = None) -> Path:
    """``<stem>.jsonl`` with every sample and ``<stem>.summary.json`` with metrics + settings."""
    import json

    stem = stem or f"eval_{result.name}"
    write_jsonl(out_dir / f"{stem}.jsonl", (asdict(s) for s in result.samples))
    summary = out_dir / f"{stem}.summary.json"
    summary.write_text(json.dumps({"name": result.name, "metrics": result.metrics, "settings": result.settings}, indent=2))
    return summary
