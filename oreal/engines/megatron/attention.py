"""Core attention of the engine's Megatron layer spec, chosen by ``engine.attention``.

- ``local``: Megatron's ``DotProductAttention``. Unfused: it materialises the
  ``[batch, heads, s, s]`` scores and their softmax per layer; padded micro-batches only.
- ``sdpa``: torch's ``scaled_dot_product_attention``. On GPU it is restricted to the fused
  kernels (flash, memory-efficient, cuDNN), so a case none of them takes fails loudly instead
  of falling back to the math kernel and its ``s x s`` scores.
- ``flex``: FlexAttention (compiled on GPU) with a block-sparse document mask built from the
  document lengths (:func:`document_block_mask`). torch has no FlexAttention backward on CPU,
  so on CPU it scores but does not train.
- ``te``: Transformer Engine's ``TEDotProductAttention``, where TE is installed (GPU).

Only the core attention is swapped; the projections, norms and MLP stay the local spec's, so
every weight keeps its name and shape (core attention has no weights; TE's ``_extra_state``
has no parameter behind it and the checkpoint code skips it).

Megatron hands the core attention one of two layouts:

- ``sbhd`` (padded micro-batches): ``[s, b, heads, d]``. Rows are padded on the right, so
  causal attention alone keeps real tokens from seeing padding; the mask is not read.
- ``thd`` (packed micro-batches, :class:`PackedDocuments`): ``[t, heads, d]``, documents back
  to back, then padding. Megatron's attention layer has already rotated q and k per document
  (positions restart at every ``cu_seqlens`` boundary).

Packed documents with SDPA run one fused call per document. SDPA takes no per-document
("varlen") lengths, and its fused kernels take no mask except ``is_causal``: a block-diagonal
``[t, t]`` mask would be the very ``s x s`` tensor this avoids, and would push SDPA off the
flash kernel. Splitting the row is exact, costs one kernel launch per document and layer, and
skips the padding. FlexAttention reaches the same block-diagonal sparsity in one call.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import torch
import torch.nn.functional as F
from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
from megatron.core.packed_seq_params import PackedSeqParams
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.module import MegatronModule

from oreal.config.schema import ATTENTION_BACKENDS

FLEX_BLOCK = 128  # FlexAttention's default block size


# ---- SDPA ---------------------------------------------------------------------------------
def _fused_backends():
    from torch.nn.attention import SDPBackend

    return [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]


_REPEAT_KV: set = set()  # (device type, dtype) where no fused kernel took enable_gqa


def sdpa_causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal attention, ``q [b, hq, s, d]``, ``k, v [b, hkv, s, d]`` -> ``[b, hq, s, d]``.
    Grouped-query heads use ``enable_gqa``; on GPU, should no fused kernel take it for this
    dtype, the key/value heads are repeated instead (once noticed, for the rest of the run)."""
    groups = q.shape[1] // k.shape[1]
    if q.device.type != "cuda":
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=groups > 1)
    from torch.nn.attention import sdpa_kernel

    key = (q.device.type, q.dtype)
    with sdpa_kernel(_fused_backends()):
        if groups > 1 and key not in _REPEAT_KV:
            try:
                return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=True)
            except torch.OutOfMemoryError:
                raise
            except RuntimeError as exc:
                _REPEAT_KV.add(key)
                warnings.warn(f"no fused SDPA kernel takes enable_gqa for {q.dtype}; repeating key/value heads ({exc})")
        if groups > 1:
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)


def sdpa_documents(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bounds: list[tuple[int, int]],
                   scale: float) -> torch.Tensor:
    """``thd`` attention: ``q [t, hq, d]``, ``k, v [t, hkv, d]`` -> ``[t, hq, d]``, causal
    within each ``(start, end)`` of ``bounds`` (back to back from 0); rows after the last
    document (padding) are 0."""
    heads_first = lambda x, a, b: x[a:b].transpose(0, 1).unsqueeze(0)  # noqa: E731  [1, h, L, d]
    pieces = [sdpa_causal(heads_first(q, a, b), heads_first(k, a, b), heads_first(v, a, b), scale)[0].transpose(0, 1)
              for a, b in bounds]
    end = bounds[-1][1] if bounds else 0
    if end < q.shape[0]:
        pieces.append(q.new_zeros(q.shape[0] - end, *q.shape[1:]))
    return torch.cat(pieces, 0)


# ---- FlexAttention ------------------------------------------------------------------------
def document_ids(lengths: list[int], width: int, device) -> torch.Tensor:
    """``[width]`` document index of every position; padding after the documents is document
    ``len(lengths)``."""
    sizes = torch.tensor(list(lengths) + [width - sum(lengths)], device=device)
    return torch.repeat_interleave(torch.arange(len(sizes), device=device), sizes)


