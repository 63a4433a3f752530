"""What megatron-core 0.16 needs to run on a CPU-only torch (gloo), applied only without CUDA.

Megatron assumes CUDA in four places this project reaches: the model-parallel RNG tracker
(attention forks it every forward), ``torch.cuda.current_device`` / ``synchronize`` /
``current_stream`` calls, the ``device="cuda"`` literal in the pipeline schedule, and the
default causal mask (built on ``cuda``; the engine always passes its own mask instead).
Nothing here changes numerics: the shims only move allocations to the CPU.
"""

from __future__ import annotations

import contextlib

import torch

_APPLIED = False


def _tracker_class():
    from megatron.core.tensor_parallel import random as mrandom

    class CPURNGStatesTracker(mrandom.CudaRNGStatesTracker):
        """Megatron's RNG tracker API over CPU generator states."""

        def add(self, name, seed):
            self._is_initialized = True
            if seed in self.seeds_ or name in self.states_:
                raise RuntimeError(f"RNG state {name!r} (seed {seed}) already exists")
            self.seeds_.add(seed)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.states_[name] = torch.get_rng_state()

        @contextlib.contextmanager
        def fork(self, name=mrandom._MODEL_PARALLEL_RNG_TRACKER_NAME):
            if name not in self.states_:
                raise RuntimeError(f"RNG state {name!r} was never added")
            outer = torch.get_rng_state()
            torch.set_rng_state(self.states_[name])
            try:
                yield
            finally:
                self.states_[name] = torch.get_rng_state()
                torch.set_rng_state(outer)

    return CPURNGStatesTracker


def seed_model_parallel_rng(seed: int) -> None:
    """CPU counterpart of ``megatron.core.tensor_parallel.model_parallel_cuda_manual_seed``
    (same seed offsets per tensor-parallel rank)."""
    from megatron.core import parallel_state as ps
    from megatron.core.tensor_parallel import random as mrandom

    torch.manual_seed(seed)
    tracker = _tracker_class()()
    tracker.add(mrandom._DATA_PARALLEL_RNG_TRACKER_NAME, seed)
    tracker.add(mrandom._MODEL_PARALLEL_RNG_TRACKER_NAME, seed + 2718 + ps.get_tensor_model_parallel_rank())
    tracker.add(mrandom._EXPERT_PARALLEL_RNG_TRACKER_NAME,
                seed + 1024 + 100 * ps.get_expert_model_parallel_rank() + ps.get_expert_tensor_parallel_rank())
    mrandom._CUDA_RNG_STATE_TRACKER = tracker
    mrandom._CUDA_RNG_STATE_TRACKER_INITIALIZED = True


class _CpuTorch:
    """Stands in for ``torch`` inside one Megatron module: tensor factories asked for
    ``device="cuda"`` allocate on the CPU; everything else is torch itself."""

    _FACTORIES = frozenset({"zeros", "ones", "empty", "full", "tensor", "arange"})

    def __getattr__(self, name):
        attr = getattr(torch, name)
        if name not in self._FACTORIES:
            return attr

        def factory(*args, device=None, **kwargs):
            if device is not None and torch.device(device).type == "cuda":
                device = "cpu"
            return attr(*args, device=device, **kwargs)

        return factory


class _NullStream:
    def wait_event(self, *a, **k): ...
    def wait_stream(self, *a, **k): ...
    def synchronize(self): ...
    def record_event(self, *a, **k): return None


def apply() -> None:
    """Idempotent; a no-op when CUDA is available."""
    global _APPLIED
    if _APPLIED or torch.cuda.is_available():
        return
    from megatron.core.pipeline_parallel import schedules

    torch.cuda.current_device = lambda: torch.device("cpu")
    torch.cuda.synchronize = lambda *a, **k: None
    torch.cuda.current_stream = lambda *a, **k: _NullStream()
    schedules.torch = _CpuTorch()
    _APPLIED = True
