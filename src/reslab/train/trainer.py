"""The training loop: ``Trainer.fit`` and ``Trainer.evaluate`` for any classification ``nn.Module``.

The trainer knows nothing of particular models. A model whose training output has ``logits``,
``aux_logits`` and ``aux_weight`` (GoogLeNet) gets the auxiliary losses added with that weight.
Under several processes (``dist``) the model trains as ``DistributedDataParallel``; every decision
(stop, schedule, divergence) is taken on figures summed over the ranks, so all ranks take it together.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn

from reslab.device import autocast
from reslab.dist import SINGLE, Dist
from reslab.errors import ConfigError, TrainingDiverged  # noqa: F401  (TrainingDiverged: part of this module's API)
from reslab.evaluation import Evaluation, evaluate, reduce_over
from reslab.train.callbacks import Callback
from reslab.train.signals import StopSignals
from reslab.train.state import ModelEMA, rng_state, set_rng_state
from reslab.train.window import MetricWindow


def classification_loss(output: Any, target: Tensor, *, label_smoothing: float = 0.0) -> tuple[Tensor, Tensor]:
    """Cross-entropy of the main logits, plus ``aux_weight`` x the auxiliary heads' losses. Returns (loss, logits)."""
    logits = output.logits if hasattr(output, "aux_logits") else output
    loss = nn.functional.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
    if hasattr(output, "aux_logits"):
        for aux in output.aux_logits:
            loss = loss + output.aux_weight * nn.functional.cross_entropy(aux.float(), target,
                                                                          label_smoothing=label_smoothing)
    return loss, logits


