"""A small callback surface for the trainer, and the callbacks reslab ships.

Hooks: ``on_fit_start``, ``on_epoch_start``, ``on_batch_end``, ``on_evaluate``, ``on_epoch_end``,
``on_fit_end``. A callback with state (early stopping, checkpoints) returns it from ``state_dict``
and it travels in the checkpoint under the callback's ``state_key``, so a run resumed with another
set of callbacks (progress on or off, early stopping added) hands each its own state.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import torch
from torch import nn

from reslab.errors import TrainingDiverged

from reslab.checkpoint import save_checkpoint
from reslab.progress import progress
from reslab.rundir import append_jsonl, truncate_jsonl

if TYPE_CHECKING:
    from reslab.train.trainer import Trainer


class Callback:
    state_key = "callback"  # unique among a trainer's callbacks; names this callback's state in checkpoints

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_epoch_start(self, trainer: Trainer) -> None: ...
    def on_batch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_epoch_end(self, trainer: Trainer) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class MetricsLogger(Callback):
    """Appends one JSON object per line to the run's metrics file: train rows every ``log_every`` steps
    (``kind: "train"``) and a row at every evaluation (``kind: "eval"``)."""

    state_key = "metrics"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_fit_start(self, trainer: Trainer) -> None:
        truncate_jsonl(self.path, trainer.step)

    def _append(self, row: dict[str, Any]) -> None:
        append_jsonl(self.path, row)

    def on_batch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if "train_loss" in metrics:  # a logging step
            self._append({"kind": "train", **metrics})

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self._append({"kind": "eval", **metrics})


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The convolutions and linear layers, in module order: the layers whose gradients are recorded."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def weight_grad_norms(layers: list[tuple[str, nn.Module]]) -> list[float | None]:
    """The norm of each layer's weight gradient (None where the layer has none)."""
    return [float(m.weight.grad.detach().float().norm()) if m.weight.grad is not None else None for _, m in layers]


class GradientRecorder(Callback):
    """Per-layer gradient norms during training, one row per evaluation in the run's gradient record.

    Each row holds the norm of every convolution's and linear layer's weight gradient (module order)
    from the last training step before the evaluation: after loss scaling is undone and after
    clipping, i.e. the gradient the optimizer used. A layer without a gradient in that step (a block
    dropped by stochastic depth) is recorded as ``null``, or as 0 under reslab's flat-buffer optimizers,
    which keep every gradient attached. Costs one norm per layer per evaluation.
    """

    state_key = "gradients"

    def __init__(self, path: str | Path, model: Any) -> None:
        self.path = Path(path)
        self.layers = weighted_layers(model)

    def on_fit_start(self, trainer: Trainer) -> None:
        truncate_jsonl(self.path, trainer.step)

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        norms = weight_grad_norms(self.layers)
        if all(v is None for v in norms):  # no training step yet
            return
        append_jsonl(self.path, {"step": trainer.step, "epoch": metrics.get("epoch"),
                                 "layers": [n for n, _ in self.layers], "weight_grad_norm": norms})


