"""Run a set of trainings that share a recipe: in sequence or in parallel processes, each resumable,
finished ones skipped."""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Callable, TextIO

from reslab.config import RunConfig, as_dict, config_from_dict
from reslab.runner import run_training


def run_config_for(base: RunConfig, model: str, root: Path, *, name: str | None = None,
                   options: dict | None = None) -> RunConfig:
    """``base``'s recipe for one network of an experiment, in ``root/runs/<name>``."""
    model_cfg = replace(base.model, name=model, options={**base.model.options, **(options or {})})
    return replace(base, name=name or model, out_dir=str(root / "runs"), model=model_cfg)


def status(cfg: RunConfig) -> str:
    """``finished`` (summary for this very config), ``resumable`` (a checkpoint) or ``new``."""
    summary = cfg.run_dir / "summary.json"
    if summary.is_file() and json.loads(summary.read_text()).get("config") == as_dict(cfg):
        return "finished"
    if (cfg.run_dir / "checkpoints" / "last.pt").is_file():
        return "resumable"
    return "new"


def _train_in_worker(cfg_dict: dict, state: str, threads: int) -> str:
    """One run in a worker process, with its share of the cores."""
    import torch

    torch.set_num_threads(threads)
    cfg = config_from_dict(cfg_dict)
    run_training(cfg, resume=state == "resumable", overwrite=state == "new")
    return cfg.name


def run_all(base: RunConfig, models: list[str | tuple[str, str, dict]], root: Path, *,
            progress: TextIO | None = None, log: Callable[[str], None] = lambda s: None, jobs: int = 1) -> list[Path]:
    """Train every model with ``base``'s recipe under ``root/runs/<name>``; returns the run folders.

    An entry is a model name, or ``(run name, model name, builder options)``.
    """
    configs = []
    for entry in models:
        name, model, options = (entry, entry, {}) if isinstance(entry, str) else entry
        configs.append(run_config_for(base, model, root, name=name, options=options))
    return run_configs(configs, progress=progress, log=log, jobs=jobs)


def run_configs(configs: list[RunConfig], *, progress: TextIO | None = None,
                log: Callable[[str], None] = lambda s: None, jobs: int = 1) -> list[Path]:
    """Train each config (skipping finished runs, resuming killed ones); returns the run folders.

    ``jobs > 1`` trains that many runs at once in worker processes, the machine's cores split between
    them (on a 2-core CPU that is slower than one after the other: keep 1 there).
    """
    if jobs > 1:
        pending = [(cfg, status(cfg)) for cfg in configs]
        todo = [(cfg, st) for cfg, st in pending if st != "finished"]
        for cfg, st in pending:
            log(f"{cfg.name}: " + {"finished": "finished earlier, skipped", "resumable": "resuming",
                                   "new": "training"}[st])
        threads = max(1, (os.cpu_count() or 1) // jobs)
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no shared torch thread pools
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = [pool.submit(_train_in_worker, as_dict(cfg), st, threads) for cfg, st in todo]
            for f in futures:
                log(f"{f.result()}: done")
        return [cfg.run_dir for cfg in configs]
    dirs = []
    for i, cfg in enumerate(configs, start=1):
        name, total = cfg.name, len(configs)
        state = status(cfg)
        if state == "finished":
            log(f"[{i}/{total}] {name}: finished earlier, skipped")
        else:
            log(f"[{i}/{total}] {name}: {'resuming' if state == 'resumable' else 'training'}")
            run_training(cfg, resume=state == "resumable", overwrite=state == "new", progress=progress)
        dirs.append(cfg.run_dir)
    return dirs
