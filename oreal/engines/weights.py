"""Streaming named weights in size-bounded buckets (weight sync, checkpoint export)."""

from __future__ import annotations

from typing import Iterable, Iterator

import torch


def buckets(named: Iterable[tuple[str, torch.Tensor]], bucket_bytes: int) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Group ``(name, tensor)`` pairs into lists of at most ``bucket_bytes`` (a tensor larger
    than a bucket goes alone). Tensors are produced lazily, so at most one bucket is alive."""
    bucket, size = [], 0
    for name, tensor in named:
        nbytes = tensor.numel() * tensor.element_size()
        if bucket and size + nbytes > bucket_bytes:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, tensor))
        size += nbytes
    if bucket:
        yield bucket


def flatten(bucket_iter: Iterable[list[tuple[str, torch.Tensor]]]) -> Iterator[tuple[str, torch.Tensor]]:
    for bucket in bucket_iter:
        yield from bucket


class CountedBuckets:
    """Passes buckets through, counting the bytes that went by (weight-sync bandwidth)."""

    def __init__(self, bucket_iter: Iterable[list[tuple[str, torch.Tensor]]]):
        self._it = iter(bucket_iter)
        self.num_bytes = 0

    def __iter__(self) -> "CountedBuckets":
        return self

    def __next__(self) -> list[tuple[str, torch.Tensor]]:
        bucket = next(self._it)
        self.num_bytes += sum(t.numel() * t.element_size() for _, t in bucket)
        return bucket
