"""``oreal export RUN_OR_CHECKPOINT OUT``: what a run trained, as a Hugging Face model folder.

    oreal export runs/default_cpu/seed0 exported/        # the run's latest checkpoint
    oreal export runs/default_cpu/seed0/checkpoints/step_000120 exported/

Checkpoints hold engine state (the torch engine's state dict, or the Megatron engine's shards
at whatever layout wrote them); this rebuilds the run's policy engine in one process from the
run's own config, loads the checkpoint, and writes safetensors weights, the config, the
tokenizer and the generation settings of the model the run started from. A finished run has
already done this: ``<run folder>/final_model``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from oreal.config.schema import Config
from oreal.errors import OrealError


class ExportError(OrealError):
    pass


def run_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides the run was started with (recorded in its folder)."""
    from oreal.trainer.identity import recorded_overrides

    overrides = recorded_overrides(run_dir)
    if overrides is None:
        raise ExportError(f"{run_dir} has no overrides.yaml: not a run folder written by `python -m oreal.train`")
    return [o for o in overrides if not o.startswith(("hydra.", "run_dir="))]


def find_checkpoint(path: Path) -> tuple[Path, Path]:
    """``(run folder, checkpoint folder)`` for a run folder (its latest loadable checkpoint's
    candidate) or a checkpoint folder."""
    from oreal.trainer.checkpoint import CheckpointManager

    path = Path(path)
    if (path / "trainer.json").exists():
        return path.parent.parent, path
    candidates = CheckpointManager(path).candidates()
    if not candidates:
        raise ExportError(f"{path}: no checkpoint (neither a checkpoint folder with trainer.json nor a run folder with "
                          "checkpoints/)")
    return path, candidates[0]


def export_checkpoint(checkpoint: Path, out: Path, cfg: Config) -> Path:
    """Load ``checkpoint`` into the run's policy engine (one process, no tensor or pipeline
    split) and write the policy as a Hugging Face model folder at ``out``."""
    import dataclasses

    from oreal.engines.distributed import DistEnv
    from oreal.engines.factory import build_policy_engine
    from oreal.trainer.setup import complete_model_folder

    model_path = json.loads((checkpoint / "trainer.json").read_text())["model_path"]
    one_process = dataclasses.replace(cfg, engine=dataclasses.replace(cfg.engine, tensor_parallel_size=1,
                                                                      pipeline_parallel_size=1))
    engine = build_policy_engine(one_process, model_path, DistEnv())
    engine.load(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    engine.save_pretrained(str(out))
    complete_model_folder(out, model_path)
    return out


def model_folder(path: Path, overrides: Sequence[str] = ()) -> tuple[Path, list[str]]:
    """A Hugging Face model folder for ``path`` (an HF folder, a run folder, or a checkpoint),
    exporting a checkpoint when needed, and the overrides of the run it came from (so an
    evaluation uses the run's own settings)."""
    from oreal.config.load import load_config

    path = Path(path)
    if (path / "config.json").exists():
        return path, []
    run_dir, checkpoint = find_checkpoint(path)
    base = run_overrides(run_dir)
    final = run_dir / "final_model"
    if checkpoint == path or not (final / "config.json").exists():
        target = checkpoint / "hf"
        if not (target / "config.json").exists():
            export_checkpoint(checkpoint, target, load_config([*base, *overrides]))
        return target, base
    return final, base


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="oreal export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="a run folder (its latest checkpoint) or a checkpoint folder")
    ap.add_argument("out", type=Path, help="the Hugging Face model folder to write")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides on top of the run's own (rarely needed)")
    args = ap.parse_args(argv)
    from oreal.config.load import load_config

    try:
        run_dir, checkpoint = find_checkpoint(args.source)
        cfg = load_config([*run_overrides(run_dir), *args.overrides])
        out = export_checkpoint(checkpoint, args.out, cfg)
    except OrealError as exc:
        print(f"oreal export: {exc}", file=sys.stderr)
        return 2
    print(f"exported {checkpoint} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
