"""``oreal config [OVERRIDES]``: compose, validate and print the resolved config as YAML."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Sequence

import yaml

from oreal.config.load import ConfigError, load_config


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="oreal config", description=__doc__)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=oreal_7b algo=grpo")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.overrides)
    except ConfigError as exc:
        print(f"oreal: invalid config: {exc}", file=sys.stderr)
        return 2
    print(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False), end="")
    return 0
