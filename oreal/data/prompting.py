"""System prompts and chat templates are files, referenced by name in configs.

``oreal/data/prompts/<name>.txt`` holds a system prompt (``oreal`` is the paper's, ``plain`` a
one-liner); ``oreal/data/templates/<name>.jinja`` a chat template. ``chat_template:
tokenizer`` uses the tokenizer's own template.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Optional

TOKENIZER_TEMPLATE = "tokenizer"


def _read(folder: str, name: str, suffix: str) -> str:
    root = resources.files("oreal.data").joinpath(folder)
    path = root.joinpath(f"{name}{suffix}")
    if not path.is_file():
        known = sorted(p.name[: -len(suffix)] for p in root.iterdir() if p.name.endswith(suffix))
        raise ValueError(f"no {folder[:-1]} named {name!r} in oreal/data/{folder}/; available: {', '.join(known)}")
    return path.read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def system_prompt(name: Optional[str]) -> Optional[str]:
    return None if name is None else _read("prompts", name, ".txt").strip()


@lru_cache(maxsize=None)
def chat_template(name: str) -> Optional[str]:
    """The template text, or None for the tokenizer's own."""
    return None if name == TOKENIZER_TEMPLATE else _read("templates", name, ".jinja")


def messages(problem: str, system: Optional[str]) -> list[dict]:
    out = [{"role": "system", "content": system}] if system else []
    return out + [{"role": "user", "content": problem}]


def render_prompt(tokenizer, problem: str, system_prompt_name: Optional[str], template_name: str) -> str:
    """The prompt text (generation prompt included) for one problem."""
    return tokenizer.apply_chat_template(
        messages(problem, system_prompt(system_prompt_name)),
        chat_template=chat_template(template_name),
        tokenize=False,
        add_generation_prompt=True,
    )
