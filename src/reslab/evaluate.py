"""``reslab eval``: a checkpoint's loss, error, per-class accuracy and confusion matrix on a dataset."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from reslab.config import DataConfig
from reslab.data import build_data
from reslab.errors import CheckpointError
from reslab.models import create_model
from reslab.train import Trainer, load_checkpoint
from reslab.train.checkpoint import load_model_state
from reslab.train.device import resolve_device, resolve_precision


def _find_checkpoint(target: Path) -> tuple[Path, Path | None]:
    """(checkpoint file, run folder or None) for a checkpoint path or a run folder."""
    if target.is_dir():
        for name in ("best.pt", "last.pt"):
            if (target / "checkpoints" / name).is_file():
                return target / "checkpoints" / name, target
        raise CheckpointError(f"no checkpoints/best.pt or checkpoints/last.pt in {target}")
    run_dir = target.parent.parent if target.parent.name == "checkpoints" else None
    return target, run_dir


def evaluate_checkpoint(target: str | Path, *, dataset: str | None = None, path: str | None = None,
                        batch_size: int = 1000, device: str = "auto") -> dict[str, Any]:
    """Evaluate on the run's own validation split, or on ``dataset``/``path`` (CIFAR: its test set)."""
    from reslab.runner import load_run_config

    ckpt_path, run_dir = _find_checkpoint(Path(target))
    state = load_checkpoint(ckpt_path)
    if "model_name" not in state:
        raise CheckpointError(f"{ckpt_path} does not say which model it holds")
    if run_dir is not None and (run_dir / "config.toml").is_file():
        data_cfg = load_run_config(run_dir).data
    elif dataset is None:
        raise CheckpointError(f"{ckpt_path} is not inside a run folder: say which data to use with --data")
    else:
        data_cfg = DataConfig()
    if dataset is not None:
        data_cfg = replace(data_cfg, dataset=dataset, path=path or "", test_split=dataset in ("cifar10", "cifar100"))
    elif path is not None:
        data_cfg = replace(data_cfg, path=path)
    data_cfg = replace(data_cfg, eval_batch_size=batch_size)

    dev = resolve_device(device)
    precision = resolve_precision("auto", dev)
    seed = int(state.get("seed", 0))
    data = build_data(data_cfg, seed=seed, device=dev, channels_last=True,
                      stats=state.get("data_stats"))
    if data.val is None:
        raise CheckpointError("the evaluation dataset has no held-out split (set val_size or use CIFAR's test set)")
    if data.num_classes != state["num_classes"]:
        raise CheckpointError(f"{ckpt_path} predicts {state['num_classes']} classes but {data.description} has "
                              f"{data.num_classes}")
    model = create_model(state["model_name"], num_classes=state["num_classes"], **state.get("model_options", {}))
    load_model_state(model, state, source=str(ckpt_path))
    model.to(dev)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.0), None, device=dev, precision=precision,
                      channels_last=True)
    result = trainer.evaluate(data.val, num_classes=data.num_classes)
    confusion = result["confusion"]
    per_class = (confusion.diag().double() / confusion.sum(1).clamp(min=1).double()).tolist()
    report = {
        "checkpoint": str(ckpt_path), "model": state["model_name"], "data": data.description,
        "images": result["images"], "loss": result["loss"], "error": result["error"],
        "classes": data.classes, "per_class_accuracy": per_class, "confusion": confusion.tolist(),
    }
    out_dir = (run_dir or ckpt_path.parent) / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{data_cfg.dataset}.json"
    out.write_text(json.dumps(report, indent=2))
    report["written_to"] = str(out)
    return report
