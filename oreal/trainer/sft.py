"""Warm start: supervised fine-tuning on the CPU task's worked solutions (the stand-in for the
paper's OREAL-7B-SFT starting point). Cached by content: the same base model, corpus and
settings are trained once, and every seed and variant of a sweep starts from that copy."""

from __future__ import annotations

import fcntl
import hashlib
import json
import random
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from oreal.config.schema import Config
from oreal.data import cpu_task
from oreal.data.pipeline import PromptRenderer
from oreal.data.sources import cpu_task_rows
from oreal.engines.logprobs import chunked_logprobs
from oreal.engines.optim import build_optimizer
from oreal.engines.protocols import SequenceBatch
from oreal.engines.packing import pack, packed_hidden

DONE = "oreal_sft.json"


def _fingerprint(cfg: Config, base: Path) -> str:
    weights = hashlib.sha256()
    for f in sorted(base.glob("*.safetensors")):
        weights.update(f.read_bytes())
    spec = {"weights": weights.hexdigest(), "sft": asdict(cfg.trainer.sft), "task": asdict(cfg.data.cpu_task),
            "system_prompt": cfg.data.system_prompt, "chat_template": cfg.data.chat_template, "task_version": cpu_task.VERSION,
            "version": 1}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def sft_corpus(cfg: Config, tokenizer) -> SequenceBatch:
    """Prompt + worked solution + end-of-turn token, for every problem of the SFT split."""
    render = PromptRenderer.from_config(tokenizer, cfg.data)
    end = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    rows = []
    for row in cpu_task_rows("sft", cfg.data.cpu_task):
        prompt = render(row["problem"])
        if prompt is not None:
            rows.append((prompt, tokenizer(row["solution"], add_special_tokens=False)["input_ids"] + [end]))
    return SequenceBatch([a + b for a, b in rows], [len(a) for a, _ in rows])


def warm_start(cfg: Config, base: Path, progress: bool = True) -> Path:
    """The SFT model directory (trained now if not cached); ``base`` if SFT is off."""
    if not cfg.trainer.sft.enabled:
        return base
    out = Path(cfg.cache_dir) / "sft" / f"{cfg.model.name}-{_fingerprint(cfg, base)}"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / DONE).exists():
            _train(cfg, base, out, progress)
    return out


def _train(cfg: Config, base: Path, out: Path, progress: bool) -> None:
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sft = cfg.trainer.sft
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, cfg.engine.dtype))
    model.config.use_cache = False
    corpus = sft_corpus(cfg, tokenizer)
    steps_per_epoch = (len(corpus) + sft.batch_size - 1) // sft.batch_size
    opt, sched = build_optimizer(model.parameters(), sft.optim, sft.num_epochs * steps_per_epoch)
    rng = random.Random(cfg.data.cpu_task.seed)
    model.train()
    bar = tqdm(total=sft.num_epochs * steps_per_epoch, desc="SFT warm start", unit="batch", disable=not progress)
    losses = []
    for _ in range(sft.num_epochs):
        order = list(range(len(corpus)))
        rng.shuffle(order)
        for start in range(0, len(order), sft.batch_size):
            packed = pack(corpus.select(order[start : start + sft.batch_size]), "cpu", cfg.engine.pack_row_tokens)
            logp = chunked_logprobs(packed_hidden(model.get_decoder(), packed), model.get_output_embeddings().weight, packed.labels)
            loss = -logp.mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), sft.optim.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
            losses.append(loss.item())
            bar.update()
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    bar.close()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / DONE).write_text(json.dumps({"examples": len(corpus), "steps": len(losses), "final_loss": sum(losses[-20:]) / 20}))
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
