"""``oreal init-tiny``: a Qwen2-architecture model and its tokenizer, built on this machine.

The tokenizer is a byte-level BPE trained with the ``tokenizers`` library on the CPU task's
text, with exactly the normaliser and pre-tokenizer that transformers' ``Qwen2Tokenizer``
rebuilds on load (digits split one by one), so transformers and vLLM both see the tokenizer
that was trained. The model is ``Qwen2ForCausalLM`` (the class behind Qwen2.5-7B/32B) with
random weights from a seed, saved as safetensors with a ChatML template. No hub access.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from oreal.config.schema import CPUTaskConfig, ModelConfig
from oreal.data import cpu_task
from oreal.data.prompting import chat_template, system_prompt

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
RECIPE_FILE = "oreal_recipe.json"
# transformers' Qwen2Tokenizer.PRETOKENIZE_REGEX (kept in sync by tests/engines/test_tiny.py)
QWEN2_PRETOKENIZE = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


TOKENIZER_CORPUS_PROBLEMS = 3000


def recipe(model: ModelConfig, task: CPUTaskConfig, seed: int) -> dict:
    """Everything the built files depend on; a model directory is rebuilt when it changes.
    (The split sizes are not in it: the tokenizer corpus is a fixed sample of the task.)"""
    arch = {k: v for k, v in asdict(model).items() if k not in ("name", "path", "build_locally", "published_num_params")}
    return {"model": arch, "task_seed": task.seed, "task_version": cpu_task.VERSION, "corpus_problems": TOKENIZER_CORPUS_PROBLEMS,
            "seed": seed, "version": 2}


def recipe_hash(r: dict) -> str:
    return hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()[:16]


def corpus(task: CPUTaskConfig) -> list[str]:
    """Text the tokenizer is trained on: a fixed sample of CPU-task problems and solutions."""
    problems = list(cpu_task.generate(task.seed + 7, TOKENIZER_CORPUS_PROBLEMS))
    return [p.problem for p in problems] + [p.solution() for p in problems] + [system_prompt("plain"), "user\nassistant\nsystem\n"]


def train_tokenizer(texts: list[str], vocab_size: int):
    """A Qwen2-style byte-level BPE tokenizer of at most ``vocab_size`` tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def hf_tokenizer(tok, max_length: int):
    """Wrap the trained BPE as transformers' Qwen2Tokenizer with the ChatML template."""
    from transformers import Qwen2Tokenizer

    spec = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in spec["merges"]]
    hf = Qwen2Tokenizer(vocab=spec["vocab"], merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                        unk_token="<|endoftext|>", model_max_length=max_length)
    hf.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    hf.chat_template = chat_template("chatml")
    return hf


def build_model(model: ModelConfig, vocab_size: int, eos_ids: list[int], pad_id: int, seed: int):
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    if vocab_size > model.vocab_size:
        raise ValueError(f"the tokenizer has {vocab_size} tokens but model.vocab_size={model.vocab_size}")
    config = Qwen2Config(
        vocab_size=model.vocab_size,
        hidden_size=model.hidden_size,
        intermediate_size=model.intermediate_size,
        num_hidden_layers=model.num_layers,
        num_attention_heads=model.num_attention_heads,
        num_key_value_heads=model.num_kv_heads,
        max_position_embeddings=model.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": model.rope_theta},
        rms_norm_eps=model.rms_norm_eps,
        tie_word_embeddings=model.tie_word_embeddings,
        bos_token_id=None,
        eos_token_id=eos_ids[0],
        pad_token_id=pad_id,
        dtype=model.dtype,
    )
    torch.manual_seed(seed)
    net = Qwen2ForCausalLM(config).to(getattr(torch, model.dtype))
    net.generation_config = GenerationConfig(eos_token_id=eos_ids, pad_token_id=pad_id, bos_token_id=None)
    return net


def build_tiny(model: ModelConfig, task: CPUTaskConfig, out_dir: Path, seed: int = 0) -> Path:
    """Build tokenizer + model into ``out_dir`` atomically (a temp dir renamed into place)."""
    out_dir = Path(out_dir)
    r = recipe(model, task, seed)
    tok = train_tokenizer(corpus(task), model.vocab_size)
    hf_tok = hf_tokenizer(tok, model.max_position_embeddings)
    eos_ids = [hf_tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    net = build_model(model, len(hf_tok), eos_ids, hf_tok.pad_token_id, seed)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        hf_tok.save_pretrained(tmp)
        net.save_pretrained(tmp, safe_serialization=True)
        (tmp / RECIPE_FILE).write_text(json.dumps({**r, "hash": recipe_hash(r)}, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.chmod(0o755)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def is_current(out_dir: Path, model: ModelConfig, task: CPUTaskConfig, seed: int) -> bool:
    path = Path(out_dir) / RECIPE_FILE
    if not path.is_file():
        return False
    return json.loads(path.read_text()).get("hash") == recipe_hash(recipe(model, task, seed))


def ensure_tiny(model: ModelConfig, task: CPUTaskConfig, seed: int = 0) -> Path:
    """The model directory at ``model.path``, built first if missing or built from another
    recipe. A file lock makes concurrent jobs of a sweep build it once."""
    out = Path(model.path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_current(out, model, task, seed):
            build_tiny(model, task, out, seed)
    return out


def num_parameters(path: Path) -> int:
    from safetensors import safe_open

    total = 0
    for f in Path(path).glob("*.safetensors"):
        with safe_open(f, "pt") as st:
            for key in st.keys():
                total += _prod(st.get_slice(key).get_shape())
    return total


def _prod(shape) -> int:
    out = 1
    for d in shape:
        out *= d
    return out
