"""Micro-batches of the Megatron engine, padded or packed.

Every micro-batch of one pipeline pass has the same shape: the pipeline's send and receive
buffers are allocated once per pass from ``(rows, width)``.

- padded: ``rows`` sequences per micro-batch, each right-padded to the longest sequence of
  the batch; the last micro-batch is filled with empty rows that no loss ever sees. The local
  (unfused) attention also gets an explicit ``[1, 1, width, width]`` causal mask (Megatron
  builds its default one on ``cuda``); the fused ones need none.
- packed: one row per micro-batch, sequences placed back to back (first fit, longest first)
  up to the token budget (raised to the longest sequence), every row padded to that budget,
  so that a run's rows keep one shape (for the pipeline, and for compiled kernels); a batch
  with fewer tokens than the budget is one row of its own length. Position ids restart at
  each sequence, and Megatron's ``thd`` layout
  (:func:`oreal.engines.megatron.attention.packed_documents`) confines attention to each
  sequence and restarts RoPE there. The padding is a segment of its own that nothing reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from oreal.engines.megatron.attention import PackedDocuments, packed_documents
from oreal.engines.packing import first_fit_rows
from oreal.engines.protocols import SequenceBatch


@dataclass
class MicroBatch:
    tokens: torch.Tensor  # [rows, width]
    positions: torch.Tensor  # [rows, width]
    index: list[int]  # batch positions of the real sequences, in placement order
    batch: SequenceBatch  # those sequences
    starts: list[tuple[int, int]]  # (row, column) where each of them begins
    mask: Optional[torch.Tensor] = None  # [1, 1, width, width], True = masked (local attention)
    packed: Optional[PackedDocuments] = None  # the thd layout of a packed row

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.tokens.shape)


def response_values(mb: MicroBatch, values: torch.Tensor) -> list[torch.Tensor]:
    """``values[row, t]`` (``[rows, width - 1]``, position ``t`` predicting token ``t + 1``) at
    the positions that predict each real sequence's response tokens."""
    lengths = [len(t) for t in mb.batch.token_ids]
    return [values[row, col + p - 1 : col + n - 1]
            for (row, col), p, n in zip(mb.starts, mb.batch.num_prompt_tokens, lengths)]


def padded(batch: SequenceBatch, index: list[int], rows: int, pad_id: int, device, causal_mask: bool) -> list[MicroBatch]:
    width = max(len(t) for t in batch.token_ids)
    mask = torch.triu(torch.ones(width, width, dtype=torch.bool, device=device), diagonal=1)[None, None] if causal_mask else None
    positions = torch.arange(width, device=device).expand(rows, width).contiguous()
    out = []
    for start in range(0, len(index), rows):
        idx = index[start : start + rows]
        tokens = torch.full((rows, width), pad_id, dtype=torch.long)
        for row, i in enumerate(idx):
            tokens[row, : len(batch.token_ids[i])] = torch.tensor(batch.token_ids[i])
        out.append(MicroBatch(tokens.to(device), positions, idx, batch.select(idx), [(row, 0) for row in range(len(idx))], mask))
    return out


def packed(batch: SequenceBatch, index: list[int], token_budget: int, pad_id: int, device, attention: str) -> list[MicroBatch]:
    if not index:
        return []
    lengths = [len(batch.token_ids[i]) for i in index]
    width = max(max(lengths), min(token_budget, sum(lengths)))
    groups = [[index[k] for k in row] for row in first_fit_rows(lengths, width)]
    out = []
    for idx in groups:
        seqs = [batch.token_ids[i] for i in idx]
        tokens = torch.full((1, width), pad_id, dtype=torch.long)
        positions = torch.zeros((1, width), dtype=torch.long)
        starts, col = [], 0
        for seq in seqs:
            tokens[0, col : col + len(seq)] = torch.tensor(seq)
            positions[0, col : col + len(seq)] = torch.arange(len(seq))
            starts.append((0, col))
            col += len(seq)
        positions[0, col:] = torch.arange(width - col)
        out.append(MicroBatch(tokens.to(device), positions.to(device), idx, batch.select(idx), starts,
                              packed=packed_documents([len(s) for s in seqs], width, device, attention)))
    return out
