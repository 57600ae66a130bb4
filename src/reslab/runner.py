"""One training run from a config: the data flow of ``reslab train``.

config -> data.build_data -> models.create_model -> optim -> schedules -> Trainer.fit, writing
``runs/<name>/`` = {config.toml, metrics.jsonl, summary.json, checkpoints/{last,best}.pt, tb/}.
"""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch

from reslab.config import RunConfig, as_dict, dump_toml, load_config
from reslab.data import build_data
from reslab.errors import CheckpointError, ConfigError, ReslabError
from reslab.models import count_params, create_model
from reslab.optim import optimizer_from_config
from reslab.schedules import build_schedule
from reslab.train import (Checkpointer, EarlyStopping, GradientRecorder, MetricsLogger, ProgressBar,
                          TensorBoardLogger, Trainer, TrainingDiverged, load_checkpoint)
from reslab.train.checkpoint import load_model_state
from reslab.train.device import resolve_device, resolve_precision


class RunExists(ReslabError):
    pass


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]
    summary: dict[str, Any]


def prepare_run_dir(cfg: RunConfig, *, overwrite: bool) -> Path:
    run_dir = cfg.run_dir
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise RunExists(f"run folder {run_dir} already exists; use --resume {run_dir} to continue it "
                            f"or --overwrite to start again")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(dump_toml(cfg))
    return run_dir


def load_run_config(run_dir: str | Path, overrides=()) -> RunConfig:
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no config.toml)")
    cfg = load_config(run_dir / "config.toml", overrides)
    # A run folder may have been moved: follow it.
    return RunConfig(**{**cfg.__dict__, "out_dir": str(run_dir.parent), "name": run_dir.name})


def build_model(cfg: RunConfig, num_classes: int) -> torch.nn.Module:
    return create_model(cfg.model.name, num_classes=num_classes, **cfg.model.options)


def model_identity(cfg: RunConfig, num_classes: int) -> dict[str, Any]:
    """What a checkpoint records so that it can be rebuilt (and refused by another model)."""
    return {"model_name": cfg.model.name, "model_options": dict(cfg.model.options), "num_classes": num_classes}


def run_training(cfg: RunConfig, *, resume: bool = False, overwrite: bool = False,
                 progress: TextIO | None = None) -> RunResult:
    """Train ``cfg``; with ``resume`` continue from ``runs/<name>/checkpoints/last.pt``."""
    torch.manual_seed(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device)
    channels_last = cfg.train.channels_last and device.type in ("cpu", "cuda")

    if resume:
        run_dir = cfg.run_dir
        last = run_dir / "checkpoints" / "last.pt"
        if not last.is_file():
            raise CheckpointError(f"nothing to resume in {run_dir}: no checkpoints/last.pt")
    else:
        run_dir = prepare_run_dir(cfg, overwrite=overwrite)

    data = build_data(cfg.data, seed=cfg.train.seed, device=device, channels_last=channels_last)
    model = build_model(cfg, data.num_classes).to(device)
    optimizer = optimizer_from_config(cfg.optim, model)
    total_steps = cfg.train.steps or cfg.train.epochs * len(data.train)
    lr_controller = build_schedule(cfg.schedule, base_lr=cfg.optim.lr, total_steps=total_steps)

    identity = {**model_identity(cfg, data.num_classes), "data_stats": data.stats, "seed": cfg.train.seed}
    checkpointer = Checkpointer(run_dir / "checkpoints", every=cfg.train.checkpoint_every, extra=identity)
    callbacks: list = [MetricsLogger(run_dir / "metrics.jsonl")]
    if cfg.train.tensorboard:
        callbacks.append(TensorBoardLogger(run_dir / "tb"))
    if cfg.train.record_gradients:
        callbacks.append(GradientRecorder(run_dir / "gradients.jsonl", model))
    if cfg.train.early_stopping_patience:
        callbacks.append(EarlyStopping(patience=cfg.train.early_stopping_patience,
                                       min_delta=cfg.train.early_stopping_min_delta,
                                       restore_best=cfg.train.restore_best))
    if progress is not None:
        callbacks.append(ProgressBar(progress, total_steps=total_steps))
    callbacks.append(checkpointer)  # last, so it saves the other callbacks' updated state

    trainer = Trainer(model, optimizer, lr_controller, device=device, precision=precision,
                      channels_last=channels_last, compile=cfg.train.compile, grad_clip=cfg.train.grad_clip,
                      label_smoothing=cfg.train.label_smoothing, ema_decay=cfg.train.ema_decay,
                      tta_flip=cfg.train.tta_flip, log_every=cfg.train.log_every, callbacks=callbacks)
    if resume:
        state = load_checkpoint(checkpointer.last, map_location=device)
        load_model_state(model, state, source=str(checkpointer.last), model_name=cfg.model.name)
        trainer.load_state_dict(state, train_loader=data.train)

    try:
        metrics = trainer.fit(data.train, data.val, total_steps=total_steps, eval_every=cfg.train.eval_every)
    except TrainingDiverged as e:
        where = (f"the last good checkpoint is {checkpointer.last}" if checkpointer.last.exists()
                 else "no checkpoint was written before it")
        raise TrainingDiverged(f"{e}; training stopped, {where}") from None

    summary = {
        "name": cfg.name, "model": cfg.model.name, "model_options": cfg.model.options,
        "params": count_params(model), "dataset": data.description, "steps": trainer.step,
        "epochs": round(trainer.step / len(data.train), 3), "final": metrics,
        "best_val_error": checkpointer.best_error if checkpointer.best_error != float("inf") else None,
        "stopped_early": trainer.stop_reason, "train_time_s": round(trainer.elapsed, 1),
        "device": str(device), "precision": precision, "channels_last": channels_last,
        "compile": cfg.train.compile, "torch": torch.__version__, "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "config": as_dict(cfg),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return RunResult(run_dir, metrics, summary)
