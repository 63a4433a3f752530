"""``oreal eval`` and ``oreal passrate``: evaluation and pass-rate estimation from the command line.

    oreal eval experiment=default_cpu --sets cpu_heldout          # the configured model and engine
    oreal eval data=math_train rollout=replay rollout.replay_path=answers.jsonl --sets math500
    oreal passrate data=math_train --k 8 --out math_train.passrate.jsonl

Hydra overrides choose the model, engine and data; ``--model`` takes a Hugging Face model folder,
a run folder (``oreal eval --model runs/default_cpu/seed0`` evaluates what the run trained, with
the run's own settings) or a checkpoint folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from oreal.config.load import ConfigError, load_config
from oreal.config.schema import Config
from oreal.errors import OrealError


def _setup(overrides: Sequence[str], model: Optional[str]):
    """The config and a Hugging Face model folder. ``model`` may be an HF folder, a run folder
    (its final model, else its latest checkpoint, exported) or a checkpoint; a run's own
    overrides come first, so it is evaluated with its own settings. Without ``model``: the
    config's starting model (warm-started when the config says so), what RL starts from."""
    if model is not None:
        from oreal.export import model_folder

        folder, base = model_folder(Path(model), overrides)
        return load_config([*base, *overrides]), str(folder)
    from oreal.trainer.setup import starting_model

    cfg = load_config(overrides)
    return cfg, starting_model(cfg)


def _components(cfg: Config, model_path: str):
    from transformers import AutoTokenizer

    from oreal.data.pipeline import PromptRenderer
    from oreal.engines.factory import build_rollout_engine
    from oreal.reward import build_grader

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    return PromptRenderer.from_config(tokenizer, cfg.data), build_rollout_engine(cfg, model_path), build_grader(cfg.reward)


def eval_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="oreal eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--sets", nargs="+", help="eval sets of the data config (default: all)")
    parser.add_argument("--model", help="an HF model folder, a run folder or a checkpoint (default: the config's starting "
                        "model, warm-started as the config says)")
    parser.add_argument("--out", type=Path, default=Path("eval_results"), help="folder for samples and summaries")
    args = parser.parse_args(argv)
    try:
        cfg, model_path = _setup(args.overrides, args.model)
    except OrealError as exc:
        print(f"oreal: {'invalid config: ' if isinstance(exc, ConfigError) else ''}{exc}", file=sys.stderr)
        return 2
    names = args.sets or list(cfg.data.eval)
    unknown = [n for n in names if n not in cfg.data.eval]
    if unknown:
        print(f"oreal eval: no eval set {unknown} in this data config; it has: {', '.join(cfg.data.eval)}", file=sys.stderr)
        return 2
    from oreal.data.pipeline import eval_prompts
    from oreal.evaluation import evaluate, write_result

    render, engine, grader = _components(cfg, model_path)
    try:
        for name in names:
            ev = cfg.data.eval[name]
            result = evaluate(name, ev, eval_prompts(ev, cfg.data.cpu_task, render), engine, grader,
                              default_max_new_tokens=cfg.rollout.max_new_tokens, seed=cfg.seed)
            summary = write_result(result, args.out)
            print(format_result(result))
            print(f"  samples and summary -> {summary.parent}/")
    finally:
        grader.close()
        engine.close()
    return 0


def format_result(result) -> str:
    m, s = result.metrics, result.settings
    head = f"eval/{result.name}"
    lines = [f"{result.name}: {s['num_problems']} problems x {s['num_samples']} samples (T={s['temperature']}, "
             f"top-p={s['top_p']}, <= {s['max_new_tokens']} tokens), {s['num_skipped']} skipped as too long, "
             f"data sha256 {s['dataset_sha256'][:12]}"]
    for key in sorted(k for k in m if k.startswith(head + "/") and k.count("/") == 2):
        lines.append(f"  {key[len(head) + 1:]:<18} {m[key]:.4f}")
    for attr in ("subject", "level"):
        rows = sorted({k.split("/")[3] for k in m if k.startswith(f"{head}/{attr}/")})
        for value in rows:
            lines.append(f"  {attr} {value:<24} pass@1 {m[f'{head}/{attr}/{value}/pass@1']:.4f}  "
                         f"({int(m[f'{head}/{attr}/{value}/num_problems'])} problems)")
    return "\n".join(lines)


def passrate_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="oreal passrate", description="Sample K answers per training prompt with a "
                                     "policy, grade them, and write each prompt's pass rate (JSONL, field pass_rate).")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--k", type=int, default=8, help="samples per prompt")
    parser.add_argument("--model", help="an HF model folder, a run folder or a checkpoint (default: the config's starting "
                        "model, warm-started as the config says)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        cfg, model_path = _setup(args.overrides, args.model)
    except OrealError as exc:
        print(f"oreal: {'invalid config: ' if isinstance(exc, ConfigError) else ''}{exc}", file=sys.stderr)
        return 2
    from oreal.data.sources import load_source, write_jsonl
    from oreal.engines.protocols import SamplingSettings
    from oreal.evaluation import generate_in_chunks

    render, engine, grader = _components(cfg, model_path)
    r = cfg.rollout
    sampling = SamplingSettings(temperature=r.temperature, top_p=r.top_p, top_k=r.top_k, max_new_tokens=r.max_new_tokens,
                                stop=tuple(r.stop), seed=cfg.seed)
    rows, skipped = [], 0
    try:
        for source_name, src in cfg.data.train.items():
            prompts = load_source(src, cfg.data.cpu_task)
            fitting = [(p, ids) for p in prompts if (ids := render(p.problem)) is not None]
            skipped += len(prompts) - len(fitting)
            groups = generate_in_chunks(engine, [ids for _, ids in fitting], args.k, sampling, f"sampling {source_name}")
            for (p, _), g in zip(fitting, groups):
                grades = grader.grade_batch([c.text for c in g.completions], [p.answer] * args.k,
                                            finish_reasons=[c.finish_reason for c in g.completions])
                rows.append({"id": p.id, "problem": p.problem, "answer": p.answer, "subject": p.subject, "level": p.level,
                             "source": source_name, "pass_rate": sum(x.correct for x in grades) / args.k})
    finally:
        grader.close()
        engine.close()
    write_jsonl(args.out, rows)
    mean = sum(r["pass_rate"] for r in rows) / max(1, len(rows))
    print(json.dumps({"prompts": len(rows), "skipped_too_long": skipped, "k": args.k, "mean_pass_rate": round(mean, 4),
                      "out": str(args.out)}))
    return 0

