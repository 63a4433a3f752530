"""What a run is: the part of its config that shapes its results, recorded in its folder.

A run folder holds ``identity.json``: the config fields that decide what the run computes
(algorithm, model, training data and prompts, sampling, reward, batch sizes, optimisers, warm
start, seed). A resume compares the config it was given with that record and refuses, before
anything loads, a run that would silently mix two configurations: another variant resuming
this one's checkpoint, a changed learning rate that the restored optimiser would ignore. Fields
that do not change results are not part of it: logging, evaluation and checkpoint cadence, the
parallel layout and micro-batching (equal results up to float rounding), the cluster, timeouts,
and ``trainer.num_steps`` (a finished run may be extended).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from oreal.config.schema import Config
from oreal.errors import OrealError
from oreal.trainer.atomic import write_atomic

IDENTITY_FILE = "identity.json"
OVERRIDES_FILE = "overrides.yaml"
SHAPES_RESULTS = (
    "seed", "algo.", "model.", "data.train.", "data.system_prompt", "data.chat_template", "data.max_prompt_tokens",
    "data.difficulty_balance", "data.pass_rate_bands", "data.cpu_task.", "data.skill_replay.",
    "rollout.temperature", "rollout.top_p", "rollout.top_k", "rollout.max_new_tokens", "rollout.stop",
    "reward.thinking_markers", "reward.judge.enabled", "reward.judge.model",
    "trainer.num_prompts_per_step", "trainer.num_samples_per_prompt", "trainer.policy_optim.", "trainer.token_rm_optim.",
    "trainer.sft.",
)
NOT_IDENTITY = ("model.build_locally", "model.published_num_params")
SHOWN_DIFFERENCES = 4


class RunIdentityError(OrealError):
    """The run folder holds a run of another configuration."""


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: list(value) if isinstance(value, tuple) else value}


def identity(cfg: Config) -> dict[str, Any]:
    """The result-shaping fields of ``cfg``, flat and JSON-ready."""
    flat = _flat(json.loads(json.dumps(dataclasses.asdict(cfg), default=str)))
    return {k: v for k, v in sorted(flat.items()) if k.startswith(SHAPES_RESULTS) and not k.startswith(NOT_IDENTITY)}


def field_defaults(cfg: Config) -> dict[str, Any]:
    """The schema default of every field of :func:`identity` that has one (JSON-ready, as there)."""
    out: dict[str, Any] = {}
    for key in identity(cfg):
        *path, name = key.split(".")
        owner: Any = cfg
        for part in path:
            owner = owner.get(part) if isinstance(owner, dict) else getattr(owner, part, None)
        fields = {f.name: f for f in dataclasses.fields(owner)} if dataclasses.is_dataclass(owner) else {}
        field = fields.get(name)
        if field is None or (field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING):
            continue
        value = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        out[key] = json.loads(json.dumps(list(value) if isinstance(value, tuple) else value, default=str))  # as identity()
    return out


def differences(recorded: dict[str, Any], current: dict[str, Any], defaults: Optional[dict[str, Any]] = None) -> list[str]:
    """``field: recorded -> current`` for every field that differs; another loss variant is
    one line (``algo.name``), not the list of fields in which the variants' configs differ.
    A field the record lacks (a run from before oreal had it) does not differ when its current
    value is its default in ``defaults``: a new field's default keeps the old behaviour."""
    missing = object()
    defaults = defaults or {}
    keys = [k for k in sorted(set(recorded) | set(current)) if recorded.get(k, missing) != current.get(k, missing)
            and not (k not in recorded and k in defaults and current.get(k, missing) == defaults[k])]
    if "algo.name" in keys:
        keys = ["algo.name"] + [k for k in keys if not k.startswith("algo.")]
    return [f"{k}: {recorded.get(k, '(unset)')!r} -> {current.get(k, '(unset)')!r}" for k in keys]


def check_identity(cfg: Config, run_dir: Path) -> None:
    """Refuse to continue a run folder that holds a run of another configuration, unless
    ``trainer.resume_despite_changes`` says so (then the new values become the record). A folder
    whose run never checkpointed has nothing to continue: a new config takes it over."""
    path = Path(run_dir) / IDENTITY_FILE
    if not path.exists() or not (Path(run_dir) / "checkpoints" / "latest").exists():
        return
    diffs = differences(json.loads(path.read_text()), identity(cfg), field_defaults(cfg))
    if not diffs or cfg.trainer.resume_despite_changes:
        return
    shown = "; ".join(diffs[:SHOWN_DIFFERENCES]) + (f"; and {len(diffs) - SHOWN_DIFFERENCES} more" if len(diffs) > SHOWN_DIFFERENCES else "")
    raise RunIdentityError(
        f"run folder {run_dir} holds a run of another config ({shown}): start a new run in another folder "
        "(run_dir=...), or continue this one with the new values (trainer.resume_despite_changes=true)")


def record_identity(cfg: Config, run_dir: Path, overrides: Optional[Sequence[str]] = None) -> None:
    """``identity.json``, and ``overrides.yaml`` (the command-line overrides the run was
    started with, which ``oreal compare`` and ``oreal export`` read) when given."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    files = {IDENTITY_FILE: json.dumps(identity(cfg), indent=1) + "\n"}
    if overrides is not None:
        files[OVERRIDES_FILE] = yaml.safe_dump(list(overrides))
    for name, text in files.items():
        write_atomic(run_dir / name, text)


def recorded_overrides(run_dir: Path) -> Optional[list[str]]:
    """The overrides a run was started with (None: not recorded; runs before ``overrides.yaml``
    have Hydra's ``hydra/overrides.yaml``)."""
    for path in (Path(run_dir) / OVERRIDES_FILE, Path(run_dir) / "hydra" / "overrides.yaml"):
        if path.exists():
            return [str(o) for o in yaml.safe_load(path.read_text()) or []]
    return None
