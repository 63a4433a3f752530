"""A Qwen2-architecture ``GPTModel`` built from a Hugging Face config.

RMSNorm, SwiGLU, RoPE with the model's theta, grouped-query attention with q/k/v bias, no
other biases, tied or untied embeddings: the local (non-Transformer-Engine) layer spec with
the core attention of ``engine.attention`` (:mod:`oreal.engines.megatron.attention`), so the
same model, with the same weight names, builds on CPU and GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ModelDims:
    vocab: int
    hidden: int
    ffn: int
    layers: int
    heads: int
    kv_heads: int
    rope_theta: float
    eps: float
    tied: bool
    max_positions: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @classmethod
    def from_hf(cls, config) -> "ModelDims":
        """From a transformers ``Qwen2Config`` (4.x ``rope_theta`` or 5.x ``rope_parameters``)."""
        if getattr(config, "model_type", "qwen2") != "qwen2":
            raise ValueError(f"the Megatron engine builds Qwen2-architecture models; this checkpoint is {config.model_type!r}")
        rope = getattr(config, "rope_parameters", None) or {}
        theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
        return cls(vocab=config.vocab_size, hidden=config.hidden_size, ffn=config.intermediate_size,
                   layers=config.num_hidden_layers, heads=config.num_attention_heads, kv_heads=config.num_key_value_heads,
                   rope_theta=float(theta), eps=config.rms_norm_eps, tied=bool(config.tie_word_embeddings),
                   max_positions=config.max_position_embeddings)


def check_divisible(dims: ModelDims, tp: int, pp: int) -> None:
    """The layouts Megatron can shard this model into; the error names the dimension."""
    for what, n, by in (("num_attention_heads", dims.heads, tp), ("num_key_value_heads", dims.kv_heads, tp),
                        ("intermediate_size", dims.ffn, tp), ("vocab_size", dims.vocab, tp), ("num_hidden_layers", dims.layers, pp)):
        if n % by:
            name = "tensor_parallel_size" if by == tp else "pipeline_parallel_size"
            raise ValueError(f"engine.{name}={by} does not divide the model's {what}={n}")
    if dims.tied and pp > 1:
        raise ValueError("tied input/output embeddings with engine.pipeline_parallel_size > 1 are not supported "
                         "(the embedding and output layer would live on different stages); use pipeline_parallel_size=1")


def transformer_config(dims: ModelDims, tp: int, pp: int, dtype: torch.dtype):
    from megatron.core.transformer.transformer_config import TransformerConfig

    return TransformerConfig(
        num_layers=dims.layers, hidden_size=dims.hidden, ffn_hidden_size=dims.ffn, num_attention_heads=dims.heads,
        num_query_groups=dims.kv_heads, kv_channels=dims.head_dim, normalization="RMSNorm", layernorm_epsilon=dims.eps,
        gated_linear_unit=True, activation_func=F.silu, add_bias_linear=False, add_qkv_bias=True,
        hidden_dropout=0.0, attention_dropout=0.0, use_cpu_initialization=True, params_dtype=dtype,
        bf16=dtype == torch.bfloat16, tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp, pipeline_dtype=dtype,
        # our losses carry global normalisers: the schedule must not average over micro-batches
        calculate_per_token_loss=True,
        # fused kernels need Transformer Engine / apex; sequence parallel is a later optimisation
        bias_activation_fusion=False, bias_dropout_fusion=False, masked_softmax_fusion=False, apply_rope_fusion=False,
        persist_layer_norm=False, gradient_accumulation_fusion=False, cross_entropy_loss_fusion=False, sequence_parallel=False,
    )


class ScalarHead(torch.nn.Module):
    """Replaces the vocabulary projection of a ``GPTModel`` with ``hidden -> 1`` (the token
    RM's head), replicated on every tensor-parallel rank; same call signature."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = torch.nn.Parameter(weight.detach().clone())

    def forward(self, hidden, weight=None, runtime_gather_output=None):
        return hidden @ self.weight.t(), None


def build_gpt(dims: ModelDims, tp: int, pp: int, pp_rank: int, dtype: torch.dtype, device: str, attention: str = "local"):
    """This rank's stage of the model (weights are loaded afterwards by the converter)."""
    from megatron.core.models.gpt.gpt_model import GPTModel

    from oreal.engines.megatron.attention import layer_spec

    check_divisible(dims, tp, pp)
    model = GPTModel(
        config=transformer_config(dims, tp, pp, dtype),
        transformer_layer_spec=layer_spec(attention),
        vocab_size=dims.vocab, max_sequence_length=dims.max_positions,
        pre_process=pp_rank == 0, post_process=pp_rank == pp - 1,
        share_embeddings_and_output_weights=dims.tied, position_embedding_type="rope",
        rotary_base=int(dims.rope_theta), rotary_percent=1.0,
    )
    return model.to(device)
