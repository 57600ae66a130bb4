"""Stochastic depth (Huang et al. 2016): constant depth against linearly decaying survival, same recipe.

Reports validation-error curves, training time per epoch (dropped blocks are not computed, so the
expected saving with p_L = 0.5 is about a quarter), and checks the test-time rule on the trained
network: in evaluation every block's branch is multiplied by its p_l, deterministically.

References:
    Huang, Sun, Liu, Sedra, Weinberger. Deep Networks with Stochastic Depth. ECCV 2016.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reslab.config import RunConfig
from reslab.errors import ConfigError
from reslab.experiments import Context, register
from reslab.experiments.common import check_models, finish, pct, run_figures
from reslab.models import model_info, shortcut_blocks
from reslab.rundir import ExperimentDir
from reslab.workflows.restore import analysis_batch, restore_run
from reslab.workflows.sweep import Entry, train_sweep


@dataclass(frozen=True)
class StochasticDepthOptions:
    model: str = "resnet110"
    survival_prob: float = 0.5  # p_L of the decayed run

    def check(self) -> None:
        check_models([self.model])
        if not model_info(self.model).residual:
            raise ConfigError(f"experiment.model: stochastic depth drops residual branches; {self.model} has none")
        if not 0 < self.survival_prob <= 1:
            raise ConfigError(f"experiment.survival_prob must be in (0, 1], got {self.survival_prob}")


def check_test_time_scaling(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """Largest difference between each block's eval output and p_l F(x) + shortcut(x) (ReLU'd in the
    post-activation form), and whether evaluation is deterministic."""
    model.eval()
    inputs: dict[int, torch.Tensor] = {}
    blocks = shortcut_blocks(model, "test-time check of stochastic depth")
    hooks = [b.register_forward_pre_hook(lambda m, a, i=i: inputs.setdefault(i, a[0])) for i, b in enumerate(blocks)]
    worst = 0.0
    with torch.no_grad():
        out1, out2 = model(x), model(x)
        deterministic = bool(torch.equal(out1, out2))
        for h in hooks:
            h.remove()
        for i, b in enumerate(blocks):
            h_in = inputs[i]
            expected = b.survival_prob * b.residual(h_in) + b.shortcut(h_in)
            expected = torch.relu(expected) if b.post_activation else expected
            worst = max(worst, float((b(h_in) - expected).abs().max()))
    return {"deterministic": deterministic, "max_abs_difference": worst,
            "survival_probs": [b.survival_prob for b in blocks]}


@register("stochastic-depth", StochasticDepthOptions,
          recipe="configs/cifar10_stochastic_depth.toml",
          summary="constant depth versus linear decay to p_L: curves, time per epoch, the test-time rule checked")
def run_stochastic_depth(base: RunConfig, options: StochasticDepthOptions, folder: ExperimentDir,
                         ctx: Context) -> dict:
    model, survival_prob = options.model, options.survival_prob
    constant, decay = f"{model}_constant", f"{model}_sd{survival_prob:g}"
    entries = [Entry(constant, model, {"survival_prob": 1.0}), Entry(decay, model, {"survival_prob": survival_prob})]
    if ctx.jobs > 1:
        ctx.log(f"note: --jobs {ctx.jobs} not used: this experiment compares the runs' time per epoch, which"
                " runs trained side by side would distort; it trains them one at a time")
    runs = train_sweep(base, entries, folder, progress=ctx.progress, log=ctx.log)
    table = []
    for name, run in zip((constant, decay), runs):
        f = run_figures(run)
        s = f["summary"]
        epochs = max(s["epochs"], 1e-9)
        table.append({"run": name, "survival_prob (p_L)": 1.0 if name == constant else survival_prob,
                      "final train error %": pct(f["train_error"]),
                      "final val error %": pct(f["final"].get("val_error", float("nan"))),
                      "best val error %": pct(s.get("best_val_error") or float("nan")),
                      "seconds per epoch": round(s["train_time_s"] / epochs, 1)})
    saving = 1 - table[1]["seconds per epoch"] / table[0]["seconds per epoch"]
    restored = restore_run(runs[1])
    x, _, _ = analysis_batch(restored.config.data, n=64, stats=restored.stats)
    scaling = check_test_time_scaling(restored.model, x)
    folder.write_analysis("test_time_scaling", scaling)
    return finish(folder, {
        "title": f"Stochastic depth: {model}, constant depth versus linear decay to p_L = {survival_prob:g}",
        "kind": "stochastic-depth", "runs": [constant, decay], "table": table,
        "panels": [("constant depth versus stochastic depth", [constant, decay])],
        "verdict": [f"Training time per epoch drops by {100 * saving:.0f}% with stochastic depth "
                    f"(the expected saving for p_L = {survival_prob:g} and linear decay is about "
                    f"{100 * (1 - (1 + survival_prob) / 2):.0f}% of the blocks' compute).",
                    f"Validation error: {table[0]['final val error %']}% constant, "
                    f"{table[1]['final val error %']}% stochastic depth.",
                    f"Test-time rule: evaluation is {'deterministic' if scaling['deterministic'] else 'NOT deterministic'}"
                    f" and each block equals ReLU(p_l F(x) + x) to {scaling['max_abs_difference']:.1e}."],
        "description": f"Two runs of {model} with the same recipe and seed on {base.data.dataset}."})
