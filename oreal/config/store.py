"""Registers the schema with Hydra's ConfigStore so that YAML values are type-checked on
composition and unknown keys fail."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from oreal.algo.variants import LOSS_VARIANTS
from oreal.config.schema import Config

_registered = False


def register_configs() -> None:
    """Idempotent. ``conf/config.yaml`` starts its defaults list with ``oreal_schema``; each
    ``conf/algo/<variant>.yaml`` starts with ``<variant>_schema``."""
    global _registered
    if _registered:
        return
    cs = ConfigStore.instance()
    cs.store(name="oreal_schema", node=Config)
    for name, variant in LOSS_VARIANTS.items():
        cs.store(group="algo", name=f"{name}_schema", node=variant.config_cls)
    _registered = True
