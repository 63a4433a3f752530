"""Hugging Face Qwen2 <-> Megatron ``GPTModel`` weights, with tensor/pipeline sharding.

Megatron's fused ``linear_qkv`` is stored group-major (for each KV group: its query heads,
then its key head, then its value head), so a contiguous split on dim 0 is a split by query
group, which is what tensor parallelism needs. ``linear_fc1`` is ``[gate; up]`` and each half
is split separately. Column-parallel weights split on dim 0, row-parallel ones on dim 1,
norms are replicated. Conversions are exact copies (the round trip is bit-exact).

The same mapping converts anything shaped like the weights (Adam moments included), and the
gather works one *unit* (the embedding, one layer, the final norm and head) at a time, so
exporting never holds more than one unit beyond the model itself.
"""

from __future__ import annotations

from typing import Iterator, Mapping

import torch
import torch.distributed as dist

from oreal.engines.megatron.model import ModelDims
from oreal.engines.megatron.parallel import Layout

Tensors = dict[str, torch.Tensor]

_LAYER_MAP = (  # Megatron suffix <- HF suffix, for the one-to-one tensors of a layer
    ("self_attention.linear_proj.weight", "self_attn.o_proj.weight"),
    ("input_layernorm.weight", "input_layernorm.weight"),
    ("pre_mlp_layernorm.weight", "post_attention_layernorm.weight"),
    ("mlp.linear_fc2.weight", "mlp.down_proj.weight"),
)
_COLUMN = ("linear_qkv.weight", "linear_qkv.bias", "linear_fc1.weight", "word_embeddings.weight")
_ROW = ("linear_proj.weight", "linear_fc2.weight")


def units(dims: ModelDims) -> list[tuple]:
    return [("embedding",)] + [("layer", i) for i in range(dims.layers)] + [("final",)]


def unit_stage(unit: tuple, dims: ModelDims, pp: int) -> int:
    if unit[0] == "embedding":
        return 0
    if unit[0] == "final":
        return pp - 1
    return unit[1] // (dims.layers // pp)


def unit_names(unit: tuple, dims: ModelDims, score_head: bool) -> list[str]:
    """Full (global) Megatron names in a unit."""
    if unit[0] == "embedding":
        return ["embedding.word_embeddings.weight"]
    if unit[0] == "final":
        return ["decoder.final_layernorm.weight"] + ([] if dims.tied and not score_head else ["output_layer.weight"])
    p = f"decoder.layers.{unit[1]}."
    return [p + "self_attention.linear_qkv.weight", p + "self_attention.linear_qkv.bias"] + [p + m for m, _ in _LAYER_MAP] \
        + [p + "mlp.linear_fc1.weight"]


def full_shape(name: str, dims: ModelDims, score_head: bool) -> tuple[int, ...]:
    h, qkv = dims.hidden, (dims.heads + 2 * dims.kv_heads) * dims.head_dim
    table = {"word_embeddings.weight": (dims.vocab, h), "final_layernorm.weight": (h,),
             "output_layer.weight": (1, h) if score_head else (dims.vocab, h), "linear_qkv.weight": (qkv, h),
             "linear_qkv.bias": (qkv,), "linear_proj.weight": (h, h), "input_layernorm.weight": (h,),
             "pre_mlp_layernorm.weight": (h,), "linear_fc1.weight": (2 * dims.ffn, h), "linear_fc2.weight": (h, dims.ffn)}
    return next(shape for suffix, shape in table.items() if name.endswith(suffix))


