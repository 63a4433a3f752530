"""``python -m oreal.train [overrides]``: the one entry point for every launch style.

In-process by default; with ``-m cluster=<name>`` Hydra's submitit launcher turns each sweep
point into a Slurm job. The config is converted to typed objects here, once.
"""

from __future__ import annotations

import os
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
    from oreal.trainer import run

    status = run(cfg)
    print(f"oreal: {cfg.name} ({cfg.algo.name}, seed {cfg.seed}) {status}; run folder {cfg.run_dir}", file=sys.stderr)
    if status == "stopped" and "SUBMITIT_FOLDER" not in os.environ:
        # a plain sbatch script requeues on this code (oreal/launch/sbatch.py); under submitit,
        # submitit itself checkpoints and requeues
        from oreal.launch.sbatch import EXIT_STOPPED

        sys.exit(EXIT_STOPPED)


if __name__ == "__main__":
    main()
