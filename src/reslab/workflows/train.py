"""One training run from a config: the data flow of ``reslab train``.

config -> (model options checked, data read) -> run folder created -> model, optimizer, schedule ->
Trainer.fit with its callbacks -> summary. Nothing touches the disk until the config, the model's
options and the data have been checked, so a start that fails leaves no folder behind.
"""

from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass, replace
from typing import Any, Sequence, TextIO

import torch

from reslab.checkpoint import load_checkpoint, load_model_state, require_resumable
from reslab.config import RunConfig, as_dict
from reslab.data import DataBundle, build_data
from reslab.device import cpu_supports_bf16, resolve_precision
from reslab.dist import Dist, setup
from reslab.errors import CheckpointError, CheckpointNotFound, ConfigError, Interrupted, ReslabError, TrainingDiverged
from reslab.models import check_options, count_params, create_model
from reslab.optim import optimizer_from_config
from reslab.rundir import RunDir, os_error, run_dir_of
from reslab.schedules import build_schedule
from reslab.train import (Checkpointer, EarlyStopping, GradientRecorder, MetricsLogger, ProgressBar,
                          TensorBoardLogger, Trainer)


@dataclass
class RunResult:
    run: RunDir
    metrics: dict[str, Any]
    summary: dict[str, Any]


def run_config(cfg: RunConfig) -> RunConfig:
    """What a run stores and is compared by: its config without experiment options."""
    return replace(cfg, experiment={}) if cfg.experiment else cfg


def checkpoint_identity(cfg: RunConfig, data: DataBundle) -> dict[str, Any]:
    """What a checkpoint records so that it can be rebuilt, evaluated alone, and refused by another model."""
    return {"model_name": cfg.model.name, "model_options": dict(cfg.model.options), "num_classes": data.num_classes,
            "data_stats": data.stats, "seed": cfg.train.seed, "classes": data.classes, "optimizer_name": cfg.optim.name,
            "image_size": data.image_size}


def callbacks_for(cfg: RunConfig, run: RunDir, model: torch.nn.Module, checkpointer: Checkpointer,
                  total_steps: int, progress: TextIO | None, *, primary: bool = True, extra: Sequence = ()) -> list:
    """The run's callbacks; other ranks than the primary keep only those that decide (early stopping,
    the checkpointer's checks) and write nothing. ``extra`` callbacks (a caller's own) come before the
    checkpointer."""
    callbacks: list = [MetricsLogger(run.metrics_file)] if primary else []
    if cfg.train.tensorboard and primary:
        callbacks.append(TensorBoardLogger(run.tb_dir, config=as_dict(cfg), config_text=run.config_text(cfg),
                                           model=model if cfg.train.record_gradients else None))
    if cfg.train.record_gradients and primary:
        callbacks.append(GradientRecorder(run.gradients_file, model))
    if cfg.train.early_stopping_patience:
        callbacks.append(EarlyStopping(patience=cfg.train.early_stopping_patience,
                                       min_delta=cfg.train.early_stopping_min_delta,
                                       restore_best=cfg.train.restore_best))
    if progress is not None and primary:
        callbacks.append(ProgressBar(progress, total_steps=total_steps))
    callbacks.extend(extra)
    callbacks.append(checkpointer)  # last, so it saves the other callbacks' updated state
    return callbacks


def scaled_schedule(cfg: RunConfig, steps_per_epoch: int):
    """(schedule, base rate): with ``optim.linear_scaling`` (Goyal et al. 2017) the rate is ``lr`` x global
    batch / 256, reached from ``lr`` by a linear warm-up over 5 epochs unless the schedule sets its own."""
    if not cfg.optim.linear_scaling:
        return cfg.schedule, cfg.optim.lr
    schedule = cfg.schedule
    if not schedule.warmup_steps:
        schedule = replace(schedule, warmup_steps=5 * steps_per_epoch, warmup_lr=cfg.optim.lr)
    return schedule, cfg.optim.lr * cfg.data.batch_size / 256


def train_run(cfg: RunConfig, *, resume: bool = False, overwrite: bool = False,
              progress: TextIO | None = None, callbacks: Sequence = ()) -> RunResult:
    """Train ``cfg`` in ``<out_dir>/<name>``; with ``resume`` continue from its last checkpoint.
    ``callbacks``: the caller's own, beside the run's usual ones.

    The run folder is locked for the whole run (a second writer is refused); a start that fails
    leaves no folder; SIGTERM/SIGINT end the run after a step, with a checkpoint, as :class:`Interrupted`.
    """
    cfg = run_config(cfg)
    run = run_dir_of(cfg)
    if resume and not run.last_checkpoint.is_file():
        raise CheckpointNotFound(f"nothing to resume in {run.path}: no {run.last_checkpoint.name} in "
                                 f"{run.checkpoint_dir}", run.last_checkpoint)
    check_options(cfg.model.name, cfg.model.options)
    dist, device = setup(cfg.train.device)
    if cfg.data.batch_size % (dist.world_size * cfg.train.accumulate):
        raise ConfigError(f"data.batch_size = {cfg.data.batch_size} (the global batch) does not split into "
                          f"{dist.world_size} process(es) x {cfg.train.accumulate} part(s) (train.accumulate)")
    channels_last = cfg.train.channels_last and device.type in ("cpu", "cuda")
    data = build_data(cfg.data, seed=cfg.train.seed, device=device, channels_last=channels_last,
                      rank=dist.rank, world_size=dist.world_size)
    with contextlib.ExitStack() as held:
        # Only the writing rank locks and creates the folder, once the config, the model's options and
        # the data are known to be good; every rank learns whether that worked before any trains.
        failure: ReslabError | None = None
        if dist.is_primary:
            try:
                held.enter_context(run.lock())
                if resume:
                    run.remove_stale_temporaries()
                else:
                    run.create(cfg, overwrite=overwrite)
            except ReslabError as e:
                failure = e
        if not dist.all_agree(failure is None, device):
            raise failure or ReslabError(f"rank 0 could not start {run.path}; its message says why")
        return _train(cfg, run, data, device, channels_last, dist, resume=resume, progress=progress,
                      callbacks=callbacks)


