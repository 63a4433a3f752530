"""``oreal init-tiny [OVERRIDES] [--force]``: build the configured tiny model locally.

    oreal init-tiny                    # model=tiny at its configured path
    oreal init-tiny model=tiny_30m     # the ~30M-parameter size
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from oreal.config.load import ConfigError, load_config


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="oreal init-tiny", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=tiny_30m")
    parser.add_argument("--force", action="store_true", help="rebuild even if an up-to-date model is there")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.overrides)
    except ConfigError as exc:
        print(f"oreal: invalid config: {exc}", file=sys.stderr)
        return 2
    if not cfg.model.build_locally:
        print(f"oreal init-tiny: model={cfg.model.name} is loaded from {cfg.model.path!r}, not built locally", file=sys.stderr)
        return 2
    from oreal.engines.tiny import build_tiny, ensure_tiny, num_parameters

    path = build_tiny(cfg.model, cfg.data.cpu_task, cfg.model.path) if args.force else ensure_tiny(cfg.model, cfg.data.cpu_task)
    print(f"{cfg.model.name}: {num_parameters(path):,} parameters -> {path}")
    return 0
