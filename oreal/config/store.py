"""Registers the schema with Hydra's ConfigStore so that YAML values are type-checked on
composition and unknown keys fail."""

from __future__ import annotations

import hashlib

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from oreal.algo.variants import LOSS_VARIANTS
from oreal.config.schema import Config, tasks_per_node

_registered = False


def run_folder_name(overrides: str, limit: int = 120) -> str:
    """A sweep point's folder name from its overrides (``algo=grpo,seed=1``): readable, and
    cut to ``limit`` characters plus a hash of the whole when longer (file names stop at 255)."""
    name = overrides.replace("/", "_") or "default"
    if len(name) <= limit:
        return name
    return f"{name[:limit - 11]}-{hashlib.sha1(name.encode()).hexdigest()[:10]}"


def run_dir_for_mode(mode: object, single: str, sweep_point: str) -> str:
    """``run_dir`` of the root config: a sweep point's own folder under ``-m``, else ``single``."""
    return sweep_point if str(mode).endswith("MULTIRUN") else single


def register_configs() -> None:
    """Idempotent. ``conf/config.yaml`` starts its defaults list with ``oreal_schema``; each
    ``conf/algo/<variant>.yaml`` starts with ``<variant>_schema``."""
    global _registered
    if _registered:
        return
    cs = ConfigStore.instance()
    cs.store(name="oreal_schema", node=Config)
    if not OmegaConf.has_resolver("run_folder_name"):
        OmegaConf.register_new_resolver("run_folder_name", run_folder_name)
    if not OmegaConf.has_resolver("run_dir_for_mode"):
        OmegaConf.register_new_resolver("run_dir_for_mode", run_dir_for_mode)
    if not OmegaConf.has_resolver("tasks_per_node"):
        OmegaConf.register_new_resolver("tasks_per_node", tasks_per_node)
    for name, variant in LOSS_VARIANTS.items():
        cs.store(group="algo", name=f"{name}_schema", node=variant.config_cls)
    _registered = True
