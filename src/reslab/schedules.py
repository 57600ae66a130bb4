"""Learning-rate schedules as pure functions of the iteration.

The training loop owns the step counter and writes ``group["lr"] = schedule(step)``. Two schedules
need feedback from training and so carry a little state, kept in the checkpoint: reduce-on-plateau
(validation loss) and He et al.'s ResNet-110 warm-up (hold a small rate until the training error
falls below a threshold, then start the main schedule).

References:
    He et al. 2016 (multistep /10 at 32k and 48k; 0.01 warm-up for ResNet-110).
    Smith & Topin 2019, Super-Convergence (one-cycle). Loshchilov & Hutter 2017, SGDR (cosine).
    Goyal et al. 2017, Accurate, Large Minibatch SGD (linear warm-up).
"""

from __future__ import annotations

import bisect
import math
from functools import partial
from typing import Any, Callable, Sequence

from reslab.registry import Registry

Schedule = Callable[[int], float]


def constant(step: int, *, base_lr: float) -> float:
    return base_lr


def step_decay(step: int, *, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """base_lr * gamma^floor(step / step_size)."""
    return base_lr * gamma ** (step // step_size)


def multistep(step: int, *, base_lr: float, milestones: Sequence[int], gamma: float = 0.1) -> float:
    """base_lr * gamma^(number of milestones <= step): the paper's /10 at 32k and 48k iterations."""
    return base_lr * gamma ** bisect.bisect_right(sorted(milestones), step)


def exponential(step: int, *, base_lr: float, gamma: float) -> float:
    """base_lr * gamma^step (gamma per iteration)."""
    return base_lr * gamma ** step


def cosine(step: int, *, base_lr: float, total_steps: int, min_lr: float = 0.0) -> float:
    """Half a cosine from base_lr at step 0 to min_lr at total_steps (and after)."""
    t = min(step, total_steps) / max(1, total_steps)
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * t))


def onecycle(step: int, *, base_lr: float, total_steps: int, pct_start: float = 0.25, min_lr: float = 0.0,
             start_div: float = 25.0) -> float:
    """Linear rise from base_lr/start_div to base_lr over pct_start of the run, then linear fall to min_lr."""
    peak = max(1, round(pct_start * total_steps))
    start = base_lr / start_div
    if step < peak:
        return start + (base_lr - start) * step / peak
    t = min(1.0, (step - peak) / max(1, total_steps - peak))
    return base_lr + (min_lr - base_lr) * t


def with_warmup(schedule: Schedule, step: int, *, warmup_steps: int, warmup_lr: float) -> float:
    """Linear warm-up from warmup_lr to schedule(warmup_steps), then the schedule itself."""
    if step >= warmup_steps:
        return schedule(step)
    target = schedule(warmup_steps)
    return warmup_lr + (target - warmup_lr) * step / warmup_steps


SCHEDULES: Registry[Schedule] = Registry("schedule")
SCHEDULES.register("constant", constant)
SCHEDULES.register("step", step_decay)
SCHEDULES.register("multistep", multistep)
SCHEDULES.register("exponential", exponential)
SCHEDULES.register("cosine", cosine)
SCHEDULES.register("onecycle", onecycle)
SCHEDULES.register("plateau", constant)  # the base rate; the drops come from PlateauState


class LRController:
    """The schedule plus the feedback-driven parts, with the state a checkpoint must keep.

    ``lr(step)`` is pure given the state; ``observe_train_error`` and ``observe_val_loss`` update it.
    """

    def __init__(self, schedule: Schedule, *, warmup_until_error: float = 0.0, warmup_lr: float = 0.0,
                 plateau: bool = False, patience: int = 5, factor: float = 0.1, min_lr: float = 0.0) -> None:
        self.schedule = schedule
        self.warmup_until_error = warmup_until_error
        self.warmup_lr = warmup_lr
        self.plateau = plateau
        self.patience = patience
        self.factor = factor
        self.min_lr = min_lr
        # state
        self.warmed_up = warmup_until_error <= 0
        self.scale = 1.0
        self.best = math.inf
        self.bad_evals = 0

    def lr(self, step: int) -> float:
        if not self.warmed_up:
            return self.warmup_lr
        return max(self.schedule(step) * self.scale, self.min_lr if self.plateau else 0.0)

    def observe_train_error(self, error: float) -> None:
        if not self.warmed_up and error < self.warmup_until_error:
            self.warmed_up = True

    def observe_val_loss(self, loss: float) -> None:
        if not self.plateau:
            return
        if loss < self.best:
            self.best, self.bad_evals = loss, 0
            return
        self.bad_evals += 1
        if self.bad_evals > self.patience:
            self.scale *= self.factor
            self.bad_evals = 0

    def state_dict(self) -> dict[str, Any]:
        return {"warmed_up": self.warmed_up, "scale": self.scale, "best": self.best, "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.warmed_up = bool(state["warmed_up"])
        self.scale = float(state["scale"])
        self.best = float(state["best"])
        self.bad_evals = int(state["bad_evals"])


def build_schedule(cfg, *, base_lr: float, total_steps: int) -> LRController:
    """An :class:`LRController` from a ``ScheduleConfig``."""
    name = cfg.name
    fn = SCHEDULES.get(name)
    kwargs: dict[str, Any] = {"base_lr": base_lr}
    if name == "step":
        kwargs.update(step_size=cfg.step_size or max(1, total_steps // 3), gamma=cfg.gamma)
    elif name == "multistep":
        kwargs.update(milestones=cfg.milestones, gamma=cfg.gamma)
    elif name == "exponential":
        kwargs.update(gamma=cfg.gamma)
    elif name == "cosine":
        kwargs.update(total_steps=total_steps, min_lr=cfg.min_lr)
    elif name == "onecycle":
        kwargs.update(total_steps=total_steps, pct_start=cfg.pct_start, min_lr=cfg.min_lr)
    schedule: Schedule = partial(fn, **kwargs)
    if cfg.warmup_steps:
        schedule = partial(with_warmup, schedule, warmup_steps=cfg.warmup_steps, warmup_lr=cfg.warmup_lr)
    return LRController(schedule, warmup_until_error=cfg.warmup_until_error, warmup_lr=cfg.warmup_lr,
                        plateau=name == "plateau", patience=cfg.patience, factor=cfg.factor, min_lr=cfg.min_lr)
