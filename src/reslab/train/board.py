"""TensorBoard for a run, written by the ``tensorboard`` package's own writer (``SummaryWriter``).

One run folder is one TensorBoard run (``<run>/tb``); an experiment's runs sit under one parent folder,
so ``tensorboard --logdir runs/<experiment>`` compares them in one view. What a run writes:

- scalars every ``log_every`` steps: ``train/loss``, ``train/error``, ``optim/lr``, ``speed/images_per_sec``;
  at each evaluation ``val/loss``, ``val/error`` (and ``val/error5`` where reported);
- with ``train.record_gradients``, each layer's weight-gradient norm at each evaluation
  (``grad_norm/<layer>``), the numbers of the run's gradient record;
- the run's config as text (``config``), once;
- at the end, the hyper-parameters (every config value, ``section.key``) with the final metrics
  (``hparams/...``) for the HPARAMS tab. ``SummaryWriter.add_hparams`` would open a sub-run of its own
  for these; they are written into the run's own event file instead, so a run stays one row.

A resumed run opens its writer with ``purge_step`` at the step it resumes from: TensorBoard then
drops the events an interrupted session had written past its last checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from reslab.train.callbacks import Callback, weight_grad_norms, weighted_layers

if TYPE_CHECKING:
    from reslab.train.trainer import Trainer

TRAIN_TAGS = {"train_loss": "train/loss", "train_error": "train/error", "lr": "optim/lr",
              "images_per_sec": "speed/images_per_sec"}
EVAL_TAGS = {"val_loss": "val/loss", "val_error": "val/error", "val_error5": "val/error5"}


def hparam_values(config: dict[str, Any]) -> dict[str, Any]:
    """A nested config as TensorBoard hyper-parameters: ``section.key`` -> number, bool or string."""
    flat: dict[str, Any] = {}
    for section, values in config.items():
        if not isinstance(values, dict):
            flat[section] = values if isinstance(values, (int, float, str, bool)) else str(values)
            continue
        for key, value in values.items():
            name = f"{section}.{key}"
            flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


class TensorBoardLogger(Callback):
    """A run's TensorBoard events (``tensorboard --logdir runs``), through ``SummaryWriter``."""

    state_key = "tensorboard"

    def __init__(self, log_dir: str | Path, *, config: dict[str, Any] | None = None, config_text: str = "",
                 model: nn.Module | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.config, self.config_text = config or {}, config_text
        self.layers = weighted_layers(model) if model is not None else []  # gradient norms only with a model
        self.writer = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imports TensorBoard: only when a run writes events

        # TensorBoard drops the events of earlier sessions from purge_step on: what this session writes again
        self.writer = SummaryWriter(str(self.log_dir), purge_step=trainer.step + 1 if trainer.step else None)
        if self.config_text and trainer.step == 0:
            self.writer.add_text("config", "```toml\n" + self.config_text + "\n```", 0)  # markdown

    def _scalars(self, step: int, metrics: dict[str, Any], tags: dict[str, str]) -> None:
        for key, tag in tags.items():
            value = metrics.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(tag, value, step)

    def on_batch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if "train_loss" in metrics:  # a logging step
            self._scalars(trainer.step, metrics, TRAIN_TAGS)

    def on_evaluate(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self._scalars(trainer.step, metrics, EVAL_TAGS)
        norms = weight_grad_norms(self.layers)
        for (name, _), norm in zip(self.layers, norms):
            if norm is not None:
                self.writer.add_scalar(f"grad_norm/{name}", norm, trainer.step)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.writer is None:
            return
        if self.config:
            from torch.utils.tensorboard.summary import hparams

            final = {f"hparams/{key}": float(value) for key, value in (trainer.last_eval or {}).items()
                     if key in EVAL_TAGS and isinstance(value, (int, float)) and math.isfinite(value)}
            if final:
                for summary in hparams(hparam_values(self.config), final):
                    self.writer.file_writer.add_summary(summary, trainer.step)
                for key, value in final.items():
                    self.writer.add_scalar(key, value, trainer.step)
        self.writer.close()
        self.writer = None