# ---- full HF <-> full Megatron --------------------------------------------------------------
def unit_hf_names(unit: tuple, dims: ModelDims) -> list[str]:
    """The HF tensors a unit is made of (a policy's: a token RM's score head is not in the checkpoint)."""
    if unit[0] == "embedding":
        return ["model.embed_tokens.weight"]
    if unit[0] == "final":
        return ["model.norm.weight"] + ([] if dims.tied else ["lm_head.weight"])
    p = f"model.layers.{unit[1]}."
    return [p + f"self_attn.{x}_proj.{w}" for w in ("weight", "bias") for x in "qkv"] + [p + h for _, h in _LAYER_MAP] \
        + [p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"]


def hf_unit_to_mcore(hf: Mapping[str, torch.Tensor], unit: tuple, dims: ModelDims) -> Tensors:
    """One unit's HF tensors (:func:`unit_hf_names`) -> its full Megatron tensors (a policy's)."""
    if unit[0] == "embedding":
        return {"embedding.word_embeddings.weight": hf["model.embed_tokens.weight"]}
    if unit[0] == "final":
        out = {"decoder.final_layernorm.weight": hf["model.norm.weight"]}
        if not dims.tied:
            out["output_layer.weight"] = hf["lm_head.weight"]
        return out
    h, g, hd = dims.hidden, dims.kv_heads, dims.head_dim
    per = dims.heads // g * hd
    p, m = f"model.layers.{unit[1]}.", f"decoder.layers.{unit[1]}."
    q, k, v = (hf[p + f"self_attn.{x}_proj.weight"] for x in "qkv")
    qb, kb, vb = (hf[p + f"self_attn.{x}_proj.bias"] for x in "qkv")
    out = {m + "self_attention.linear_qkv.weight": torch.cat([q.reshape(g, per, h), k.reshape(g, hd, h), v.reshape(g, hd, h)], 1).reshape(-1, h),
           m + "self_attention.linear_qkv.bias": torch.cat([qb.reshape(g, per), kb.reshape(g, hd), vb.reshape(g, hd)], 1).reshape(-1),
           m + "mlp.linear_fc1.weight": torch.cat([hf[p + "mlp.gate_proj.weight"], hf[p + "mlp.up_proj.weight"]], 0)}
    out.update({m + mname: hf[p + hname] for mname, hname in _LAYER_MAP})
    return out


def hf_to_mcore(hf: Mapping[str, torch.Tensor], dims: ModelDims) -> Tensors:
    """Full HF state dict -> full Megatron names (the engine loads unit by unit instead)."""
    out: Tensors = {}
    for unit in units(dims):
        out.update(hf_unit_to_mcore(hf, unit, dims))
    return {k: v.detach().clone() for k, v in out.items()}


def mcore_to_hf(m: Mapping[str, torch.Tensor], dims: ModelDims, score_head: bool = False) -> Tensors:
    """Full Megatron names -> HF names; works on any subset of whole units."""
    h, g, hd = dims.hidden, dims.kv_heads, dims.head_dim
    per = dims.heads // g * hd
    out: Tensors = {}
    simple = {"embedding.word_embeddings.weight": "model.embed_tokens.weight", "decoder.final_layernorm.weight": "model.norm.weight",
              "output_layer.weight": "score.weight" if score_head else "lm_head.weight"}
    for name, t in m.items():
        if name in simple:
            out[simple[name]] = t
            continue
        i = int(name.split(".")[2])
        p, suffix = f"model.layers.{i}.", name.split(".", 3)[3]
        if suffix == "self_attention.linear_qkv.weight":
            q, k, v = t.reshape(g, per + 2 * hd, h).split([per, hd, hd], dim=1)
            out.update({p + "self_attn.q_proj.weight": q.reshape(-1, h), p + "self_attn.k_proj.weight": k.reshape(-1, h),
                        p + "self_attn.v_proj.weight": v.reshape(-1, h)})
        elif suffix == "self_attention.linear_qkv.bias":
            q, k, v = t.reshape(g, per + 2 * hd).split([per, hd, hd], dim=1)
            out.update({p + "self_attn.q_proj.bias": q.reshape(-1), p + "self_attn.k_proj.bias": k.reshape(-1),
                        p + "self_attn.v_proj.bias": v.reshape(-1)})
        elif suffix == "mlp.linear_fc1.weight":
            gate, up = t.chunk(2, 0)
            out.update({p + "mlp.gate_proj.weight": gate, p + "mlp.up_proj.weight": up})
        else:
            out[p + dict(_LAYER_MAP)[suffix]] = t
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


# ---- sharding -------------------------------------------------------------------------------
def _tp_dim(name: str, score_head: bool) -> int | None:
    if name.endswith("output_layer.weight"):
        return None if score_head else 0
    if name.endswith(_COLUMN):
        return 0
    if name.endswith(_ROW):
        return 1
    return None


def tp_shard(name: str, t: torch.Tensor, rank: int, size: int, score_head: bool = False) -> torch.Tensor:
    d = _tp_dim(name, score_head)
    if d is None or size == 1:
        return t.clone()
    if name.endswith("linear_fc1.weight"):
        gate, up = t.chunk(2, 0)
        return torch.cat([gate.chunk(size, 0)[rank], up.chunk(size, 0)[rank]], 0).clone()
    return t.chunk(size, dim=d)[rank].clone()


def tp_unshard(name: str, shards: list[torch.Tensor], score_head: bool = False) -> torch.Tensor:
    d = _tp_dim(name, score_head)
    if d is None or len(shards) == 1:
        return shards[0]
    if name.endswith("linear_fc1.weight"):
        halves = [s.chunk(2, 0) for s in shards]
        return torch.cat([torch.cat([x[0] for x in halves], 0), torch.cat([x[1] for x in halves], 0)], 0)
    return torch.cat(shards, d)


def local_name(name: str, dims: ModelDims, pp: int) -> str:
    """Global layer index -> the stage-local index Megatron uses in each stage's module."""
    if not name.startswith("decoder.layers."):
        return name
    i = int(name.split(".")[2])
    return name.replace(f"decoder.layers.{i}.", f"decoder.layers.{i % (dims.layers // pp)}.", 1)


def local_shard(full: Mapping[str, torch.Tensor], dims: ModelDims, layout: Layout, score_head: bool = False) -> Tensors:
    """This rank's piece (stage-local names) of a full Megatron state dict."""
    out = {}
    for unit in local_units(dims, layout):
        out.update(unit_shard(full, unit, dims, layout, score_head))
    return out


def local_units(dims: ModelDims, layout: Layout) -> list[tuple]:
    """The units of this rank's pipeline stage."""
    return [unit for unit in units(dims) if unit_stage(unit, dims, layout.pp) == layout.pp_rank]


def unit_shard(full: Mapping[str, torch.Tensor], unit: tuple, dims: ModelDims, layout: Layout, score_head: bool = False) -> Tensors:
    """This rank's piece (stage-local names) of one unit's full Megatron tensors."""
    return {local_name(name, dims, layout.pp): tp_shard(name, full[name], layout.tp_rank, layout.tp, score_head)
            for name in unit_names(unit, dims, score_head)}


def gather_units(local: Mapping[str, torch.Tensor], dims: ModelDims, layout: Layout,
                 score_head: bool = False) -> Iterator[Tensors]:
    """Full Megatron tensors of each unit in turn on global rank 0 (``{}`` on other ranks),
    gathered over tensor parallel ranks and sent from the owning pipeline stage. Every rank
    of data-parallel replica 0 must iterate it to the end (it runs collectives)."""
    from megatron.core import parallel_state as ps

    if layout.dp_rank != 0:
        return
    tp_group = ps.get_tensor_model_parallel_group()
    pp_ranks = dist.get_process_group_ranks(ps.get_pipeline_model_parallel_group()) if layout.pp > 1 else [layout.rank]
    for unit in units(dims):
        stage = unit_stage(unit, dims, layout.pp)
        full: Tensors = {}
        for name in unit_names(unit, dims, score_head):
            if layout.pp_rank == stage:
                t = local[local_name(name, dims, layout.pp)].detach().contiguous()
                if layout.tp > 1 and _tp_dim(name, score_head) is not None:
                    shards = [torch.empty_like(t) for _ in range(layout.tp)]
                    dist.all_gather(shards, t, group=tp_group)
                    t = tp_unshard(name, shards, score_head)
                full[name] = t
            if stage != 0 and layout.tp_rank == 0:
                if layout.pp_rank == stage:
                    dist.send(full[name].contiguous(), dst=pp_ranks[0])
                elif layout.pp_rank == 0:
                    buf = torch.empty(full_shape(name, dims, score_head), dtype=next(iter(local.values())).dtype,
                                      device=next(iter(local.values())).device)
                    dist.recv(buf, src=pp_ranks[stage])
                    full[name] = buf
        yield full if layout.rank == 0 else {}
