"""What the experiments share: reading a finished run's figures, checking names, finishing the record."""

from __future__ import annotations

import re
from typing import Any, Iterable

from reslab.errors import ConfigError
from reslab.models import list_models
from reslab.rundir import ExperimentDir, RunDir


def final_train_error(rows: list[dict], tail: float = 0.05) -> float | None:
    """Mean training error over the last ``tail`` of the logged iterations (the end of the curve)."""
    train = [r for r in rows if r.get("kind") == "train"]
    if not train:
        return None
    last = train[-1]["step"]
    window = [r["train_error"] for r in train if r["step"] >= last * (1 - tail)]
    return sum(window) / len(window)


def training_images(summary: dict, batch: int) -> int:
    """How many images a run trained on: the summary's count (``train_images``); in a summary from before it
    was written, the count its data description gives ("45,000 train / ..."), else the images an epoch's
    steps drew (a batch short of the set at most: the last partial batch is dropped)."""
    if isinstance(summary.get("train_images"), int):
        return summary["train_images"]
    found = re.search(r"([\d,]+) train /", summary.get("dataset", ""))
    return int(found.group(1).replace(",", "")) if found else round(summary["steps"] * batch / summary["epochs"])


def pct(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 2)


def run_figures(run: RunDir) -> dict[str, Any]:
    """A finished run's summary plus its final training error (from its metrics)."""
    summary = run.read_summary() or {}
    return {"summary": summary, "final": summary.get("final", {}),
            "train_error": final_train_error(run.read_metrics())}


def check_models(names: Iterable[str]) -> None:
    known = set(list_models())
    for name in names:
        if name not in known:
            raise ConfigError(f"unknown model {name!r} in experiment options")


def check_analysis(batch: int, draws: int) -> None:
    """The gradient analysis's batch (0: the training batch) and number of batches."""
    if not isinstance(batch, int) or batch < 0:
        raise ConfigError(f"experiment.analysis_batch must be 0 (the training batch) or more, got {batch!r}")
    if not isinstance(draws, int) or draws < 1:
        raise ConfigError(f"experiment.analysis_draws must be a whole number of at least 1, got {draws!r}")


def finish(folder: ExperimentDir, record: dict) -> dict:
    """Write the experiment's record and report; returns the record with the report's path."""
    from reslab.report.html import build_report

    folder.write(record)
    return {**record, "report": str(build_report(folder.path))}
