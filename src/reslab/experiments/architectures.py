"""Architectures against vanishing gradients, side by side: plain, ResNet, DenseNet-BC, GoogLeNet.

Same data, recipe and seed; reports error, parameters, FLOPs, training speed and each network's
gradient flow. GoogLeNet trains with its two auxiliary classifiers weighted ``aux_weight`` (0.3, as
Szegedy et al.; 0 switches them off).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from reslab.analysis.gradients import gradient_verdict
from reslab.config import RunConfig
from reslab.errors import ConfigError
from reslab.experiments import Context, register
from reslab.experiments.common import (check_analysis, earlier_result, finish, flow_labels, measured_or_kept,
                                      pct, positive, run_figures, valid_flow)
from reslab.models import describe
from reslab.rundir import ExperimentDir
from reslab.workflows.analyze import gradients_of_runs
from reslab.workflows.sweep import Entry, train_sweep


@dataclass(frozen=True)
class ArchitecturesOptions:
    aux_weight: float = 0.3  # GoogLeNet's auxiliary losses (0: no auxiliary heads)
    analysis_batch: int = 0  # held-out images a batch of the gradient analysis; 0: the training batch
    analysis_draws: int = 3  # held-out batches the gradient ratios are the median over
    speeds: str = ""  # images/s measured on an idle machine (benchmarks/architectures_speed.py --json); "": the runs'

    def check(self) -> None:
        check_analysis(self.analysis_batch, self.analysis_draws)
        if self.aux_weight < 0:
            raise ConfigError(f"experiment.aux_weight must not be negative, got {self.aux_weight}")
        self.read_speeds([e.name for e in self.entries()], "auto")  # the file, before any data is read

    def entries(self) -> list[Entry]:
        return [Entry("plain20", "plain20"), Entry("resnet20", "resnet20"),
                Entry("densenet_bc_100_12", "densenet_bc_100_12"),
                Entry("googlenet", "googlenet", {"small_input": True, "aux_logits": self.aux_weight > 0,
                                                 "aux_weight": self.aux_weight})]

    def read_speeds(self, names: list[str], precision: str) -> dict | None:
        """The idle-machine benchmark's record (None without one), checked before any training."""
        if not self.speeds:
            return None
        where = f"experiment.speeds: {self.speeds}"
        try:
            record = json.loads(Path(self.speeds).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{where}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"{where} is not a readable JSON file ({e})") from None
        figures = record.get("images/s") if isinstance(record, dict) else None
        if not isinstance(figures, dict):
            raise ConfigError(f'{where} has no "images/s" table (write it with benchmarks/architectures_speed.py --json)')
        measured = record.get("precision", precision)
        if precision != "auto" and measured != precision:
            raise ConfigError(f"{where} was measured in {measured}; these runs train in {precision}")
        missing = [n for n in names if not positive(figures.get(n))]
        if missing:
            raise ConfigError(f"{where} has no positive images/s for {', '.join(missing)}")
        return record


def speed_cell(name: str, metrics: list[dict], speeds: dict | None) -> tuple[str, float | None]:
    """The table's images/s column: the idle benchmark's figure when there is one, else the run's median as logged
    (which counts whatever shared the machine with it)."""
    if speeds:
        v = float(speeds["images/s"][name])
        return "images/s (idle machine)", round(v) if v >= 100 else round(v, 1)
    logged = [r["images_per_sec"] for r in metrics if r.get("kind") == "train" and r.get("images_per_sec")]
    return "images/s (train)", round(statistics.median(logged)) if logged else None


@register("architectures", ArchitecturesOptions,
          recipe="configs/cifar10_architectures.toml",
          summary="plain, ResNet, DenseNet-BC, GoogLeNet side by side: error, parameters, FLOPs, speed, gradient flow")
def run_architectures(base: RunConfig, options: ArchitecturesOptions, folder: ExperimentDir, ctx: Context) -> dict:
    entries = options.entries()
    speeds = options.read_speeds([e.name for e in entries], base.train.precision)  # before hours of training, not after
    if ctx.jobs > 1:
        ctx.log(f"note: --jobs {ctx.jobs} not used: this experiment compares the networks' images/s, which"
                " runs trained side by side would distort; it trains them one at a time")
    runs = train_sweep(base, entries, folder, progress=ctx.progress, log=ctx.log)
    table = []
    for entry, run in zip(entries, runs):
        f = run_figures(run)
        column, speed = speed_cell(entry.name, run.read_metrics(), speeds)
        info = describe(entry.model, **{k: v for k, v in entry.options.items() if k == "small_input"})
        table.append({"network": entry.name, "params": f["summary"]["params"], "FLOPs (M)": round(info["flops"] / 1e6, 1),
                      "final train error %": pct(f["train_error"]),
                      "final val error %": pct(f["final"].get("val_error", float("nan"))),
                      column: speed,
                      "train time s": f["summary"]["train_time_s"]})
    batch = options.analysis_batch or base.data.batch_size
    flows = measured_or_kept(runs, lambda kept: gradients_of_runs(kept, batch=batch, draws=options.analysis_draws),
                             earlier_result(folder, "gradients", "flows", batch=batch, draws=options.analysis_draws),
                             flow_labels, valid_flow, what="gradient flow", log=ctx.log)
    folder.write_analysis("gradients", {"flows": flows, "batch": batch, "draws": options.analysis_draws,
                                        "verdict": gradient_verdict(flows)})
    names = [e.name for e in entries]
    best = min(table, key=lambda r: r["final val error %"])
    measured = (f" Images/s as measured on an idle machine, not during the runs: {speeds.get('command', options.speeds)}"
                f" ({speeds.get('machine', 'machine not recorded')}, {speeds.get('date', 'date not recorded')}); the "
                "training time is each run's wall clock, which counts whatever shared the machine with it."
                if speeds else "")
    return finish(folder, {
        "title": "Architectures against vanishing gradients", "kind": "architectures", "runs": names,
        "table": table, "panels": [("networks", names)],
        "verdict": [f"Lowest final validation error: {best['network']} ({best['final val error %']}%).",
                    gradient_verdict(flows)],
        "description": f"{len(entries)} networks, one recipe and seed, on {base.data.dataset}; GoogLeNet with "
                       f"auxiliary losses weighted {options.aux_weight:g}.{measured}",
        "speeds": options.speeds or None})
