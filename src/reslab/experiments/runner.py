"""Run a set of trainings that share a recipe: sequentially, each resumable, finished ones skipped."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable, TextIO

from reslab.config import RunConfig, as_dict
from reslab.runner import run_training


def run_config_for(base: RunConfig, model: str, root: Path) -> RunConfig:
    return replace(base, name=model, out_dir=str(root / "runs"), model=replace(base.model, name=model))


def status(cfg: RunConfig) -> str:
    """``finished`` (summary for this very config), ``resumable`` (a checkpoint) or ``new``."""
    summary = cfg.run_dir / "summary.json"
    if summary.is_file() and json.loads(summary.read_text()).get("config") == as_dict(cfg):
        return "finished"
    if (cfg.run_dir / "checkpoints" / "last.pt").is_file():
        return "resumable"
    return "new"


def run_all(base: RunConfig, models: list[str], root: Path, *, progress: TextIO | None = None,
            log: Callable[[str], None] = lambda s: None) -> list[Path]:
    """Train every model with ``base``'s recipe under ``root/runs/<model>``; returns the run folders."""
    dirs = []
    for i, model in enumerate(models, start=1):
        cfg = run_config_for(base, model, root)
        state = status(cfg)
        if state == "finished":
            log(f"[{i}/{len(models)}] {model}: finished earlier, skipped")
        else:
            log(f"[{i}/{len(models)}] {model}: {'resuming' if state == 'resumable' else 'training'}")
            run_training(cfg, resume=state == "resumable", overwrite=state == "new", progress=progress)
        dirs.append(cfg.run_dir)
    return dirs