class Trainer:
    """Owns the step counter; evaluates, logs and checkpoints through callbacks.

    Args:
        model: any classifier ``nn.Module`` (already on ``device``).
        optimizer: a ``torch.optim.Optimizer``; ``group["lr"]`` is written every step.
        lr_controller: ``lr(step)``, ``observe_train_error``, ``observe_val_loss``, ``state_dict``.
        device, precision: from :mod:`reslab.device` (``fp32``, ``bf16``, ``fp16``).
        dist: the process group (:mod:`reslab.dist`); ``sync_batchnorm`` normalises over all ranks' images.
        accumulate: each step's batch is run in this many parts whose gradients add up before the one
            update (DDP synchronises only after the last: ``no_sync`` on the others); with 1 process and
            ``accumulate=N`` a step equals N processes' (BatchNorm then sees each part separately, as
            each rank would).
        skips_layers: some steps leave parameters without a gradient (stochastic depth drops blocks;
            every rank drops the same ones, its random stream seeded alike), which DDP must be told.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, lr_controller, *,
                 device: torch.device, precision: str = "fp32", channels_last: bool = False,
                 compile: bool = False, grad_clip: float = 0.0, label_smoothing: float = 0.0,
                 ema_decay: float = 0.0, tta_flip: bool = False, log_every: int = 50,
                 callbacks: Sequence[Callback] = (), dist: Dist = SINGLE, sync_batchnorm: bool = False,
                 skips_layers: bool = False, accumulate: int = 1) -> None:
        self.model = model
        self.optimizer = optimizer
        self.lr_controller = lr_controller
        self.device = device
        self.precision = precision
        self.channels_last = channels_last
        self.grad_clip = grad_clip
        self.label_smoothing = label_smoothing
        self.tta_flip = tta_flip
        self.log_every = log_every
        self.accumulate = accumulate
        self.callbacks = list(callbacks)
        keys = [cb.state_key for cb in self.callbacks]
        if len(set(keys)) != len(keys):
            raise ValueError(f"two callbacks share a state_key: {keys}")
        self.dist = dist
        if sync_batchnorm:
            if dist.backend != "nccl":
                raise ConfigError("train.sync_batchnorm needs several GPU processes (NCCL); gloo has no SyncBatchNorm")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # the same parameters, in place
            self.model = model
        if channels_last:
            model.to(memory_format=torch.channels_last)
        wrapped = model
        if dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                              find_unused_parameters=skips_layers)
        self.train_model = torch.compile(wrapped) if compile else wrapped
        self.ema = ModelEMA(model, ema_decay) if ema_decay > 0 else None
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        self.step = 0
        self.epoch = 0
        self.elapsed = 0.0  # seconds spent in fit, summed over resumed sessions
        self.train_loader = None
        self.last_eval: dict[str, float] = {}  # the latest evaluation's metrics (kept in checkpoints)
        self.evaluation_due = False  # set before on_batch_end: this step ends with an evaluation
        self.interrupted: str = ""  # the signal that stopped fit early ("SIGTERM", "SIGINT")
        self._stop_reason: str | None = None
        self.window = MetricWindow(device, log_every, dist)

    # -- state ---------------------------------------------------------------------------------------
    def eval_model(self) -> nn.Module:
        return self.ema.model if self.ema is not None else self.model

    def eval_model_state(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in self.eval_model().state_dict().items()}

    def load_eval_model_state(self, state: dict[str, Tensor]) -> None:
        self.eval_model().load_state_dict(state)
        if self.ema is not None:  # end with the restored weights in the model itself as well
            self.model.load_state_dict(state)

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def state_dict(self) -> dict[str, Any]:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_controller": self.lr_controller.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "elapsed": self.elapsed,
            "rng": rng_state(),
            "last_eval": dict(self.last_eval),
            "callbacks": {cb.state_key: cb.state_dict() for cb in self.callbacks},
        }
        if self.ema is not None:
            state["ema"] = self.ema.model.state_dict()
            state["ema_updates"] = self.ema.updates
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if self.train_loader is not None:
            state["train_loader"] = self.train_loader.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], *, train_loader=None) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_controller.load_state_dict(state["lr_controller"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.last_eval = dict(state.get("last_eval", {}))
        saved = state.get("callbacks", {})  # by state_key; a callback absent then or now is skipped
        for cb in self.callbacks:
            if cb.state_key in saved:
                cb.load_state_dict(saved[cb.state_key])
        if self.ema is not None and "ema" in state:
            self.ema.model.load_state_dict(state["ema"])
            self.ema.updates = int(state.get("ema_updates", 0))
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if train_loader is not None and "train_loader" in state:
            train_loader.load_state_dict(state["train_loader"])
        set_rng_state(state["rng"])

    # -- the loop ------------------------------------------------------------------------------------
    def _emit(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def _set_lr(self) -> float:
        lr = self.lr_controller.lr(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def train_step(self, x: Tensor, y: Tensor) -> None:
        """One optimisation step. Its loss and errors go to the window on the device: no host read."""
        self.optimizer.zero_grad(set_to_none=True)
        parts = list(zip(x.chunk(self.accumulate), y.chunk(self.accumulate))) if self.accumulate > 1 else [(x, y)]
        for i, (xp, yp) in enumerate(parts):
            last = i == len(parts) - 1
            quiet = self.train_model.no_sync() if self.dist.distributed and not last else contextlib.nullcontext()
            with quiet:
                with autocast(self.device, self.precision):
                    output = self.train_model(xp)
                loss, logits = classification_loss(output, yp, label_smoothing=self.label_smoothing)
                share = loss * (len(yp) / len(y))  # the parts' gradients add up to the whole batch's mean
                if self.scaler is not None:
                    self.scaler.scale(share).backward()
                else:
                    share.backward()
            self.window.record(self.step + 1, loss, logits, yp)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)

    def fit(self, train_loader, val_loader=None, *, total_steps: int, eval_every: int = 0) -> dict[str, float]:
        """Train until ``total_steps`` iterations (counting those of a resumed run) or a stop request.

        Evaluates every ``eval_every`` steps, or at the end of each epoch when 0, and at the end; a step
        that ends with an evaluation is evaluated before any callback checkpoints it, so a crash can
        never skip an evaluation. SIGTERM or SIGINT stops after the current step (``interrupted``; under
        several processes at the next read of the window, where the ranks agree). Returns the last
        evaluation's metrics.
        """
        self.train_loader, self.total_steps = train_loader, total_steps  # callbacks may read the goal
        self._stop_reason, self.interrupted = None, ""
        fit_start, elapsed_before = time.perf_counter(), self.elapsed
        self.window.reset()
        self._emit("on_fit_start")
        with StopSignals() as signals:
            while self.step < total_steps and self._stop_reason is None and not self.interrupted:
                if train_loader.position == 0:
                    self._emit("on_epoch_start")
                self.model.train()
                t0 = time.perf_counter()
                for x, y in train_loader:
                    self.epoch = train_loader.epoch
                    lr = self._set_lr()
                    self.train_step(x, y)
                    self.step += 1
                    metrics: dict[str, float] = {"step": self.step, "epoch": self._fractional_epoch(), "lr": lr}
                    end = self.step >= total_steps or self._stop_reason is not None
                    epoch_done = train_loader.position == 0
                    self.evaluation_due = bool(end or (eval_every and self.step % eval_every == 0)
                                               or (not eval_every and epoch_done))
                    log = self.step % self.log_every == 0
                    if log or self.evaluation_due:  # the window's read: the loop's one host read
                        now = time.perf_counter()
                        self.window.time += now - t0
                        t0 = now
                        if self.window.read(stop=signals.received is not None):
                            self.interrupted = signals.name or "SIGTERM"  # another rank's signal
                    elif not self.dist.distributed and signals.received is not None:
                        self.interrupted = signals.name
                    if self.interrupted:
                        self.evaluation_due = False
                    if log:
                        metrics.update(self.window.metrics())
                        self.lr_controller.observe_train_error(metrics["train_error"])
                    self._emit("on_batch_end", metrics)
                    end = end or self._stop_reason is not None
                    if self.interrupted:
                        break
                    if end or (self.evaluation_due and eval_every):
                        self.elapsed = elapsed_before + time.perf_counter() - fit_start
                        self._evaluate_and_report(val_loader)
                        t0 = time.perf_counter()
                    if end:
                        break
                else:  # the epoch ran to its end
                    self.window.time += time.perf_counter() - t0
                    self.epoch = train_loader.epoch
                    self.elapsed = elapsed_before + time.perf_counter() - fit_start
                    if not eval_every and self.step < total_steps:
                        self._evaluate_and_report(val_loader)
                    self._emit("on_epoch_end")
            self.evaluation_due = False
            self.elapsed = elapsed_before + time.perf_counter() - fit_start
            self._emit("on_fit_end")
        return self.last_eval

    def _fractional_epoch(self) -> float:
        loader = self.train_loader
        if loader is None or not len(loader):
            return float(self.epoch)
        return round(loader.epoch + loader.position / len(loader), 4)

    def _evaluate_and_report(self, val_loader) -> dict[str, float]:
        metrics: dict[str, float] = {"step": self.step, "epoch": self._fractional_epoch(),
                                     "lr": self.lr_controller.lr(self.step)}
        metrics.update(self.window.metrics())
        metrics["elapsed_s"] = round(self.elapsed, 2)
        self.window.reset()
        if val_loader is not None:
            result = self.evaluate(val_loader)
            metrics.update(val_loss=result.loss, val_error=result.error)
            self.lr_controller.observe_val_loss(result.loss)
        self.last_eval = metrics
        self._emit("on_evaluate", metrics)
        return metrics

    def evaluate(self, loader: Iterable, *, num_classes: int | None = None) -> Evaluation:
        """The evaluated model (the EMA's, when on) on ``loader``, with the run's precision and flip TTA;
        under several processes each rank evaluates its share and the counts are summed."""
        self.dist.broadcast_buffers(self.eval_model())
        local = evaluate(self.eval_model(), loader, precision=self.precision, tta_flip=self.tta_flip,
                         num_classes=num_classes)
        return reduce_over(local, self.dist, self.device)
