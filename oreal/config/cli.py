"""``oreal config [OVERRIDES]``: compose, validate and print the resolved config as YAML, then
run the checks a run makes before it builds anything (oreal/trainer/preflight.py: run folder,
data sources, model path, prompts against the model's context with its tokenizer, judge), each
failure one line and exit status 1; ``--no-checks`` skips them."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Sequence

import yaml

from oreal.config.load import ConfigError, load_config


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="oreal config", description=__doc__)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=oreal_7b algo=grpo")
    parser.add_argument("--no-checks", action="store_true", help="only compose and validate the config")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.overrides)
    except ConfigError as exc:
        print(f"oreal: invalid config: {exc}", file=sys.stderr)
        return 2
    print(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False), end="")
    if not args.no_checks:
        from oreal.errors import OrealError
        from oreal.trainer.preflight import preflight

        try:
            preflight(cfg, Path(cfg.run_dir))
        except OrealError as exc:  # a PreflightError, or the ModelPathError of a model that cannot be found
            print(f"oreal: {exc}", file=sys.stderr)
            return 1
    return 0
