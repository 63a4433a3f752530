"""Per-token log-probs from hidden states without building a ``[tokens, vocab]`` tensor.

The LM head is applied to ``chunk_size`` tokens at a time, in float32. With gradients the
same chunking runs again in the backward pass (the logits are recomputed, never stored), so
peak memory is one ``[chunk_size, vocab]`` block whatever the sequence length: the reason a
16k-token response does not run out of memory on the full-vocabulary softmax.
"""

from __future__ import annotations

import torch


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """float32 for half-precision inputs, the input's own precision otherwise."""
    return torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype


def _chunk_logits(hidden: torch.Tensor, weight: torch.Tensor, start: int, end: int) -> torch.Tensor:
    dtype = compute_dtype(hidden)
    return hidden[start:end].to(dtype) @ weight.to(dtype).t()


class _ChunkedLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, labels, chunk_size):
        out = torch.empty(labels.shape[0], dtype=compute_dtype(hidden), device=hidden.device)
        for start in range(0, labels.shape[0], chunk_size):
            end = min(start + chunk_size, labels.shape[0])
            logits = _chunk_logits(hidden, weight, start, end)
            out[start:end] = logits.gather(1, labels[start:end, None]).squeeze(1) - torch.logsumexp(logits, dim=1)
        ctx.save_for_backward(hidden, weight, labels)
        ctx.chunk_size = chunk_size
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, labels = ctx.saved_tensors
        grad_hidden = torch.zeros_like(hidden) if ctx.needs_input_grad[0] else None
        dtype = compute_dtype(hidden)
        grad_weight = torch.zeros(weight.shape, dtype=dtype, device=weight.device) if ctx.needs_input_grad[1] else None
        w = weight.to(dtype)
        for start in range(0, labels.shape[0], ctx.chunk_size):
            end = min(start + ctx.chunk_size, labels.shape[0])
            # d logp(y) / d logits = onehot(y) - softmax(logits)
            grad_logits = torch.softmax(_chunk_logits(hidden, weight, start, end), dim=1).neg_()
            grad_logits.scatter_add_(1, labels[start:end, None], torch.ones_like(grad_logits[:, :1]))
            grad_logits *= grad_out[start:end, None]
            if grad_hidden is not None:
                grad_hidden[start:end] = (grad_logits @ w).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight += grad_logits.t() @ hidden[start:end].to(dtype)
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None


def chunked_logprobs(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, chunk_size: int = 1024) -> torch.Tensor:
    """``log softmax(hidden @ weight.T)[i, labels[i]]`` for ``hidden [N, H]``, ``weight [V, H]``,
    ``labels [N]``; ``[N]`` in float32 (float64 for float64 input), differentiable in ``hidden``
    and ``weight``."""
    if hidden.ndim != 2 or labels.shape != hidden.shape[:1]:
        raise ValueError(f"expected hidden [N, H] and labels [N], got {tuple(hidden.shape)} and {tuple(labels.shape)}")
    return _ChunkedLogProbs.apply(hidden, weight, labels, int(chunk_size))


@torch.no_grad()
def chunked_entropy(hidden: torch.Tensor, weight: torch.Tensor, chunk_size: int = 1024) -> torch.Tensor:
    """Entropy of the full next-token distribution at each position, ``[N]``."""
    out = torch.empty(hidden.shape[0], dtype=compute_dtype(hidden), device=hidden.device)
    for start in range(0, hidden.shape[0], chunk_size):
        end = min(start + chunk_size, hidden.shape[0])
        logp = torch.log_softmax(_chunk_logits(hidden, weight, start, end), dim=1)
        out[start:end] = -(logp.exp() * logp).sum(dim=1)
    return out
