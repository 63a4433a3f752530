"""Everything one run needs, built from the typed config: the run folder, the model (built
and warm-started when configured), engines, grader, tracker and checkpoints."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import Callable, Optional

import yaml

from oreal.config.schema import Config
from oreal.data.pipeline import PromptRenderer
from oreal.data.sources import write_jsonl
from oreal.engines.distributed import DistEnv
from oreal.engines.factory import build_policy_engine, build_rollout_engine
from oreal.engines.protocols import RolloutEngine
from oreal.reward import build_grader
from oreal.trainer.checkpoint import CheckpointManager
from oreal.trainer.ranks import SharedRollout, SpreadGrader, broadcast_from_main, grading_workers
from oreal.trainer.status import slurm_job
from oreal.trainer.tracking import Tracker, git_sha, redact

RUN_ID_FILE = "wandb_run_id"
FINAL_MODEL = "final_model"


def complete_model_folder(out: Path, source: str) -> None:
    """Add what an engine's weights lack to make ``out`` a loadable Hugging Face model folder:
    the tokenizer, chat template and generation settings of the model the run started from."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    if not (out / "config.json").exists():
        AutoConfig.from_pretrained(source).save_pretrained(out)
    try:
        GenerationConfig.from_pretrained(source).save_pretrained(out)
    except OSError:  # the source has no generation_config.json
        pass


def starting_model(cfg: Config, progress: bool = True) -> str:
    """The checkpoint RL starts from: the configured model (built locally for the tiny sizes),
    warm-started by SFT when ``trainer.sft.enabled``. Before the (long) warm start, the
    prompts must fit the model (a run's preflight checked it already; the other callers, a
    rollout task and ``oreal eval``, have not)."""
    from oreal.trainer.preflight import check_model_prompts

    if not cfg.model.build_locally:
        from oreal.engines.model_files import resolve_model_path

        path = resolve_model_path(cfg.model.path, cfg.cache_dir)
        check_model_prompts(cfg, path)
        return path
    from oreal.engines.tiny import ensure_tiny
    from oreal.trainer.sft import warm_start

    base = ensure_tiny(cfg.model, cfg.data.cpu_task)
    check_model_prompts(cfg, str(base))
    return str(warm_start(cfg, base, progress))


def run_id(run_dir: Path) -> str:
    """One id per run folder, kept across restarts so W&B continues the same run."""
    path = run_dir / RUN_ID_FILE
    if not path.exists():
        path.write_text(secrets.token_hex(4) + "\n")
    return path.read_text().strip()


def write_run_files(cfg: Config, run_dir: Path, model_path: str) -> dict:
    """The resolved config, git SHA and data fingerprints, next to the run's outputs."""
    from oreal.data.pipeline import content_hash
    from oreal.data.sources import load_source

    info = {"git_sha": git_sha(), "model_path": model_path, "host": socket.gethostname(),
            "slurm": {k: os.environ[v] for k, v in (("job_id", "SLURM_JOB_ID"), ("node", "SLURMD_NODENAME"),
                                                    ("restart", "SLURM_RESTART_COUNT")) if v in os.environ}
            | ({"job": slurm_job()} if slurm_job() else {}),
            "train_data_sha256": {name: content_hash(load_source(src, cfg.data.cpu_task)) for name, src in cfg.data.train.items()}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(redact(dataclasses.asdict(cfg)), sort_keys=False))
    (run_dir / "run_info.json").write_text(json.dumps(info, indent=2))
    return info


class RunComponents:
    """Everything one run needs on this rank. ``rollout_builder`` (called on rank 0 only)
    supplies a rollout engine built elsewhere (the fleet on the rollout nodes); otherwise rank
    0 builds the configured engine here. Either way every rank sees one shared engine
    (:class:`~oreal.trainer.ranks.SharedRollout`) and grades its share of the answers."""

    def __init__(self, cfg: Config, run_dir: Path, dist_env: DistEnv = DistEnv(),
                 rollout_builder: Optional[Callable[[], RolloutEngine]] = None):
        from transformers import AutoTokenizer

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.dist = dist_env
        progress = cfg.logging.progress_bars and dist_env.is_main
        self.model_path = starting_model(cfg, progress)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.render = PromptRenderer.from_config(self.tokenizer, cfg.data)
        self.policy = build_policy_engine(cfg, self.model_path, dist_env)
        engine = None
        if dist_env.is_main:
            engine = rollout_builder() if rollout_builder else build_rollout_engine(cfg, self.model_path)
        self.rollout = SharedRollout(engine, dist_env)
        workers = grading_workers(cfg.reward.num_workers, dist_env)
        self.grader = SpreadGrader(build_grader(dataclasses.replace(cfg.reward, num_workers=workers)), dist_env)
        self.checkpoints = CheckpointManager(self.run_dir, cfg.trainer.keep_last_checkpoints, dist_env)
        info = write_run_files(cfg, self.run_dir, self.model_path) if dist_env.is_main else {}
        self.run_id = broadcast_from_main(run_id(self.run_dir) if dist_env.is_main else None, dist_env)
        self.tracker = Tracker(cfg, self.run_dir, self.run_id, extra_config=info, enabled=dist_env.is_main)

    def resume(self, sampler) -> tuple[int, float]:
        """Restore the latest checkpoint of this run folder, if any (every rank reads its
        part); returns the step to start at and the training seconds already spent."""
        found = self.checkpoints.load_latest(self.policy.load)
        if found is None:  # a fresh start: rows an attempt left before its first checkpoint go
            if self.dist.is_main:
                self.tracker.log.truncate_after(-1)
            return 0, 0.0
        path, state = found
        if self.dist.is_main:
            print(f"oreal: resuming {self.run_dir} from step {state['step']} ({path.relative_to(self.run_dir)})",
                  file=sys.stderr, flush=True)
        sampler.load_state_dict(state["sampler"])
        self.rollout.update_weights(self.policy.export_weights(self.cfg.engine.sync_bucket_mb << 20))
        if self.dist.is_main:
            self.tracker.log.truncate_after(state["step"])
        return state["step"], state.get("elapsed_s", 0.0)

    def save_checkpoint(self, step: int, sampler, elapsed_s: float) -> None:
        """Collective: every rank writes its part of the engine state."""
        self.checkpoints.save(step, self.policy.save, {"sampler": sampler.state_dict(), "run_id": self.run_id,
                                                       "model_path": self.model_path, "elapsed_s": elapsed_s})

    def write_trajectories(self, step: int, samples) -> None:
        if self.cfg.trainer.save_trajectories and self.dist.is_main:
            write_jsonl(self.run_dir / "trajectories" / f"step_{step}.jsonl", samples.trajectory_rows(step))

    def progress(self, start: int):
        from tqdm import tqdm

        return tqdm(total=self.cfg.trainer.num_steps, initial=start, desc=f"{self.cfg.name} ({self.cfg.algo.name})",
                    unit="step", disable=not (self.cfg.logging.progress_bars and self.dist.is_main))

    def export_final_model(self) -> Optional[Path]:
        """The trained policy as a Hugging Face model folder (collective; rank 0 writes)."""
        if not self.cfg.trainer.export_final_model:
            return None
        out = self.run_dir / FINAL_MODEL
        self.policy.save_pretrained(str(out))
        if self.dist.is_main:
            complete_model_folder(out, self.model_path)
        return out

    def close(self, exit_code: int = 0) -> None:
        self.tracker.finish(exit_code)
        self.grader.close()
        self.rollout.close()
