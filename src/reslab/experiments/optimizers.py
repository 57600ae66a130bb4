"""The lecture's optimizers on a real network: the same model, data and budget, each at its usual rate."""

from __future__ import annotations

from dataclasses import dataclass, replace

from reslab.config import RunConfig
from reslab.errors import ConfigError
from reslab.experiments import Context, register
from reslab.experiments.common import finish, pct, run_figures
from reslab.rundir import ExperimentDir
from reslab.workflows.sweep import train_configs

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


@dataclass(frozen=True)
class OptimizersOptions:
    rules: tuple[str, ...] = ("sgd", "momentum", "rmsprop", "adam", "adamw")

    def check(self) -> None:
        for rule in self.rules:
            if rule not in USUAL:
                raise ConfigError(f"unknown optimizer {rule!r}; known: {', '.join(USUAL)}")


@register("optimizers", OptimizersOptions, recipe="configs/cifar10_optimizers.toml",
          summary="SGD, momentum, RMSProp, Adam, AdamW at their usual rates on one budget")
def run_optimizers(base: RunConfig, options: OptimizersOptions, folder: ExperimentDir, ctx: Context) -> dict:
    configs = [replace(base, name=n, out_dir=str(folder.runs_root), experiment={},
                       optim=replace(base.optim, name=n, **USUAL[n])) for n in options.rules]
    runs = train_configs(configs, progress=ctx.progress, log=ctx.log, jobs=ctx.jobs)
    table = []
    for cfg, run in zip(configs, runs):
        f = run_figures(run)
        table.append({"optimizer": cfg.optim.name, "lr": cfg.optim.lr, "weight decay": cfg.optim.weight_decay,
                      "final train error %": pct(f["train_error"]),
                      "final val error %": pct(f["final"].get("val_error", float("nan"))),
                      "best val error %": pct(f["summary"].get("best_val_error") or float("nan")),
                      "train time s": f["summary"]["train_time_s"]})
    best = min(table, key=lambda r: r["final val error %"])
    return finish(folder, {
        "title": f"Optimizers on {base.model.name}: one budget, each rule at its usual rate",
        "kind": "optimizers", "runs": list(options.rules), "table": table,
        "panels": [("optimizers", list(options.rules))],
        "verdict": [f"Lowest final validation error: {best['optimizer']} ({best['final val error %']}%)."],
        "description": f"{base.model.name} on {base.data.dataset}, schedule {base.schedule.name}, "
                       f"{base.train.epochs or base.train.steps} {'epochs' if base.train.epochs else 'steps'} each."})
