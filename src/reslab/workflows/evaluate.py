"""``reslab eval``: a checkpoint's loss, error, per-class accuracy and confusion matrix on a dataset.

A run evaluated on its own data sees exactly the held-out images its training evaluated (the same
split of the same dataset), with the run's precision and flip setting, through the same evaluation
function: the error printed is the error the run reported. A dataset from outside the run, or any
dataset given with a bare checkpoint file, is evaluated whole.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from reslab.checkpoint import load_checkpoint
from reslab.config import DataConfig
from reslab.data import build_data, build_eval_data
from reslab.device import resolve_device, resolve_precision
from reslab.errors import CheckpointError, DataError
from reslab.evaluation import evaluate
from reslab.rundir import Folder, write_json
from reslab.workflows.restore import locate_checkpoint, model_from_checkpoint


def evaluate_checkpoint(target: str | Path, *, dataset: str | None = None, path: str | None = None,
                        batch_size: int | None = None, device: str = "auto",
                        tta: bool | None = None, ten_crop: bool = False) -> dict[str, Any]:
    """Evaluate on the run's own held-out images, or on every image of ``dataset``/``path``.

    ``tta``: None follows the run (flip TTA where it trained with it), False/True force it.
    ``batch_size``: None takes the run's evaluation batch size (1,000 for a bare checkpoint).
    ``ten_crop``: He et al.'s 10-crop testing on shards (the logits of the ten crops averaged).
    """
    ckpt_path, run = locate_checkpoint(Path(target))
    state = load_checkpoint(ckpt_path)
    model = model_from_checkpoint(state, ckpt_path)
    cfg = run.read_config() if run is not None else None
    dev = resolve_device(device)
    summary = run.read_summary() if run is not None else None
    precision = (summary or {}).get("precision") or resolve_precision(cfg.train.precision if cfg else "auto", dev)
    flip = (cfg.train.tta_flip if cfg else False) if tta is None else tta
    flip = flip and not ten_crop  # the ten crops hold their mirror images already
    channels_last = cfg.train.channels_last if cfg else True  # the layout the run evaluated in
    batch_size = batch_size or (cfg.data.eval_batch_size if cfg else 1000)
    stats = state.get("data_stats")
    if stats is None:
        raise CheckpointError(f"{ckpt_path} does not record its normalisation statistics")

    if ten_crop and dataset is None and path is None and cfg is not None and cfg.data.dataset == "shards":
        if not cfg.data.val_path:
            raise DataError(f"{run.path} trained without validation shards: give --data shards --data-path DIR")
        dataset, path = "shards", cfg.data.val_path  # the run's validation shards, 10 crops per image
    if dataset is None and path is None and cfg is not None:  # the run's own split, exactly as in training
        data_cfg = replace(cfg.data, eval_batch_size=batch_size)
        data = build_data(data_cfg, seed=int(state.get("seed", cfg.train.seed)), device=dev, stats=stats,
                          channels_last=channels_last)
        if data.val is None:
            raise DataError(f"{run.path} trained without a held-out split: give --data to evaluate on")
        loader, classes, description, name = data.val, data.classes, data.description, "val"
    else:
        if dataset is None and cfg is None:
            raise CheckpointError(f"{ckpt_path} is not inside a run folder: say which data to use with --data")
        base = cfg.data if cfg is not None else DataConfig()
        data_cfg = DataConfig(dataset=dataset or base.dataset, path=path if path is not None else base.path,
                              eval_batch_size=batch_size, cache_dir=base.cache_dir, image_size=base.image_size,
                              workers=base.workers)
        loader, classes, description = build_eval_data(data_cfg, stats=stats, device=dev, channels_last=channels_last,
                                                       ten_crop=ten_crop)
        name = data_cfg.dataset
    if len(classes) != state["num_classes"]:
        raise CheckpointError(f"{ckpt_path} predicts {state['num_classes']} classes but {description} has "
                              f"{len(classes)}")
    if state.get("classes") and list(state["classes"]) != classes:
        raise DataError(f"the classes of {description} ({', '.join(classes[:4])}...) are not those "
                        f"{ckpt_path} was trained on ({', '.join(state['classes'][:4])}...)")

    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    result = evaluate(model, loader, precision=precision, tta_flip=flip, num_classes=len(classes))
    report = {
        "checkpoint": str(ckpt_path), "model": state["model_name"], "data": description,
        "images": result.images, "errors": result.errors, "loss": result.loss, "error": result.error,
        "top5_error": result.error5,
        "precision": precision, "tta_flip": flip, "ten_crop": ten_crop, "classes": classes,
        "per_class_accuracy": result.per_class_accuracy(), "confusion": result.confusion.tolist(),
    }
    out = (run or Folder(ckpt_path.parent)).eval_file(name)
    write_json(out, report)
    report["written_to"] = str(out)
    return report
