"""The fused core attentions and the micro-batch layouts of the Megatron engine, against slow
obvious versions (no process group needed; the engine-level parity runs are in test_megatron.py)."""

import pytest
import torch

pytest.importorskip("megatron.core")

from oreal.config.load import ConfigError, load_config  # noqa: E402
from oreal.engines.megatron import micro_batches  # noqa: E402
from oreal.engines.megatron.attention import (  # noqa: E402
    document_block_mask, document_ids, document_mask_mod, flex, packed_documents, sdpa_causal, sdpa_documents)
from oreal.engines.protocols import SequenceBatch  # noqa: E402


def naive_attention(q, k, v, allowed, scale):
    """``q [h, s, d]``, ``k, v [g, s, d]``, ``allowed [s, s]`` -> ``[h, s, d]``: scores, mask,
    softmax and weighted sum written out, key/value heads repeated for their query groups."""
    k, v = (x.repeat_interleave(q.shape[0] // k.shape[0], 0) for x in (k, v))
    scores = (q @ k.transpose(-1, -2)) * scale
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1) @ v


def qkv(t, heads=4, groups=2, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(t, n, d, generator=g, dtype=torch.float64).requires_grad_() for n in (heads, groups, groups)]


def test_sdpa_causal_is_causal_grouped_query_attention():
    q, k, v = qkv(37)
    got = sdpa_causal(*(x.transpose(0, 1)[None] for x in (q, k, v)), 0.3)[0]
    want = naive_attention(*(x.transpose(0, 1) for x in (q, k, v)), torch.ones(37, 37, dtype=torch.bool).tril(), 0.3)
    assert torch.allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("lengths,width", [([5, 9, 3], 24), ([12], 12), ([2, 2], 4)])
def test_sdpa_documents_confines_attention_to_each_document(lengths, width):
    q, k, v = qkv(width)
    bounds = [(sum(lengths[:i]), sum(lengths[: i + 1])) for i in range(len(lengths))]
    got = sdpa_documents(q, k, v, bounds, 0.3)
    want = torch.zeros_like(got)
    for a, b in bounds:
        causal = torch.ones(b - a, b - a, dtype=torch.bool).tril()
        want[a:b] = naive_attention(*(x[a:b].transpose(0, 1) for x in (q, k, v)), causal, 0.3).transpose(0, 1)
    assert torch.allclose(got, want, atol=1e-12)
    assert torch.equal(got[sum(lengths):], torch.zeros_like(got[sum(lengths):]))  # padding reads nothing
    # gradients too: a document's output depends on no other document
    got[bounds[0][0] : bounds[0][1]].sum().backward()
    assert torch.equal(k.grad[bounds[0][1]:], torch.zeros_like(k.grad[bounds[0][1]:]))


LAYOUTS = [([100, 150, 50], 300), ([40, 7, 90, 33], 170), ([64], 64), ([16, 48], 100), ([200], 333)]


@pytest.mark.parametrize("lengths,width", LAYOUTS)
def test_document_block_mask_equals_flex_attentions_own(lengths, width):
    """Our O(blocks^2) construction lists the same partial and full blocks as
    ``create_block_mask``, which evaluates the mask on every pair."""
    from torch.nn.attention.flex_attention import create_block_mask

    doc = document_ids(lengths, width, "cpu")
    ours = document_block_mask(lengths, width, "cpu", block=16)
    theirs = create_block_mask(document_mask_mod(doc, len(lengths)), None, None, width, width, device="cpu", BLOCK_SIZE=16)
    for num, idx in (("kv_num_blocks", "kv_indices"), ("full_kv_num_blocks", "full_kv_indices")):
        a_num, b_num = getattr(ours, num), getattr(theirs, num)
        assert torch.equal(a_num, b_num), num
        for row, n in enumerate(a_num[0, 0].tolist()):
            assert sorted(getattr(ours, idx)[0, 0, row, :n].tolist()) == sorted(getattr(theirs, idx)[0, 0, row, :n].tolist())


@pytest.mark.parametrize("lengths,width", LAYOUTS[:3])
def test_flex_with_the_document_mask_equals_naive_attention(lengths, width):
    q, k, v = (x.detach().float() for x in qkv(width))
    bm = document_block_mask(lengths, width, "cpu")
    with torch.no_grad():
        got = flex(*(x.transpose(0, 1)[None] for x in (q, k, v)), bm, 0.3)[0]
    doc = document_ids(lengths, width, "cpu")
    i = torch.arange(width)
    allowed = document_mask_mod(doc, len(lengths))(0, 0, i[:, None], i[None, :])
    want = naive_attention(*(x.transpose(0, 1) for x in (q, k, v)), allowed, 0.3)
    n = sum(lengths)
    assert torch.allclose(got[:, :n], want[:, :n], atol=1e-5)


def test_flex_refuses_to_train_on_cpu():
    q, k, v = (x.float().transpose(0, 1)[None] for x in qkv(20))
    with pytest.raises(NotImplementedError, match="engine.attention=sdpa on CPU"):
        flex(q, k, v, document_block_mask([20], 20, "cpu"), 0.3)


def test_packed_documents_segments():
    p = packed_documents([5, 9, 3], 24, "cpu", "sdpa")
    assert p.qkv_format == "thd" and p.cu_seqlens_q.tolist() == [0, 5, 14, 17, 24]  # padding: a segment of its own
    assert p.bounds == [(0, 5), (5, 14), (14, 17)]
    assert p.max_seqlen_q == 9 and p.block_mask is None
    assert packed_documents([5, 9], 14, "cpu", "flex").cu_seqlens_q.tolist() == [0, 5, 14]
    with pytest.raises(ValueError, match="do not fit"):
        packed_documents([5, 9], 10, "cpu", "sdpa")


# ---- micro-batches --------------------------------------------------------------------------
def toy_batch():
    g = torch.Generator().manual_seed(3)
    seqs = [torch.randint(1, 500, (n,), generator=g).tolist() for n in (7, 23, 5, 12, 9, 30, 6)]
    return SequenceBatch(seqs, [2, 5, 1, 3, 4, 2, 3], torch.ones(7), torch.ones(7))


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_micro_batches_place_every_sequence_once_and_find_its_responses(layout):
    b = toy_batch()
    index = [0, 2, 3, 4, 5, 6]  # a data-parallel rank's share
    if layout == "packed":
        mbs = micro_batches.packed(b, index, 32, 0, "cpu", "sdpa")
    else:
        mbs = micro_batches.padded(b, index, 4, 0, "cpu", causal_mask=True)
    assert sorted(i for mb in mbs for i in mb.index) == index
    assert len({mb.shape for mb in mbs}) == 1  # one shape per pipeline pass
    for mb in mbs:
        # position t predicts token t + 1: the values "next token" must be each response
        got = micro_batches.response_values(mb, mb.tokens[:, 1:])
        assert [g.tolist() for g in got] == [b.token_ids[i][b.num_prompt_tokens[i]:] for i in mb.index]
        for (row, col), i in zip(mb.starts, mb.index):
            assert mb.positions[row, col : col + len(b.token_ids[i])].tolist() == list(range(len(b.token_ids[i])))
    if layout == "packed":
        assert all(mb.shape[0] == 1 and mb.packed is not None and mb.mask is None for mb in mbs)
        assert mbs[0].shape == (1, 32) and len(mbs) < len(index)  # rows of the budget, several sequences each
        assert micro_batches.packed(b, index, 8, 0, "cpu", "sdpa")[0].shape == (1, 30)  # raised to the longest
        assert micro_batches.packed(b, index, 500, 0, "cpu", "sdpa")[0].shape == (1, 69)  # one row of all there is
    else:
        assert mbs[0].shape == (4, 30) and mbs[0].mask.shape == (1, 1, 30, 30)


# ---- config -----------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides,reason", [
    (["engine.attention=flex"], "the torch engine always runs transformers' SDPA"),
    (["engine.packing=false"], "the torch engine always runs transformers' SDPA"),
    (["engine=megatron", "engine.attention=local"], "engine.packing=true needs a fused attention"),
    (["engine=megatron", "engine.attention=xformers"], "engine.attention='xformers' is not supported"),
    (["engine=megatron", "engine.micro_batch_tokens_per_rank=0"], "engine.micro_batch_tokens_per_rank=0 must be > 0"),
])
def test_attention_and_packing_settings_are_checked(overrides, reason):
    with pytest.raises(ConfigError, match=reason):
        load_config(overrides)


def test_megatron_defaults_to_packed_fused_attention():
    e = load_config(["engine=megatron"]).engine
    assert (e.attention, e.packing) == ("sdpa", True)
    assert load_config(["engine=megatron", "engine.attention=local", "engine.packing=false"]).engine.attention == "local"
