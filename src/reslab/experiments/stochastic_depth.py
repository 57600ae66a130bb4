"""Stochastic depth (Huang et al. 2016): constant depth against linearly decaying survival, same recipe.

Reports validation-error curves, training time per epoch (dropped blocks are not computed, so the
expected saving with p_L = 0.5 is about a quarter), and checks the test-time rule on the trained
network: in evaluation every block's branch is multiplied by its p_l, deterministically.

References:
    Huang, Sun, Liu, Sedra, Weinberger. Deep Networks with Stochastic Depth. ECCV 2016.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, TextIO

import torch

from reslab.analyze import analysis_batch, load_run, write_json
from reslab.config import RunConfig
from reslab.experiments.degradation import final_train_error
from reslab.experiments.runner import run_all
from reslab.report.html import build_report, read_jsonl


def check_test_time_scaling(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """Largest difference between each block's eval output and p_l F(x) + shortcut(x) (ReLU'd in the
    post-activation form), and whether evaluation is deterministic."""
    model.eval()
    worst, deterministic = 0.0, True
    inputs: dict[int, torch.Tensor] = {}
    blocks = model.blocks()
    hooks = [b.register_forward_pre_hook(lambda m, a, i=i: inputs.setdefault(i, a[0])) for i, b in enumerate(blocks)]
    with torch.no_grad():
        out1, out2 = model(x), model(x)
        deterministic = bool(torch.equal(out1, out2))
        for h in hooks:
            h.remove()
        for i, b in enumerate(blocks):
            h_in = inputs[i]
            expected = b.drop.p * b.residual(h_in) + b.shortcut(h_in)
            expected = torch.relu(expected) if b.post_activation else expected
            worst = max(worst, float((b(h_in) - expected).abs().max()))
    return {"deterministic": deterministic, "max_abs_difference": worst,
            "survival_probs": [b.drop.p for b in blocks]}


def run_stochastic_depth(base: RunConfig, model: str, root: Path, *, survival_prob: float = 0.5,
                         progress: TextIO | None = None, log: Callable[[str], None] = lambda s: None) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    constant, decay = f"{model}_constant", f"{model}_sd{survival_prob:g}"
    entries = [(constant, model, {"survival_prob": 1.0}), (decay, model, {"survival_prob": survival_prob})]
    run_dirs = run_all(base, entries, root, progress=progress, log=log)
    table = []
    for name, d in zip((constant, decay), run_dirs):
        s = json.loads((d / "summary.json").read_text())
        rows = read_jsonl(d / "metrics.jsonl")
        epochs = max(s["epochs"], 1e-9)
        train_err = final_train_error(rows)
        table.append({"run": name, "survival_prob (p_L)": 1.0 if name == constant else survival_prob,
                      "final train error %": round(100 * train_err, 2) if train_err is not None else None,
                      "final val error %": round(100 * s["final"].get("val_error", float("nan")), 2),
                      "best val error %": round(100 * (s.get("best_val_error") or float("nan")), 2),
                      "seconds per epoch": round(s["train_time_s"] / epochs, 1)})
    saving = 1 - table[1]["seconds per epoch"] / table[0]["seconds per epoch"]
    cfg, trained, state = load_run(run_dirs[1])
    x, _, _ = analysis_batch(cfg.data, n=64, stats=state.get("data_stats"))
    scaling = check_test_time_scaling(trained, x)
    write_json(root / "analysis" / "test_time_scaling.json", scaling)
    exp = {"title": f"Stochastic depth: {model}, constant depth versus linear decay to p_L = {survival_prob:g}",
           "kind": "stochastic-depth", "runs": [constant, decay], "table": table,
           "panels": [("constant depth versus stochastic depth", [constant, decay])],
           "verdict": [f"Training time per epoch drops by {100 * saving:.0f}% with stochastic depth "
                       f"(the expected saving for p_L = {survival_prob:g} and linear decay is about "
                       f"{100 * (1 - (1 + survival_prob) / 2):.0f}% of the blocks' compute).",
                       f"Validation error: {table[0]['final val error %']}% constant, "
                       f"{table[1]['final val error %']}% stochastic depth.",
                       f"Test-time rule: evaluation is {'deterministic' if scaling['deterministic'] else 'NOT deterministic'}"
                       f" and each block equals ReLU(p_l F(x) + x) to {scaling['max_abs_difference']:.1e}."],
           "description": f"Two runs of {model} with the same recipe and seed on {base.data.dataset}."}
    write_json(root / "experiment.json", exp)
    exp["report"] = str(build_report(root))
    return exp
