"""``python -m oreal.train [overrides]``: the one entry point for every launch style.

In-process by default; with ``-m cluster=<name>`` Hydra's submitit launcher turns each sweep
point into a Slurm job. The config is converted to typed objects here, once.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from oreal.config.load import CONF_DIR, ConfigError, to_config
from oreal.config.store import register_configs

register_configs()


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
def main(dcfg: DictConfig) -> None:
    try:
        cfg = to_config(dcfg)
    except ConfigError as exc:
        print(f"oreal: invalid config: {exc}", file=sys.stderr)
        sys.exit(2)
    print(
        f"oreal: config for experiment {cfg.name!r} is valid (algo={cfg.algo.name}, model={cfg.model.name}).\n"
        "The trainer is not built yet (issue 7); nothing was trained.",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
