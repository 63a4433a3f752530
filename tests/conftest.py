"""Shared fixtures: a tiny model built once per test session (no hub access)."""

import os
from pathlib import Path

import pytest

# Tests never reach the network; W&B stays offline unless a test says otherwise.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_config():
    from oreal.config import load_config

    return load_config()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_config) -> Path:
    from oreal.engines.tiny import build_tiny

    return build_tiny(tiny_config.model, tiny_config.data.cpu_task, tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def chat_prompts(tokenizer):
    """32 rendered CPU-task prompts as token ids."""
    from oreal.data import cpu_task
    from oreal.data.prompting import render_prompt

    rows = cpu_task.splits(7, 0, 32, 0)["heldout"]
    return [tokenizer(render_prompt(tokenizer, r["problem"], "plain", "tokenizer"), add_special_tokens=False)["input_ids"] for r in rows]


# A warm-started tiny model (SFT on level-1 CPU problems) that gets some answers right, so that
# RL steps in the trainer and launcher tests have mixed groups and real gradients.
@pytest.fixture(scope="session")
def warm_model_dir(tmp_path_factory, tiny_model_dir):
    from oreal.config import load_config
    from oreal.trainer.sft import warm_start

    cache = tmp_path_factory.mktemp("cache")
    cfg = load_config([f"model.path={tiny_model_dir}", "data.cpu_task.levels=[1]", "data.cpu_task.num_sft=2500",
                       "trainer.sft.num_epochs=2", f"cache_dir={cache}"])
    return warm_start(cfg, tiny_model_dir, progress=False)
