"""Composition and the one conversion from Hydra's DictConfig to the typed :class:`Config`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from oreal.config.schema import Config
from oreal.config.store import register_configs
from oreal.config.validate import validate
from oreal.errors import OrealError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


class ConfigError(OrealError, ValueError):
    """A config that does not compose or does not validate; the message is one line."""


def _one_line(exc: BaseException) -> str:
    """One line for an exception chain: the first error that names a config key, as
    ``key: message``; otherwise the outermost message with its lines joined."""
    outer = exc
    while exc is not None:
        key = getattr(exc, "full_key", None)
        if isinstance(exc, OmegaConfBaseException) and key:
            return f"{key}: {str(exc).strip().splitlines()[0]}"
        exc = exc.__cause__ or exc.__context__
    lines = [line.strip() for line in str(outer).strip().splitlines() if line.strip()]
    return "; ".join(lines) or type(outer).__name__


def to_config(dcfg: DictConfig) -> Config:
    """Resolve interpolations, convert to dataclasses and run the cross-field checks."""
    try:
        cfg = OmegaConf.to_object(dcfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(_one_line(exc)) from exc
    if not isinstance(cfg, Config):
        raise ConfigError(f"expected the oreal schema at the config root, got {type(cfg).__name__}")
    _reject_unknown_keys(cfg, "")
    try:
        return validate(cfg)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _reject_unknown_keys(obj: Any, prefix: str) -> None:
    """Hydra lets ``+key=value`` add keys even to a typed node; the schema does not."""
    if dataclasses.is_dataclass(obj):
        known = {f.name for f in dataclasses.fields(obj)}
        for key in vars(obj):
            if key not in known:
                raise ConfigError(f"{prefix}{key}: not a field of {type(obj).__name__}; remove the '+{prefix}{key}' override")
            _reject_unknown_keys(getattr(obj, key), f"{prefix}{key}.")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _reject_unknown_keys(value, f"{prefix}{key}.")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            _reject_unknown_keys(value, f"{prefix}{i}.")


def compose(overrides: Sequence[str] = (), config_name: str = "config", conf_dir: Optional[Path] = None) -> DictConfig:
    """Compose outside a Hydra app (tests, `oreal config`). Errors become :class:`ConfigError`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf import open_dict

    register_configs()
    try:
        with initialize_config_dir(str(conf_dir or CONF_DIR), version_base=None):
            cfg = hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)
        # `${hydra:...}` interpolations (a Slurm cluster's run_dir) resolve as in a Hydra app
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_one_line(exc)) from exc


def load_config(overrides: Sequence[str] = (), config_name: str = "config") -> Config:
    return to_config(compose(overrides, config_name))
