"""What the experiments share: reading a finished run's figures, checking names, the analyses of runs kept
without their weights, finishing the record."""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable

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


def measured_or_kept(runs: list[RunDir], measure: Callable[[list[RunDir]], dict], earlier: dict | None,
                     labels: Callable[[str], list[str]], valid: Callable[[Any], bool], *, what: str,
                     log: Callable[[str], None]) -> dict:
    """An analysis of finished runs: ``measure`` on those with weights; a run kept without them (a record need not
    carry megabytes of checkpoints) takes its entries from ``earlier``, the folder's previous result of the same
    analysis on the same held-out images (None where there is none or the settings differ), if every one of its
    ``labels`` is there and ``valid``; else it stays in the table and out of this analysis, and the log says so."""
    kept = [r for r in runs if r.best_checkpoint.is_file() or r.last_checkpoint.is_file()]
    measured = measure(kept) if kept else {}
    result: dict = {}
    for run in runs:
        names = labels((run.read_summary() or {}).get("model", run.name))
        if run in kept:
            result.update({k: measured[k] for k in names})
            continue
        old = [(earlier or {}).get(k) for k in names]
        if all(valid(v) for v in old):
            result.update(zip(names, old))
            log(f"{run.name}: no checkpoint; its {what} as measured earlier from its weights")
        else:
            log(f"{run.name}: no checkpoint and no earlier {what} on the same held-out images; left out of it")
    return result


def flow_labels(model: str) -> list[str]:
    """A network's two entries in a gradient analysis."""
    return [f"{model} init", f"{model} trained"]


def positive(v: object) -> bool:
    """A real, finite number above zero (not a bool, not a string that looks like one)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def valid_flow(flow: Any) -> bool:
    return positive(flow.get("ratio_first_last_weight") if isinstance(flow, dict) else None)


def valid_responses(rows: Any) -> bool:
    return isinstance(rows, list) and bool(rows) and all(
        isinstance(r, dict) and isinstance(r.get("std"), (int, float)) and math.isfinite(r["std"]) for r in rows)


def earlier_result(folder: ExperimentDir, kind: str, key: str, **settings: Any) -> dict | None:
    """``key`` of the folder's previous ``kind`` analysis when it was made with these settings (batch, draws)."""
    found = folder.read_analysis(kind)
    if not isinstance(found, dict) or any(found.get(k) != v for k, v in settings.items()):
        return None
    return found.get(key) if isinstance(found.get(key), dict) else None


def finish(folder: ExperimentDir, record: dict) -> dict:
    """Write the experiment's record and report; returns the record with the report's path."""
    from reslab.report.html import build_report

    folder.write(record)
    return {**record, "report": str(build_report(folder.path))}
