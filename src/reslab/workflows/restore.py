"""Restore a run for analysis and evaluation: its config, its network with trained weights, held-out data.

Trainer-free by design: nothing here imports :mod:`reslab.train`'s loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reslab.config import DataConfig, RunConfig
from reslab.data import build_data, mix_seed, normalize, stratified_subset
from reslab.errors import CheckpointError, CheckpointNotFound
from reslab.evaluation import fixed_batches
from reslab.models import create_model
from reslab.rundir import RunDir, checkpoint_of, run_dir_of_checkpoint
from reslab.checkpoint import load_checkpoint, load_model_state


@dataclass
class RestoredRun:
    run: RunDir
    config: RunConfig
    model: torch.nn.Module  # in eval mode, on the CPU, with the weights the run evaluated
    state: dict[str, Any]  # the checkpoint
    checkpoint: Path

    @property
    def stats(self):
        return self.state.get("data_stats")


def locate_checkpoint(target: Path) -> tuple[Path, RunDir | None]:
    """(checkpoint file, its run folder or None) for a run folder (its best checkpoint) or a checkpoint path."""
    if target.is_dir():
        run = RunDir(target)
        path = checkpoint_of(run, "best")
        if path is None:
            raise CheckpointNotFound(f"no checkpoint in {run.checkpoint_dir}", run.checkpoint_dir)
        return path, run
    if not target.is_file():
        raise CheckpointNotFound(f"checkpoint not found: {target}", target)
    return target, run_dir_of_checkpoint(target)


def model_from_checkpoint(state: dict[str, Any], source: Path) -> torch.nn.Module:
    """The checkpoint's network with the weights its run evaluated (the EMA's where there is one)."""
    if "model_name" not in state or "num_classes" not in state:
        raise CheckpointError(f"{source} does not say which model it holds")
    model = create_model(state["model_name"], num_classes=state["num_classes"], **state.get("model_options", {}))
    weights = {**state, "model": state["ema"]} if "ema" in state else state
    load_model_state(model, weights, source=str(source))
    return model.eval()


def restore_run(run: RunDir | str | Path, which: str = "best") -> RestoredRun:
    """``which``: ``best`` (the best checkpoint, else the last) or ``last``."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    cfg = run.read_config()
    path = checkpoint_of(run, which)
    if path is None:
        raise CheckpointError(f"no checkpoint in {run.checkpoint_dir}")
    state = load_checkpoint(path)
    return RestoredRun(run, cfg, model_from_checkpoint(state, path), state, path)


def fresh_model(cfg: RunConfig, num_classes: int, name: str | None = None) -> torch.nn.Module:
    """The run's network at initialisation, drawn with the run's seed."""
    torch.manual_seed(cfg.train.seed)
    return create_model(name or cfg.model.name, num_classes=num_classes, **cfg.model.options)


def analysis_batch(data_cfg: DataConfig, *, n: int = 256, seed: int = 0, stats=None):
    """A fixed batch of ``n`` held-out images (training images when there is no hold-out), normalised,
    un-augmented: the same share of every class, in a seeded random order.

    Held-out sets are stored class by class, so their first ``n`` images would cover a few classes
    only; and in training mode BatchNorm normalises with the batch's own statistics, which a one-class
    batch distorts (a trained ResNet-20 then shows a loss of 4.9 instead of 0.4).
    """
    data = build_data(data_cfg, seed=seed, channels_last=False, stats=stats)
    x, y = _draw(data, n, seed)
    return x, y, data


def analysis_batches(data_cfg: DataConfig, *, n: int = 256, draws: int = 1, stats=None):
    """``draws`` batches as :func:`analysis_batch` makes them, from one loading of the data, and the data:
    the first batch is ``analysis_batch``'s (seed 0), each further one a stratified draw with its own seed.
    Where the held-out set holds fewer than ``draws * n`` images the batches share some images."""
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    data = build_data(data_cfg, seed=0, channels_last=False, stats=stats)
    return [_draw(data, n, seed) for seed in range(draws)], data


def _draw(data, n: int, seed: int):
    loader = data.val if data.val is not None else data.train
    n = min(n, loader.num_samples)
    idx = stratified_subset(loader.labels.cpu(), n, seed=mix_seed(seed, 2))
    idx = idx[torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(seed, 3)))]
    x = normalize(loader.images.index_select(0, idx.to(loader.device)), loader.mean, loader.std,
                  channels_last=False)
    return x.contiguous(), loader.labels.index_select(0, idx.to(loader.device))


def heldout_batches(restored: RestoredRun, n: int, batch: int = 500, *, channels_last: bool = False):
    """``n`` held-out images of the run in fixed batches, and the images and labels themselves. With
    ``channels_last`` images and model go to that layout: the same fp32 numbers, and on a CPU the
    convolutions run faster in it."""
    x, y, _ = analysis_batch(restored.config.data, n=n, stats=restored.stats)
    if channels_last:
        restored.model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return fixed_batches(x, y, batch), x, y
