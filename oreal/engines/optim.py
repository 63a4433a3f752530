"""AdamW with linear warm-up and cosine decay, shared by every policy engine."""

from __future__ import annotations

import math
import warnings
from typing import Iterable

import torch

from oreal.config.schema import OptimConfig


def lr_factor(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """Multiplier of ``cfg.lr`` at optimisation step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` (the reference starts at 0, which wastes its
    first step), then cosine from ``lr`` to ``min_lr`` over the remaining steps.
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    decay_steps = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps)
    floor = cfg.min_lr / cfg.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig, total_steps: int):
    """``(AdamW, LambdaLR)``; call ``scheduler.step()`` once per RL step."""
    opt = torch.optim.AdamW(list(params), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, cfg, total_steps))
    return opt, sched


def load_schedule(sched: torch.optim.lr_scheduler.LambdaLR, state: dict) -> None:
    """Restore a schedule's position (load the optimiser first). The learning rate in use is then
    recomputed from *this* run's schedule at that position, not taken from the checkpoint: a run
    extended with a larger ``trainer.num_steps`` decays over its new length from its first resumed
    step on, exactly as a run started with that length (with an unchanged length it is the same
    value the checkpoint holds)."""
    sched.load_state_dict(state)
    lrs = [base * factor(sched.last_epoch) for base, factor in zip(sched.base_lrs, sched.lr_lambdas)]
    for group, lr in zip(sched.optimizer.param_groups, lrs):
        group["lr"] = lr
    sched._last_lr = lrs


def advance_schedule(sched: torch.optim.lr_scheduler.LRScheduler, updated: bool = True, waits: bool = False) -> None:
    """One RL step of the schedule, at the end of a step that ``updated`` the model or not. A
    frozen policy's schedule still advances (as in the reference), before its optimiser ever
    stepped (torch's warning about that order is noise), unless it ``waits`` for its first
    update (``algo.schedule_after_freeze``)."""
    if waits and not updated:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
        sched.step()
