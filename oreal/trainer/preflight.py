"""Checks that fail a run in seconds, before any model is built or warm-started.

Everything a run will need and can be checked cheaply: the run folder is writable; every
training and evaluation source exists, parses, has the named fields and at least one row (the
error names the config field and the file and line of the first bad row); the model path is a
folder or a hub id that can be fetched (oreal/engines/model_files.py); a prompt fits the
model's context and ``data.max_prompt_tokens`` (which needs only the tokenizer); a configured
LLM judge answers. ``oreal config`` runs the same checks, through :func:`preflight`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

from oreal.config.schema import Config, SourceConfig
from oreal.errors import OrealError


class PreflightError(OrealError):
    """Something the run needs is missing or broken; the message names it and the fix."""


def preflight(cfg: Config, run_dir: Optional[Path] = None) -> None:
    if run_dir is not None:
        check_writable(Path(run_dir))
    check_sources(cfg)
    check_prompts(cfg)
    if cfg.reward.judge.enabled:
        check_judge(cfg)


def check_writable(run_dir: Path) -> None:
    """The run folder, or the nearest folder above it that exists, accepts a file."""
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".oreal-write-test-"):
            pass
    except OSError as exc:
        raise PreflightError(f"run_dir={run_dir}: cannot write in {existing} ({exc.strerror}); choose a writable run_dir "
                             "(on a file system every node of the job shares)") from None


def _check_source(field: str, src: SourceConfig, cfg: Config) -> int:
    from oreal.data.builtin import DataIntegrityError
    from oreal.data.sources import DataError, load_source, resolve

    try:
        if src.kind != "hub" and src.kind != "cpu_task" and not resolve(src.path).exists():
            raise DataError(f"no such file {src.path}")
        return len(load_source(src, cfg.data.cpu_task))
    except DataIntegrityError as exc:
        raise PreflightError(f"{field}.sha256: {exc}; for a file of your own set {field}.sha256=null (or its hash)") from None
    except (DataError, FileNotFoundError, ValueError, OSError) as exc:
        raise PreflightError(f"{field} (path={src.path}): {exc}") from None


def check_sources(cfg: Config) -> None:
    for name, src in cfg.data.train.items():
        _check_source(f"data.train.{name}", src, cfg)
    for name, ev in cfg.data.eval.items():
        _check_source(f"data.eval.{name}.source", ev.source, cfg)


def check_judge(cfg: Config) -> None:
    from oreal.reward.judge import JudgeClient, JudgeSettings, JudgeUnavailable

    j = cfg.reward.judge
    client = JudgeClient(JudgeSettings(j.base_url, j.model, request_timeout_s=j.request_timeout_s),
                         api_key=os.environ.get(j.api_key_env))
    try:
        client.health(timeout_s=min(j.request_timeout_s, 15.0))
    except JudgeUnavailable as exc:
        raise PreflightError(f"reward.judge.base_url={j.base_url}: {exc}; start the judge server, fix the URL, or train "
                             "without a judge (reward=rule)") from None


def check_prompts(cfg: Config) -> None:
    """:func:`check_prompt_fits` with the model's tokenizer, before any model is built: the
    model folder's (a hub id is downloaded now, once), or for a model built locally (the tiny
    sizes) the one it is built with, trained in memory (about 2 s) when it is not built yet."""
    if not cfg.model.build_locally:
        from oreal.engines.model_files import resolve_model_path

        check_model_prompts(cfg, resolve_model_path(cfg.model.path, cfg.cache_dir))
        return
    from oreal.engines.tiny import corpus, hf_tokenizer, is_current, train_tokenizer

    if is_current(Path(cfg.model.path), cfg.model, cfg.data.cpu_task, seed=0):  # the seed ensure_tiny builds with
        check_model_prompts(cfg, cfg.model.path)
        return
    positions = cfg.model.max_position_embeddings
    check_prompt_fits(cfg, hf_tokenizer(train_tokenizer(corpus(cfg.data.cpu_task), cfg.model.vocab_size), positions), positions)


def check_model_prompts(cfg: Config, model_path: str) -> None:
    """:func:`check_prompt_fits` with the tokenizer and positions of the model folder ``model_path``."""
    from transformers import AutoConfig, AutoTokenizer

    positions = getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None)
    check_prompt_fits(cfg, AutoTokenizer.from_pretrained(model_path), positions)


def check_prompt_fits(cfg: Config, tokenizer, context: Optional[int] = None) -> None:
    """The system prompt and chat template around a one-word problem must leave room in
    ``data.max_prompt_tokens`` and in the model's context (``context``: its positions)."""
    from oreal.data.pipeline import PromptRenderer

    renderer = PromptRenderer(tokenizer, cfg.data.system_prompt, cfg.data.chat_template, 10**9)
    overhead = len(renderer("1"))
    limits = [("data.max_prompt_tokens", cfg.data.max_prompt_tokens), ("rollout.max_model_len - rollout.max_new_tokens",
              cfg.rollout.max_model_len - cfg.rollout.max_new_tokens)]
    if context is not None:
        limits.append((f"the positions of model={cfg.model.name}", context))
    for what, limit in limits:
        if overhead >= limit:
            raise PreflightError(
                f"data.system_prompt={cfg.data.system_prompt} with data.chat_template={cfg.data.chat_template} takes "
                f"{overhead} tokens before the problem, no room within {what} = {limit}: use a shorter system prompt "
                "(data.system_prompt=plain) or a model with a longer context")
