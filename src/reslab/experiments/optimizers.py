"""The lecture's optimizers on a real network: the same model, data and budget, each at its usual rate."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable, TextIO

from reslab.config import RunConfig
from reslab.experiments.degradation import final_train_error
from reslab.experiments.runner import run_configs
from reslab.analyze import write_json
from reslab.report.html import build_report, read_jsonl

# Rates and weight decay commonly used with each rule on CIFAR ResNets.
USUAL = {
    "sgd": {"lr": 0.1, "weight_decay": 5e-4},
    "momentum": {"lr": 0.1, "weight_decay": 5e-4},
    "nesterov": {"lr": 0.1, "weight_decay": 5e-4},
    "adagrad": {"lr": 0.05, "weight_decay": 5e-4},
    "rmsprop": {"lr": 1e-3, "weight_decay": 5e-4},
    "adam": {"lr": 1e-3, "weight_decay": 5e-4},
    "adamw": {"lr": 1e-3, "weight_decay": 5e-2},
}


def run_optimizers(base: RunConfig, names: list[str], root: Path, *, progress: TextIO | None = None,
                   log: Callable[[str], None] = lambda s: None) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    configs = [replace(base, name=n, out_dir=str(root / "runs"), optim=replace(base.optim, name=n, **USUAL[n]))
               for n in names]
    run_dirs = run_configs(configs, progress=progress, log=log)
    table = []
    for cfg, d in zip(configs, run_dirs):
        s = json.loads((d / "summary.json").read_text())
        train_err = final_train_error(read_jsonl(d / "metrics.jsonl"))
        table.append({"optimizer": cfg.optim.name, "lr": cfg.optim.lr, "weight decay": cfg.optim.weight_decay,
                      "final train error %": round(100 * train_err, 2) if train_err is not None else None,
                      "final val error %": round(100 * s["final"].get("val_error", float("nan")), 2),
                      "best val error %": round(100 * (s.get("best_val_error") or float("nan")), 2),
                      "train time s": s["train_time_s"]})
    best = min(table, key=lambda r: r["final val error %"])
    exp = {"title": f"Optimizers on {base.model.name}: one budget, each rule at its usual rate",
           "kind": "optimizers", "runs": names, "table": table,
           "panels": [("optimizers", names)],
           "verdict": [f"Lowest final validation error: {best['optimizer']} ({best['final val error %']}%)."],
           "description": f"{base.model.name} on {base.data.dataset}, schedule {base.schedule.name}, "
                          f"{base.train.epochs or base.train.steps} {'epochs' if base.train.epochs else 'steps'} each."}
    write_json(root / "experiment.json", exp)
    exp["report"] = str(build_report(root))
    return exp