def document_mask_mod(doc: torch.Tensor, num_docs: int):
    """FlexAttention ``mask_mod``: causal within a document; a padding position sees only itself.
    It closes over tensors only, so a compiled FlexAttention takes every row's mask without
    recompiling for its number of documents."""
    real = doc < num_docs

    def mask_mod(b, h, q_idx, kv_idx):
        return (doc[q_idx] == doc[kv_idx]) & (kv_idx <= q_idx) & (real[q_idx] | (q_idx == kv_idx))

    return mask_mod


def _kv_lists(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[n, n]`` bool block matrix -> FlexAttention's ``(kv_num_blocks, kv_indices)``: per query
    block, how many key blocks and which (listed first)."""
    order = torch.argsort((~blocks).to(torch.int8), dim=-1, stable=True)
    return blocks.sum(-1).to(torch.int32)[None, None], order.to(torch.int32)[None, None]


def document_block_mask(lengths: list[int], width: int, device, block: int = FLEX_BLOCK):
    """The BlockMask of :func:`document_mask_mod`, built from per-block document ranges in
    ``O((width / block)^2)`` without evaluating the mask on every ``(q, kv)`` pair.

    Document ids never decrease along the row, so for key block ``j`` before query block ``i``
    some pair is allowed exactly when ``j``'s last document is ``i``'s first and is a real
    document; every pair is allowed (a *full* block) when both blocks lie in that one
    document. Diagonal blocks are always partial (causal). The result lists the same blocks
    as ``create_block_mask`` (tested), which evaluates the mask on all ``width^2`` pairs."""
    from torch.nn.attention.flex_attention import BlockMask

    doc = document_ids(lengths, width, device)
    n = math.ceil(width / block)
    starts = torch.arange(n, device=device) * block
    first, last = doc[starts], doc[torch.clamp(starts + block, max=width) - 1]
    i, j = torch.arange(n, device=device)[:, None], torch.arange(n, device=device)[None, :]
    before = j < i
    shared = before & (last[None, :] == first[:, None]) & (first[:, None] < len(lengths))
    complete = (starts + block <= width)[:, None]  # a short last query block is never full (torch's convention)
    full = shared & complete & (first[None, :] == last[None, :]) & (first[:, None] == last[:, None])
    partial = (shared & ~full) | (i == j)
    kv_num, kv_idx = _kv_lists(partial)
    full_num, full_idx = _kv_lists(full)
    return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=block,
                                    mask_mod=document_mask_mod(doc, len(lengths)), seq_lengths=(width, width))


@functools.lru_cache(maxsize=8)
def causal_block_mask(width: int, device: str):
    """A padded row's mask: one document over the whole row."""
    return document_block_mask([width], width, device)


@functools.lru_cache(maxsize=1)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask, scale: float) -> torch.Tensor:
    """``q [b, hq, s, d]``, ``k, v [b, hkv, s, d]`` -> ``[b, hq, s, d]`` under ``block_mask``."""
    from torch.nn.attention.flex_attention import flex_attention

    if q.device.type == "cpu" and torch.is_grad_enabled() and q.requires_grad:
        raise NotImplementedError("engine.attention=flex trains only on GPU (torch has no FlexAttention backward on CPU); "
                                  "use engine.attention=sdpa on CPU")
    if q.device.type == "cuda":
        return _compiled_flex()(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=q.shape[1] != k.shape[1])
    with warnings.catch_warnings():  # eager on CPU materialises the scores, as a mask would: acceptable there
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        return flex_attention(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=q.shape[1] != k.shape[1])


# ---- the packed layout --------------------------------------------------------------------
@dataclass
class PackedDocuments(PackedSeqParams):
    """Megatron's ``thd`` parameters for one packed row: ``cu_seqlens`` cover the documents and
    then the padding as one more segment (RoPE splits the row by them); ``bounds`` are the
    documents alone, as host ints (no layer waits on the device to read them); ``block_mask``
    is FlexAttention's, built once per row and shared by every layer."""

    bounds: list = field(default_factory=list)
    block_mask: Any = None


