"""``python -m oreal.train [overrides]``: the one entry point for every launch style.

In-process by default; with ``-m cluster=<name>`` Hydra's submitit launcher turns each sweep
point into a Slurm job, and every task of it runs :func:`oreal.launch.task.run_task`. The
config is converted to typed objects here, once.

Exit status, so that Slurm (``sacct``, requeue, ``afterok``) and shells see what happened:
0 finished (or requeued), 75 stopped by a signal and not requeued (resume me), 2 invalid
config, 1 failed. An expected failure prints one line (``oreal: ...``; ``HYDRA_FULL_ERROR=1``
adds its traceback); anything else keeps its traceback. In a local sweep (``-m`` without a cluster) a failed point is left to Hydra,
which runs the other points and reports the failure at the end.
"""

from __future__ import annotations

import os
import sys
import traceback

import hydra
from omegaconf import DictConfig

from oreal.config.load import CONF_DIR, ConfigError, load_config, to_config
from oreal.config.store import register_configs
from oreal.errors import OrealError
from oreal.trainer.signals import receive_stop_signals

register_configs()
EXIT_FAILED, EXIT_CONFIG = 1, 2


def _local_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from oreal.launch.task import in_slurm_job

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN and not in_slurm_job()


def _fail(code: int, exc: BaseException) -> None:
    if _local_sweep():
        raise exc
    sys.exit(code)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
def main(dcfg: DictConfig) -> None:
    receive_stop_signals()  # before any thread or child exists (oreal/trainer/signals.py)
    try:
        cfg = to_config(dcfg)
    except ConfigError as exc:
        print(f"oreal: invalid config: {exc}", file=sys.stderr)
        _fail(EXIT_CONFIG, exc)
    from oreal.launch.task import EXIT_STOPPED, run_task

    try:
        outcome = run_task(cfg, _command_line())
    except OrealError as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            traceback.print_exc()
        print(f"oreal: {exc}", file=sys.stderr, flush=True)
        _fail(EXIT_FAILED, exc)
    except Exception as exc:
        traceback.print_exc()
        print(f"oreal: {cfg.name} ({cfg.algo.name}, seed {cfg.seed}) failed; run folder {cfg.run_dir}", file=sys.stderr)
        _fail(EXIT_FAILED, exc)
    if outcome in ("idle", "served") or not _is_main_rank():
        # only trainer rank 0 reports, and exits "stopped": with `srun --kill-on-bad-exit`, a
        # non-zero exit of another rank would kill rank 0 before it has requeued the job
        return
    print(f"oreal: {cfg.name} ({cfg.algo.name}, seed {cfg.seed}) {outcome}; run folder {cfg.run_dir}", file=sys.stderr)
    if outcome == "stopped":
        sys.exit(EXIT_STOPPED)


def _command_line() -> list[str]:
    """This run's (or sweep point's) overrides, as Hydra parsed them."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


HYDRA_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--resolve", "--package", "-p",
               "--shell-completion", "-sc", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
               "--version", "--run", "-r")


def validate_command_line(argv: list[str]) -> int:
    """Every run (every point of a ``-m`` sweep) composed and validated before Hydra starts
    anything: a bad value is one line naming the field, and no bad sweep point reaches a
    cluster; a single run's folder must be writable. Returns the exit status (0: all valid)."""
    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if a not in ("-m", "--multirun")]
    if any(a.split("=")[0] in HYDRA_FLAGS for a in overrides):
        return 0  # Hydra's own modes (help, printing the config) stay Hydra's
    from oreal.launch.submit import sweep_points

    try:
        points = sweep_points(overrides) if multirun else [overrides]
    except Exception as exc:  # noqa: BLE001 - Hydra's parser errors have no common base class
        print(f"oreal: invalid override: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_CONFIG
    bad = 0
    for point in points:
        try:
            cfg = load_config(point)
        except ConfigError as exc:
            bad += 1
            where = f" (sweep point {' '.join(point)})" if multirun else ""
            print(f"oreal: invalid config{where}: {exc}", file=sys.stderr)
    if bad:
        return EXIT_CONFIG
    return 0 if multirun else _run_dir_writable(cfg.run_dir)


def _run_dir_writable(run_dir: str) -> int:
    """Hydra creates the run folder before any of our code runs, and a folder it cannot create
    ends in its traceback: the preflight's check, made first."""
    from pathlib import Path

    from oreal.trainer.preflight import PreflightError, check_writable

    try:
        check_writable(Path(run_dir))
    except PreflightError as exc:
        print(f"oreal: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    if status := validate_command_line(sys.argv[1:]):
        sys.exit(status)
    main()
