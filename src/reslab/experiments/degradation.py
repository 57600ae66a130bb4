"""The degradation problem (He et al. 2016, Figures 1 and 6; Table 6).

Plain and residual twins at several depths, trained with one recipe and seed. A deeper plain network
reaching a *higher training error* than a shallower one is degradation: an optimisation difficulty,
not overfitting. The residual twins should not show it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, TextIO

from reslab.analyze import gradient_verdict, gradients_of_runs, responses_of_runs, responses_verdict, write_json
from reslab.config import RunConfig
from reslab.experiments.runner import run_all
from reslab.report.html import build_report, read_jsonl

# He et al. 2016, Table 6: CIFAR-10 test error (%) of the residual networks (ResNet-110: best of 5 runs;
# mean 6.61 +- 0.16). The paper gives plain-network errors only as curves (Figure 6).
PAPER_TEST_ERROR = {"resnet20": 8.75, "resnet32": 7.51, "resnet44": 7.17, "resnet56": 6.97, "resnet110": 6.43,
                    "resnet1202": 7.93}


def depth_of(name: str) -> int:
    m = re.search(r"(\d+)$", name)
    return int(m.group(1)) if m else 0


def final_train_error(rows: list[dict], tail: float = 0.05) -> float | None:
    """Mean training error over the last ``tail`` of the logged iterations (the end of the curve)."""
    train = [r for r in rows if r.get("kind") == "train"]
    if not train:
        return None
    last = train[-1]["step"]
    window = [r["train_error"] for r in train if r["step"] >= last * (1 - tail)]
    return sum(window) / len(window)


def summarise(run_dirs: list[Path]) -> list[dict]:
    table = []
    for d in run_dirs:
        summary = json.loads((d / "summary.json").read_text())
        rows = read_jsonl(d / "metrics.jsonl")
        final = summary.get("final", {})
        train_err = final_train_error(rows)
        table.append({
            "model": summary["model"], "depth": depth_of(summary["model"]), "params": summary["params"],
            "final train error %": round(100 * train_err, 2) if train_err is not None else None,
            "final val error %": round(100 * final["val_error"], 2) if "val_error" in final else None,
            "best val error %": round(100 * summary["best_val_error"], 2) if summary.get("best_val_error") else None,
            "paper test error %": PAPER_TEST_ERROR.get(summary["model"], "-"),
            "iterations": summary["steps"], "train time s": summary["train_time_s"],
        })
    return table


def verdict(table: list[dict]) -> list[str]:
    lines = []
    for family, label in (("plain", "plain"), ("resnet", "residual")):
        rows = sorted((r for r in table if r["model"].startswith(family)), key=lambda r: r["depth"])
        if len(rows) < 2:
            continue
        shallow, deep = rows[0], rows[-1]
        a, b = shallow["final train error %"], deep["final train error %"]
        if family == "plain":
            holds = b > a
            lines.append(f"Plain: {deep['model']} ends with {b:.2f}% training error against {shallow['model']}'s "
                         f"{a:.2f}%: " + ("the deeper plain network trains worse (degradation)." if holds else
                                          "no degradation in this budget."))
        else:
            holds = b <= a
            lines.append(f"Residual: {deep['model']} ends with {b:.2f}% training error against {shallow['model']}'s "
                         f"{a:.2f}%: " + ("the deeper residual network trains as well or better." if holds else
                                          "the deeper residual network trains worse here."))
    by_model = {r["model"]: r for r in table}
    for r in sorted(table, key=lambda r: r["depth"]):
        twin = by_model.get("resnet" + r["model"][len("plain"):]) if r["model"].startswith("plain") else None
        if twin is not None:
            a, b = r["final train error %"], twin["final train error %"]
            lines.append(f"Twins at depth {r['depth']}: plain {a:.2f}%, residual {b:.2f}% training error; "
                         f"the shortcut alone {'lowers' if b < a else 'does not lower'} it.")
    return lines


def run_degradation(base: RunConfig, models: list[str], root: Path, *, progress: TextIO | None = None,
                    log: Callable[[str], None] = lambda s: None, analysis_batch: int = 256,
                    title: str = "Degradation: plain versus residual networks", jobs: int = 1) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    run_dirs = run_all(base, models, root, progress=progress, log=log, jobs=jobs)
    log("analysing gradients and layer responses")
    flows = gradients_of_runs(run_dirs, batch=analysis_batch)
    write_json(root / "analysis" / "gradients.json", {"flows": flows, "verdict": gradient_verdict(flows)})
    responses = responses_of_runs(run_dirs, batch=analysis_batch)
    write_json(root / "analysis" / "responses.json", {"responses": responses, "verdict": responses_verdict(responses)})
    table = summarise(run_dirs)
    plain = [m for m in sorted(models, key=depth_of) if m.startswith("plain")]
    res = [m for m in sorted(models, key=depth_of) if not m.startswith("plain")]
    exp = {"title": title, "kind": "degradation", "runs": models, "table": table,
           "panels": [p for p in (("plain networks", plain), ("residual networks", res)) if p[1]],
           "verdict": verdict(table) + [gradient_verdict(flows)],
           "description": f"{len(models)} networks trained with the same recipe and seed on {base.data.dataset} "
                          f"(validation: {base.data.val_size} held-out images)."}
    write_json(root / "experiment.json", exp)
    exp["report"] = str(build_report(root))
    return exp