def packed_documents(lengths: list[int], width: int, device, attention: str) -> PackedDocuments:
    """The ``packed_seq_params`` of a row holding documents of ``lengths`` then padding up to ``width``."""
    edges = [0]
    for n in lengths:
        edges.append(edges[-1] + n)
    if edges[-1] > width:
        raise ValueError(f"{edges[-1]} tokens do not fit a packed row of {width}")
    segments = edges + ([width] if edges[-1] < width else [])
    # Megatron's unfused thd RoPE reads the segment lengths on the host in every layer: a host
    # tensor spares a device sync there. Only Transformer Engine's kernels read it on the device.
    cu = torch.tensor(segments, dtype=torch.int32, device=device if attention == "te" else "cpu")
    longest = max(b - a for a, b in zip(segments, segments[1:]))
    return PackedDocuments(qkv_format="thd", cu_seqlens_q=cu, cu_seqlens_kv=cu, max_seqlen_q=longest, max_seqlen_kv=longest,
                           bounds=list(zip(edges, edges[1:])),
                           block_mask=document_block_mask(lengths, width, device) if attention == "flex" else None)


# ---- the Megatron module and the layer spec -----------------------------------------------
class FusedCoreAttention(MegatronModule):
    """Drop-in for Megatron's ``DotProductAttention`` (same constructor and forward) over the
    fused kernels of :attr:`backend`."""

    backend = ""

    def __init__(self, config, layer_number: int, attn_mask_type, attention_type: str,
                 attention_dropout: Optional[float] = None, softmax_scale: Optional[float] = None,
                 cp_comm_type: Optional[str] = None, pg_collection=None):
        super().__init__(config=config)
        dropout = config.attention_dropout if attention_dropout is None else attention_dropout
        if dropout or config.context_parallel_size != 1 or attn_mask_type != AttnMaskType.causal:
            raise ValueError(f"engine.attention={self.backend} supports causal self-attention without dropout "
                             "or context parallelism")
        self.scale = softmax_scale or 1.0 / math.sqrt(config.kv_channels)

    def forward(self, query, key, value, attention_mask, attn_mask_type=None, attention_bias=None,
                packed_seq_params: Optional[PackedDocuments] = None):
        """``sbhd`` in, ``[s, b, heads * d]`` out; or ``thd`` in, ``[t, heads * d]`` out."""
        if attention_bias is not None:
            raise ValueError(f"engine.attention={self.backend} takes no attention bias")
        if packed_seq_params is None:  # [s, b, h, d] -> [b, h, s, d] and back
            s, b = query.shape[:2]
            q, k, v = (x.permute(1, 2, 0, 3) for x in (query, key, value))
            out = self._attend(q, k, v)
            return out.permute(2, 0, 1, 3).reshape(s, b, -1)
        out = self._attend_packed(query, key, value, packed_seq_params)
        return out.reshape(out.shape[0], -1)

    def _attend(self, q, k, v):
        """``[b, h, s, d]`` causal attention of padded rows."""
        raise NotImplementedError

    def _attend_packed(self, q, k, v, packed: PackedDocuments):
        """``[t, h, d]`` attention within each document of a packed row."""
        raise NotImplementedError


class SDPACoreAttention(FusedCoreAttention):
    backend = "sdpa"

    def _attend(self, q, k, v):
        return sdpa_causal(q, k, v, self.scale)

    def _attend_packed(self, q, k, v, packed):
        return sdpa_documents(q, k, v, packed.bounds, self.scale)


class FlexCoreAttention(FusedCoreAttention):
    backend = "flex"

    def _attend(self, q, k, v):
        return flex(q, k, v, causal_block_mask(q.shape[2], str(q.device)), self.scale)

    def _attend_packed(self, q, k, v, packed):  # [t, h, d] -> [1, h, t, d] and back
        q, k, v = (x.transpose(0, 1).unsqueeze(0) for x in (q, k, v))
        return flex(q, k, v, packed.block_mask, self.scale)[0].transpose(0, 1)


def core_attention(attention: str):
    """The core-attention class of ``engine.attention``; ``None`` for Megatron's local one."""
    if attention not in ATTENTION_BACKENDS:
        raise ValueError(f"engine.attention={attention!r} is not supported; choose one of: {', '.join(ATTENTION_BACKENDS)}")
    if attention == "te":
        try:
            from megatron.core.extensions.transformer_engine import HAVE_TE, TEDotProductAttention
        except ImportError:
            HAVE_TE = False
        if not HAVE_TE:
            raise ValueError("engine.attention=te needs Transformer Engine (a GPU install); use engine.attention=sdpa or flex")
        return TEDotProductAttention
    return {"local": None, "sdpa": SDPACoreAttention, "flex": FlexCoreAttention}[attention]


def layer_spec(attention: str):
    """Megatron's local GPT layer spec (RMSNorm) with the core attention of ``engine.attention``."""
    spec = get_gpt_layer_local_spec(normalization="RMSNorm")
    module = core_attention(attention)
    if module is None:
        return spec
    attn = spec.submodules.self_attention
    attn = replace(attn, submodules=replace(attn.submodules, core_attention=module))
    return replace(spec, submodules=replace(spec.submodules, self_attention=attn))
