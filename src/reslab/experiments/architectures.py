"""Architectures against vanishing gradients, side by side: plain, ResNet, DenseNet-BC, GoogLeNet.

Same data, recipe and seed; reports error, parameters, FLOPs, training speed and each network's
gradient flow. GoogLeNet trains with its two auxiliary classifiers weighted ``aux_weight`` (0.3, as
Szegedy et al.; 0 switches them off).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from reslab.analysis.gradients import gradient_verdict
from reslab.config import RunConfig
from reslab.errors import ConfigError
from reslab.experiments import Context, register
from reslab.experiments.common import check_analysis, finish, pct, run_figures
from reslab.models import describe
from reslab.rundir import ExperimentDir
from reslab.workflows.analyze import gradients_of_runs
from reslab.workflows.sweep import Entry, train_sweep


@dataclass(frozen=True)
class ArchitecturesOptions:
    aux_weight: float = 0.3  # GoogLeNet's auxiliary losses (0: no auxiliary heads)
    analysis_batch: int = 0  # held-out images a batch of the gradient analysis; 0: the training batch
    analysis_draws: int = 3  # held-out batches the gradient ratios are the median over

    def check(self) -> None:
        check_analysis(self.analysis_batch, self.analysis_draws)
        if self.aux_weight < 0:
            raise ConfigError(f"experiment.aux_weight must not be negative, got {self.aux_weight}")

    def entries(self) -> list[Entry]:
        return [Entry("plain20", "plain20"), Entry("resnet20", "resnet20"),
                Entry("densenet_bc_100_12", "densenet_bc_100_12"),
                Entry("googlenet", "googlenet", {"small_input": True, "aux_logits": self.aux_weight > 0,
                                                 "aux_weight": self.aux_weight})]


@register("architectures", ArchitecturesOptions,
          recipe="configs/cifar10_architectures.toml",
          summary="plain, ResNet, DenseNet-BC, GoogLeNet side by side: error, parameters, FLOPs, speed, gradient flow")
def run_architectures(base: RunConfig, options: ArchitecturesOptions, folder: ExperimentDir, ctx: Context) -> dict:
    entries = options.entries()
    if ctx.jobs > 1:
        ctx.log(f"note: --jobs {ctx.jobs} not used: this experiment compares the networks' images/s, which"
                " runs trained side by side would distort; it trains them one at a time")
    runs = train_sweep(base, entries, folder, progress=ctx.progress, log=ctx.log)
    table = []
    for entry, run in zip(entries, runs):
        f = run_figures(run)
        speeds = [r["images_per_sec"] for r in run.read_metrics() if r.get("kind") == "train" and r.get("images_per_sec")]
        info = describe(entry.model, **{k: v for k, v in entry.options.items() if k == "small_input"})
        table.append({"network": entry.name, "params": f["summary"]["params"], "FLOPs (M)": round(info["flops"] / 1e6, 1),
                      "final train error %": pct(f["train_error"]),
                      "final val error %": pct(f["final"].get("val_error", float("nan"))),
                      "images/s (train)": round(statistics.median(speeds)) if speeds else None,
                      "train time s": f["summary"]["train_time_s"]})
    flows = gradients_of_runs(runs, batch=options.analysis_batch or base.data.batch_size,
                              draws=options.analysis_draws)
    folder.write_analysis("gradients", {"flows": flows, "verdict": gradient_verdict(flows)})
    names = [e.name for e in entries]
    best = min(table, key=lambda r: r["final val error %"])
    return finish(folder, {
        "title": "Architectures against vanishing gradients", "kind": "architectures", "runs": names,
        "table": table, "panels": [("networks", names)],
        "verdict": [f"Lowest final validation error: {best['network']} ({best['final val error %']}%).",
                    gradient_verdict(flows)],
        "description": f"{len(entries)} networks, one recipe and seed, on {base.data.dataset}; GoogLeNet with "
                       f"auxiliary losses weighted {options.aux_weight:g}."})
