"""Padding-free micro-batches: sequences packed into rows of bounded length.

Sequences are placed first-fit-decreasing into rows of ``row_tokens`` tokens (or the longest
sequence, if longer); position ids restart at every sequence, which transformers turns into
a block-diagonal causal mask. Bounded rows keep attention cost at ``rows x row_tokens^2``
instead of ``total_tokens^2`` for one long row, while wasting almost no compute on padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from oreal.engines.protocols import SequenceBatch


@dataclass
class Packed:
    input_ids: torch.Tensor  # [R, L]
    position_ids: torch.Tensor  # [R, L]
    gather: torch.Tensor  # [N] flat positions (into R*L) whose output predicts a response token
    labels: torch.Tensor  # [N] the response tokens, sequences in batch order
    lengths: list[int]  # response tokens per sequence, in batch order


def first_fit_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into rows of at most ``capacity`` tokens, first fit in
    decreasing order of length (a sequence longer than ``capacity`` gets a row of its own)."""
    rows, fill = [], []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        slot = next((r for r, used in enumerate(fill) if used + lengths[i] <= capacity), None)
        if slot is None:
            rows.append([i])
            fill.append(lengths[i])
        else:
            rows[slot].append(i)
            fill[slot] += lengths[i]
    return rows


def pack(batch: SequenceBatch, device: str, row_tokens: int = 1024, pad_id: int = 0) -> Packed:
    lengths = [len(t) for t in batch.token_ids]
    for n, n_prompt in zip(lengths, batch.num_prompt_tokens):
        if not 0 < n_prompt < n:
            raise ValueError(f"a sequence needs at least one prompt and one response token, got {n_prompt} of {n}")
    rows = first_fit_rows(lengths, max(row_tokens, max(lengths)))
    width = max(sum(lengths[i] for i in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    start = [0] * len(lengths)
    for r, row in enumerate(rows):
        col = 0
        for i in row:
            ids[r, col : col + lengths[i]] = torch.tensor(batch.token_ids[i])
            pos[r, col : col + lengths[i]] = torch.arange(lengths[i])
            start[i] = r * width + col
            col += lengths[i]
        pos[r, col:] = torch.arange(width - col)  # padding: a segment of its own, never gathered
    gather = torch.cat([torch.arange(start[i] + p - 1, start[i] + n - 1) for i, (n, p) in enumerate(zip(lengths, batch.num_prompt_tokens))])
    labels = torch.tensor([t for tokens, p in zip(batch.token_ids, batch.num_prompt_tokens) for t in tokens[p:]], dtype=torch.long)
    return Packed(ids.to(device), pos.to(device), gather.to(device), labels.to(device), [n - p for n, p in zip(lengths, batch.num_prompt_tokens)])


def packed_hidden(decoder: torch.nn.Module, packed: Packed) -> torch.Tensor:
    """Final hidden states ``[N, H]`` at the positions that predict response tokens."""
    out = decoder(input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=False)
    hidden = out.last_hidden_state
    return hidden.reshape(-1, hidden.shape[-1])[packed.gather]
