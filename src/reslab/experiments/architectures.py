"""Architectures against vanishing gradients, side by side: plain, ResNet, DenseNet-BC, GoogLeNet.

Same data, recipe and seed; reports error, parameters, FLOPs, training speed and each network's
gradient flow. GoogLeNet trains with its two auxiliary classifiers weighted ``aux_weight`` (0.3, as
Szegedy et al.; 0 switches them off).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Callable, TextIO

from reslab.analyze import gradient_verdict, gradients_of_runs, write_json
from reslab.config import RunConfig
from reslab.experiments.degradation import final_train_error
from reslab.experiments.runner import run_all
from reslab.models import describe
from reslab.report.html import build_report, read_jsonl

DEFAULT = [("plain20", "plain20", {}), ("resnet20", "resnet20", {}),
           ("densenet_bc_100_12", "densenet_bc_100_12", {}),
           ("googlenet", "googlenet", {"small_input": True})]


def entries(aux_weight: float = 0.3) -> list[tuple[str, str, dict]]:
    out = []
    for name, model, options in DEFAULT:
        if model == "googlenet":
            options = {**options, "aux_logits": aux_weight > 0, "aux_weight": aux_weight}
        out.append((name, model, options))
    return out


def run_architectures(base: RunConfig, root: Path, *, aux_weight: float = 0.3,
                      runs: list[tuple[str, str, dict]] | None = None, progress: TextIO | None = None,
                      log: Callable[[str], None] = lambda s: None, analysis_batch: int = 128) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    runs = runs or entries(aux_weight)
    run_dirs = run_all(base, runs, root, progress=progress, log=log)
    table = []
    for (name, model, options), d in zip(runs, run_dirs):
        s = json.loads((d / "summary.json").read_text())
        rows = read_jsonl(d / "metrics.jsonl")
        speeds = [r["images_per_sec"] for r in rows if r.get("kind") == "train" and r.get("images_per_sec")]
        info = describe(model, **{k: v for k, v in options.items() if k == "small_input"})
        train_err = final_train_error(rows)
        table.append({"network": name, "params": s["params"], "FLOPs (M)": round(info["flops"] / 1e6, 1),
                      "final train error %": round(100 * train_err, 2) if train_err is not None else None,
                      "final val error %": round(100 * s["final"].get("val_error", float("nan")), 2),
                      "images/s (train)": round(statistics.median(speeds)) if speeds else None,
                      "train time s": s["train_time_s"]})
    flows = gradients_of_runs(run_dirs, batch=analysis_batch)
    write_json(root / "analysis" / "gradients.json", {"flows": flows, "verdict": gradient_verdict(flows)})
    names = [name for name, _, _ in runs]
    best = min(table, key=lambda r: r["final val error %"])
    exp = {"title": "Architectures against vanishing gradients", "kind": "architectures", "runs": names,
           "table": table, "panels": [("networks", names)],
           "verdict": [f"Lowest final validation error: {best['network']} ({best['final val error %']}%).",
                       gradient_verdict(flows)],
           "description": f"{len(runs)} networks, one recipe and seed, on {base.data.dataset}; GoogLeNet with "
                          f"auxiliary losses weighted {aux_weight:g}."}
    write_json(root / "experiment.json", exp)
    exp["report"] = str(build_report(root))
    return exp
