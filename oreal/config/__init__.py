"""Typed configuration: schema, Hydra registration, validation and loading."""

from oreal.config.load import CONF_DIR, ConfigError, compose, load_config, to_config
from oreal.config.schema import Config
from oreal.config.validate import validate

__all__ = ["CONF_DIR", "Config", "ConfigError", "compose", "load_config", "to_config", "validate"]
