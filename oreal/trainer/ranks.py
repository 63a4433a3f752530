"""Work shared or spread over the trainer ranks of a data/tensor/pipeline parallel job.

* :class:`SharedRollout`: one rollout engine (a local one or the remote fleet) held by rank
  0; every rank gets the same responses, and an engine failure reaches every rank as the
  same :class:`RolloutEngineError`, so all of them checkpoint together and stop.
* :class:`SpreadGrader`: each rank grades its share of the answers with its own worker
  pool (sized to the rank's CPUs, not the host's); every rank gets every grade.
* :func:`any_rank`: a flag that is true when it is true on any rank (stop requests).

With one process every helper reduces to the plain call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch
import torch.distributed as dist

from oreal.engines.distributed import DistEnv
from oreal.engines.protocols import RolloutEngine, RolloutGroup, SamplingSettings
from oreal.errors import RolloutEngineError
from oreal.reward.grader import Grader
from oreal.reward.pool import Grade, reason_rates


def broadcast_from_main(value: Any, env: DistEnv) -> Any:
    if not env.is_distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_all(value: Any, env: DistEnv) -> list[Any]:
    if not env.is_distributed:
        return [value]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, value)
    return out


def any_rank(flag: bool, env: DistEnv) -> bool:
    if not env.is_distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def grading_workers(configured: int, env: DistEnv) -> int:
    """Grading processes for this rank: the configured number, else this rank's share of the
    node's cores (Slurm's ``--cpus-per-task`` when set)."""
    if configured:
        return configured
    if os.environ.get("SLURM_CPUS_PER_TASK"):
        return max(1, int(os.environ["SLURM_CPUS_PER_TASK"]))
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if env.is_distributed else 1
    return max(1, (os.cpu_count() or 1) // per_node)


class SharedRollout:
    def __init__(self, engine: Optional[RolloutEngine], env: DistEnv):
        self.engine, self.env = engine, env

    def _on_main(self, call) -> Any:
        """``call()`` on rank 0, its result (or its engine error) on every rank."""
        result, error = None, None
        if self.env.is_main:
            try:
                result = call()
            except RolloutEngineError as exc:
                error = str(exc)
        result, error = broadcast_from_main((result, error), self.env)
        if error:
            raise RolloutEngineError(error)
        return result

    def generate(self, prompts: Sequence[list[int]], n: int, sampling: SamplingSettings) -> list[RolloutGroup]:
        return self._on_main(lambda: self.engine.generate(prompts, n, sampling))

    def update_weights(self, buckets: Iterator[list[tuple[str, torch.Tensor]]]) -> None:
        """Every rank runs the export (it may gather across ranks); rank 0 forwards it. If the
        engine fails part-way, the rest of the export still runs, so no rank is left waiting
        in a gather."""
        def forward():
            try:
                self.engine.update_weights(buckets)
            finally:
                for _ in buckets:
                    pass

        if not self.env.is_main:
            for _ in buckets:
                pass
        self._on_main(forward)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()


class SpreadGrader:
    def __init__(self, grader: Grader, env: DistEnv):
        self.grader, self.env = grader, env

    def grade_batch(self, responses: Sequence[str], golds: Sequence[str], *,
                    finish_reasons: Optional[Sequence[Optional[str]]] = None, problems: Optional[Sequence[str]] = None,
                    progress: Optional[str] = None) -> list[Grade]:
        n, rank, world = len(responses), self.env.rank, self.env.world_size
        mine = list(range(rank, n, world))
        pick = lambda xs: None if xs is None else [xs[i] for i in mine]  # noqa: E731
        grades = self.grader.grade_batch(pick(list(responses)), pick(list(golds)), finish_reasons=pick(finish_reasons),
                                         problems=pick(problems), progress=progress if self.env.is_main else None)
        out: list[Optional[Grade]] = [None] * n
        for r, part in enumerate(gather_to_all(grades, self.env)):
            for i, g in zip(range(r, n, world), part):
                out[i] = g
        return out  # type: ignore[return-value]

    def stats(self, reset: bool = False) -> dict[str, float]:
        """Counts summed over ranks, rates from the sums, latency percentiles the worst rank's."""
        parts = gather_to_all(self.grader.stats(reset), self.env)
        out: dict[str, float] = {}
        for part in parts:
            for k, v in part.items():
                out[k] = max(out.get(k, 0.0), v) if k.startswith("perf/") else out.get(k, 0.0) + v
        return out | reason_rates(out)

    def close(self) -> None:
        self.grader.close()


def check_shared_folder(run_dir: Path, env: DistEnv, wait_s: float = 10.0) -> None:
    """Every trainer rank must see the same run folder (checkpoints are written by all of
    them, read by all of them): each writes a marker there, and each looks for all markers."""
    if not env.is_distributed:
        return
    import socket
    import time

    from oreal.errors import OrealError
    from oreal.trainer.status import incarnation

    inc = incarnation()
    folder = Path(run_dir) / ".ranks" / f"{inc['job_id']}.{inc['restart']}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(env.rank)).write_text(socket.gethostname())
    dist.barrier()
    deadline = time.monotonic() + wait_s
    while (missing := [r for r in range(env.world_size) if not (folder / str(r)).exists()]) and time.monotonic() < deadline:
        time.sleep(0.5)
    unseen = gather_to_all((socket.gethostname(), missing), env)
    blind = [(r, host, m) for r, (host, m) in enumerate(unseen) if m]
    if blind:
        rank, host, missing = blind[0]
        raise OrealError(f"run_dir={run_dir} is not one folder for all trainer ranks: rank {rank} on {host} cannot see the "
                         f"files of ranks {missing}; put the run folder (hydra.sweep.dir / run_dir) on a file system every "
                         "node shares")