def _train(cfg: RunConfig, run: RunDir, data: DataBundle, device: torch.device, channels_last: bool, dist: Dist, *,
           resume: bool, progress: TextIO | None, callbacks: Sequence = ()) -> RunResult:
    torch.manual_seed(cfg.train.seed)  # every rank the same: same stochastic-depth draws, and DDP checks it
    precision = resolve_precision(cfg.train.precision, device)
    if precision == "bf16" and device.type == "cpu" and not cpu_supports_bf16() and progress and dist.is_primary:
        progress.write("note: train.precision = bf16 on a CPU without bf16 instructions (ATen dispatches at "
                       f"{torch.backends.cpu.get_cpu_capability()}): emulated, several times slower than fp32 "
                       "(precision \"auto\" picks fp32 here)\n")

    model = create_model(cfg.model.name, num_classes=data.num_classes, **cfg.model.options).to(device)
    optimizer = optimizer_from_config(cfg.optim, model)
    total_steps = cfg.train.steps or cfg.train.epochs * len(data.train)
    schedule, base_lr = scaled_schedule(cfg, len(data.train))
    lr_controller = build_schedule(schedule, base_lr=base_lr, total_steps=total_steps)
    checkpointer = Checkpointer(run.last_checkpoint, run.best_checkpoint, every=cfg.train.checkpoint_every,
                                extra=checkpoint_identity(cfg, data), write=dist.is_primary, barrier=dist.barrier)
    trainer = Trainer(model, optimizer, lr_controller, device=device, precision=precision,
                      channels_last=channels_last, compile=cfg.train.compile, grad_clip=cfg.train.grad_clip,
                      label_smoothing=cfg.train.label_smoothing, ema_decay=cfg.train.ema_decay,
                      tta_flip=cfg.train.tta_flip, log_every=cfg.train.log_every, dist=dist,
                      sync_batchnorm=cfg.train.sync_batchnorm,
                      skips_layers=float(cfg.model.options.get("survival_prob", 1.0)) < 1.0,
                      accumulate=cfg.train.accumulate,
                      callbacks=callbacks_for(cfg, run, model, checkpointer, total_steps, progress,
                                              primary=dist.is_primary, extra=callbacks))
    if resume:
        state = load_checkpoint(run.last_checkpoint, map_location=device)
        require_resumable(state, run.last_checkpoint)
        load_model_state(model, state, source=str(run.last_checkpoint), model_name=cfg.model.name)
        saved_rule = state.get("optimizer_name", cfg.optim.name)
        if saved_rule != cfg.optim.name:
            raise CheckpointError(f"{run.last_checkpoint} holds the state of a {saved_rule} optimizer, not "
                                  f"{cfg.optim.name}: resume with --optim.name={saved_rule}")
        trainer.load_state_dict(state, train_loader=data.train)

    try:
        metrics = trainer.fit(data.train, data.val, total_steps=total_steps, eval_every=cfg.train.eval_every)
    except RuntimeError as e:
        if not dist.distributed:
            raise
        first = str(e).strip().splitlines()[0][:160]
        raise ReslabError(f"rank {dist.rank}: another process of the run stopped ({first}); this one saved "
                          f"nothing, the run resumes from {run.last_checkpoint}") from None
    except TrainingDiverged as e:
        where = (f"the last good checkpoint is {run.last_checkpoint} (step {checkpointer.saved_step})"
                 if checkpointer.saved_step >= 0 else
                 f"the last good checkpoint is {run.last_checkpoint}" if run.last_checkpoint.exists()
                 else "no checkpoint was written before it")
        raise TrainingDiverged(f"{e}; training stopped, {where}") from None
    if trainer.interrupted:
        raise Interrupted(f"stopped by {trainer.interrupted} after step {trainer.step}; checkpoint "
                          f"{run.last_checkpoint} written; continue with: reslab train --resume {run.path}",
                          signal_name=trainer.interrupted)

    summary = {
        "name": cfg.name, "model": cfg.model.name, "model_options": cfg.model.options,
        "params": count_params(model), "dataset": data.description,
        "train_images": data.train.num_samples, "steps": trainer.step,
        "epochs": round(trainer.step / len(data.train), 3), "final": metrics,
        "best_val_error": checkpointer.best_error if checkpointer.best_error != float("inf") else None,
        "stopped_early": trainer.stop_reason, "base_lr": base_lr, "train_time_s": round(trainer.elapsed, 1),
        "device": str(device), "precision": precision, "channels_last": channels_last,
        "tta_flip": cfg.train.tta_flip, "compile": cfg.train.compile, "torch": torch.__version__,
        "python": platform.python_version(), "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "processes": dist.world_size, "backend": dist.backend or None,
        "batchnorm": ("synchronised over ranks" if cfg.train.sync_batchnorm else
                      f"per rank ({cfg.data.batch_size // dist.world_size} images)"),
        "config": as_dict(cfg),
    }
    if not dist.is_primary:
        return RunResult(run, metrics, summary)
    try:
        run.write_summary(summary)
    except OSError as e:
        raise os_error(e, run.summary_file, f"the checkpoint {run.last_checkpoint} is intact") from None
    return RunResult(run, metrics, summary)
