"""The data / tensor / pipeline parallel layout of one job, from one function."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from oreal.engines.megatron import cpu_shims


@dataclass(frozen=True)
class Layout:
    """Where this rank sits. ``world = tp * pp * dp``."""

    tp: int
    pp: int
    dp: int
    tp_rank: int
    pp_rank: int
    dp_rank: int
    rank: int

    @property
    def is_first_stage(self) -> bool:
        return self.pp_rank == 0

    @property
    def is_last_stage(self) -> bool:
        return self.pp_rank == self.pp - 1


def init_parallel(tensor_parallel: int, pipeline_parallel: int, seed: int) -> Layout:
    """Join (or start) the process group, build Megatron's parallel groups and seed its RNG
    tracker. Fails with the reason when the world size does not divide."""
    from megatron.core import parallel_state as ps
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    if not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29533")
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, rank=int(os.environ.get("RANK", "0")),
                                world_size=int(os.environ.get("WORLD_SIZE", "1")), timeout=datetime.timedelta(minutes=10))
    world = dist.get_world_size()
    if world % (tensor_parallel * pipeline_parallel):
        raise ValueError(f"world size {world} is not divisible by engine.tensor_parallel_size * "
                         f"engine.pipeline_parallel_size = {tensor_parallel} * {pipeline_parallel}")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if ps.model_parallel_is_initialized():
        ps.destroy_model_parallel()
    ps.initialize_model_parallel(tensor_model_parallel_size=tensor_parallel, pipeline_model_parallel_size=pipeline_parallel)
    if torch.cuda.is_available():
        model_parallel_cuda_manual_seed(seed)
    else:
        cpu_shims.apply()
        cpu_shims.seed_model_parallel_rng(seed)
    return Layout(tp=tensor_parallel, pp=pipeline_parallel, dp=ps.get_data_parallel_world_size(),
                  tp_rank=ps.get_tensor_model_parallel_rank(), pp_rank=ps.get_pipeline_model_parallel_rank(),
                  dp_rank=ps.get_data_parallel_rank(), rank=dist.get_rank())
