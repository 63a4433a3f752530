"""The workload of the Megatron speed scripts (``bench.py`` here, ``gpu_checks/megatron_mfu.py``):
sequence lengths with the spread of OREAL responses, a random-weight Qwen2 model built on this
machine, and an OREAL batch and loss.

Lengths. A response length is drawn from a log-normal with median ``MEDIAN_RESPONSE_TOKENS``
(4096) and log-space standard deviation ``SIGMA`` (0.75), capped where the 16384-token context
ends; a prompt from a uniform 100-400 tokens. Why this shape: generation lengths are the sum of
many steps whose number varies multiplicatively (a problem takes a few more or a few fewer
rounds of checking), which gives a right-skewed, roughly log-normal spread; R1-style 7B models on
competition math commonly average a few thousand tokens per response with a tail that reaches the
generation cap. The median and sigma are our assumption, not a fit to a published data set: with
them the responses' median is 4,100 tokens, their mean (after the cap) 5,200, and 3.4% hit the
cap (100,000 draws). What matters for padded versus packed micro-batches is the spread relative
to the cap, so smaller-scale runs scale every length by ``max_len / 16384``.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch

FULL_CONTEXT_TOKENS = 16384  # OREAL's rollout.max_model_len
MEDIAN_RESPONSE_TOKENS = 4096
SIGMA = 0.75
PROMPT_TOKENS = (100, 400)


def sequence_lengths(num: int, max_len: int, seed: int = 0) -> list[tuple[int, int]]:
    """``(prompt tokens, total tokens)`` of ``num`` sequences, scaled to a ``max_len`` context."""
    rng = random.Random(seed)
    scale = max_len / FULL_CONTEXT_TOKENS
    out = []
    for _ in range(num):
        prompt = rng.uniform(*PROMPT_TOKENS)
        response = min(rng.lognormvariate(math.log(MEDIAN_RESPONSE_TOKENS), SIGMA), FULL_CONTEXT_TOKENS - prompt)
        p = max(1, round(prompt * scale))
        out.append((p, min(max_len, p + max(1, round(response * scale)))))
    return out


def build_model(directory: Path, *, hidden: int, layers: int, heads: int, kv_heads: int, ffn: int, vocab: int,
                max_positions: int, tied: bool, device: str = "cpu", seed: int = 0) -> Path:
    """A Qwen2-architecture model with random weights (transformers' initialisation), saved as
    safetensors; built once per folder."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    directory = Path(directory)
    if (directory / "config.json").exists():
        return directory
    config = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=max_positions,
                         tie_word_embeddings=tied, rope_theta=1_000_000.0, rms_norm_eps=1e-6, pad_token_id=0)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2ForCausalLM(config)
    model.to(torch.bfloat16).save_pretrained(directory)
    return directory


def model_config(directory: Path):
    """The :class:`oreal.config.schema.ModelConfig` of a saved model (for ``oreal.launch.plan``'s FLOP counts)."""
    from transformers import AutoConfig

    from oreal.config.schema import ModelConfig

    c = AutoConfig.from_pretrained(directory)
    return ModelConfig(name=Path(directory).name, path=str(directory), vocab_size=c.vocab_size, hidden_size=c.hidden_size,
                       intermediate_size=c.intermediate_size, num_layers=c.num_hidden_layers,
                       num_attention_heads=c.num_attention_heads, num_kv_heads=c.num_key_value_heads,
                       tie_word_embeddings=c.tie_word_embeddings)


def oreal_batch(lengths: list[tuple[int, int]], vocab: int, seed: int = 0):
    """Random tokens (never the pad id 0) with ``lengths``; every third sequence correct.
    Returns the batch, its token counts and OREAL's loss function."""
    from oreal.algo import OrealConfig, TokenCounts, get_variant
    from oreal.engines.protocols import SequenceBatch

    g = torch.Generator().manual_seed(seed)
    tokens = [torch.randint(1, vocab, (n,), generator=g).tolist() for _, n in lengths]
    rewards = torch.tensor([1.0 if i % 3 == 0 else -1.0 for i in range(len(lengths))])
    batch = SequenceBatch(tokens, [p for p, _ in lengths], rewards, rewards * torch.linspace(0.5, 1.5, len(lengths)))
    n = batch.num_response_tokens()
    positive = sum(k for k, r in zip(n, rewards) if r > 0)
    counts = TokenCounts(positive, sum(n) - positive, sum(n), len(lengths))
    variant, cfg = get_variant("oreal"), OrealConfig()
    return batch, counts, lambda inputs, c: variant.loss(cfg, inputs, c)


def free_port() -> int:
    """A TCP port for this process's single-rank process group."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