class EarlyStopping(Callback):
    """Stop when the monitored metric has not improved by ``min_delta`` for ``patience`` evaluations;
    optionally end with the best weights."""

    state_key = "early_stopping"

    def __init__(self, *, patience: int, min_delta: float = 0.0, monitor: str = "val_loss",
                 restore_best: bool = True) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.monitor = monitor
        self.restore_best = restore_best
        self.best = math.inf
        self.best_step = -1
        self.bad_evals = 0
        self.best_weights: dict[str, Any] | None = None
        self.stopped_step: int | None = None

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        value = metrics.get(self.monitor)
        if value is None:
            return
        if value < self.best - self.min_delta:
            self.best, self.best_step, self.bad_evals = value, trainer.step, 0
            if self.restore_best:
                self.best_weights = copy.deepcopy(trainer.eval_model_state())
        else:
            self.bad_evals += 1
            if self.bad_evals >= self.patience:
                self.stopped_step = trainer.step
                trainer.request_stop(f"early stopping: no {self.monitor} improvement in {self.patience} evaluations")

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.restore_best and self.best_weights is not None and self.stopped_step is not None:
            trainer.load_eval_model_state(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "bad_evals": self.bad_evals,
                "best_weights": self.best_weights, "stopped_step": self.stopped_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_step = state["best"], state["best_step"]
        self.bad_evals, self.best_weights = state["bad_evals"], state["best_weights"]
        self.stopped_step = state["stopped_step"]


class Checkpointer(Callback):
    """Writes ``last`` (everything needed to resume) at every evaluation or every ``every`` steps, and
    ``best`` (weights and metrics) when validation error improves. Both atomically, and only when every
    floating tensor in them is finite: a diverged state never replaces the last good checkpoint.

    A step that ends with an evaluation is checkpointed after it, with its result inside, so that a
    crash between the two repeats the step's evaluation on resume instead of skipping it.
    """

    state_key = "checkpointer"

    def __init__(self, last: str | Path, best: str | Path, *, every: int = 0,
                 extra: dict[str, Any] | None = None, write: bool = True, barrier=lambda: None) -> None:
        self.last, self.best = Path(last), Path(best)
        self.every = every
        self.extra = extra or {}
        self.write = write  # False on the ranks that do not write: they check, track the best, and wait
        self.barrier = barrier
        self.best_error = math.inf
        self.saved_step = -1

    def save(self, trainer: Trainer) -> None:
        if self.saved_step == trainer.step:
            return
        state = {**trainer.state_dict(), **self.extra}
        require_finite(state, trainer.step, self.last)  # every rank checks (same weights), so all stop together
        if self.write:
            save_checkpoint(self.last, state)
        self.barrier()  # no rank runs ahead of a checkpoint being written
        self.saved_step = trainer.step

    def on_batch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.every and trainer.step % self.every == 0 and not trainer.evaluation_due:
            self.save(trainer)

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        err = metrics.get("val_error")
        if err is not None and err < self.best_error:
            state = {"model": trainer.eval_model_state(), "metrics": metrics, **self.extra}
            require_finite(state, trainer.step, self.best)
            if self.write:
                save_checkpoint(self.best, state)
            self.best_error = err
        if not self.every or trainer.step % self.every == 0:
            self.save(trainer)

    def on_fit_end(self, trainer: Trainer) -> None:
        self.save(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"best_error": self.best_error}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_error = state["best_error"]


class NonFiniteState(TrainingDiverged):
    """A state about to be checkpointed holds NaN or infinite values."""


def require_finite(state: Any, step: int, path: Path, where: str = "") -> None:
    """Refuse a state with a non-finite floating tensor anywhere in it, naming the first one."""
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() and not bool(torch.isfinite(state).all()):
            raise NonFiniteState(f"at step {step} {where or 'a tensor'} holds NaN or infinite values, so it was "
                                 f"not saved to {path}")
    elif isinstance(state, dict):
        for k, v in state.items():
            require_finite(v, step, path, f"{where}.{k}" if where else str(k))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            require_finite(v, step, path, f"{where}[{i}]")


class ProgressBar(Callback):
    """A progress bar of the run's steps (loss, error, rate and images/s beside it) and one line per
    evaluation, through :mod:`reslab.progress`."""

    state_key = "progress"

    def __init__(self, stream: TextIO, *, total_steps: int) -> None:
        self.stream = stream
        self.total = total_steps
        self.bar = None
        self.latest: dict[str, float] = {}

    def on_fit_start(self, trainer: Trainer) -> None:
        self.bar = progress(self.stream, total=self.total, desc="training", unit="step", initial=trainer.step)

    def on_batch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.latest.update(metrics)
        m = self.latest
        figures = {"loss": f"{m['train_loss']:.3f}", "err": f"{100 * m['train_error']:.1f}%",
                   "img/s": f"{m.get('images_per_sec', 0):.0f}"} if "train_loss" in m else {}
        self.bar.update(1, **figures)

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        parts = [f"step {trainer.step:>6}/{self.total}", f"epoch {metrics.get('epoch', trainer.epoch):>3}"]
        if "train_error" in metrics:
            parts.append(f"train loss {metrics['train_loss']:.3f} err {100 * metrics['train_error']:5.2f}%")
        if "val_error" in metrics:
            parts.append(f"val loss {metrics['val_loss']:.3f} err {100 * metrics['val_error']:5.2f}%")
        parts.append(f"{metrics.get('images_per_sec', 0):.0f} img/s")
        self.bar.write("  ".join(parts))

    def on_fit_end(self, trainer: Trainer) -> None:
        self.bar.close()
