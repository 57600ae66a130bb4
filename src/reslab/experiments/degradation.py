"""The degradation problem (He et al. 2016, Figures 1 and 6).

Plain and residual twins at several depths, trained with one recipe and seed. A deeper plain network
reaching a *higher training error* than a shallower one is degradation: an optimisation difficulty,
not overfitting. The residual twins should not show it.
"""

from __future__ import annotations

from dataclasses import dataclass

from reslab.analysis.gradients import gradient_verdict
from reslab.analysis.responses import responses_verdict
from reslab.config import RunConfig
from reslab.experiments import Context, register
from reslab.experiments.common import (check_analysis, check_models, earlier_result, finish, flow_labels,
                                      measured_or_kept, pct, run_figures, valid_flow, valid_responses)
from reslab.models import model_info
from reslab.rundir import ExperimentDir, RunDir
from reslab.workflows.analyze import gradients_of_runs, responses_of_runs
from reslab.workflows.sweep import train_sweep

# He et al. 2016, Table 6: CIFAR-10 test error (%) of the residual networks (ResNet-110: best of 5 runs;
# mean 6.61 +- 0.16). The paper gives plain-network errors only as curves (Figure 6).
PAPER_TEST_ERROR = {"resnet20": 8.75, "resnet32": 7.51, "resnet44": 7.17, "resnet56": 6.97, "resnet110": 6.43,
                    "resnet1202": 7.93}

# What ``reslab demo`` runs: this experiment in small, on the embedded CIFAR-10 sample.
# The demo fits about 3 minutes on a 2-core laptop CPU without bf16 (fp32, AVX2): the sample's images
# averaged down to 16x16 (the networks are unchanged; four times less work a step than at 32x32), five
# epochs of 4,500 (175 steps; six took 2:47-3:45 on that machine from one day to the next, five took
# 2:50-2:59 on a day six took 3:36, with one verdict for three seeds). ``reslab demo --full`` keeps them at
# 32x32 (four times longer).
DEMO_RECIPE = {
    "name": "demo",
    "data": {"dataset": "sample", "val_size": 500, "batch_size": 128, "image_size": 16},
    "model": {"name": "resnet20"},
    "optim": {"name": "momentum", "lr": 0.1, "weight_decay": 1e-4},
    # A one-epoch linear warm-up from 0.01: without it lr 0.1 throws resnet56 off in its first steps
    # (the loss jumps from 2.9 to 8) and 175 steps are too few to recover; He et al. warm up their
    # deepest networks the same way.
    "schedule": {"name": "cosine", "warmup_steps": 35, "warmup_lr": 0.01},
    "train": {"epochs": 5, "log_every": 7},
    # The gradient ratios: the median over 3 held-out batches (nearly disjoint among the 500 images) of the
    # size the networks trained with (the experiment's default), so that they are the gradients the optimizer
    # saw. A first layer's gradient norm on a batch holds noise that shrinks with the batch: on 256 images a
    # barely trained plain56's first/last ratio came out 0.078 where on 128 it was 0.19 (seed 1).
    "experiment": {"models": ["plain20", "plain56", "resnet20", "resnet56"], "analysis_draws": 3,
                   "title": "reslab demo: degradation on the embedded CIFAR-10 sample"},
}


@dataclass(frozen=True)
class DegradationOptions:
    models: tuple[str, ...] = ("plain20", "plain56", "resnet20", "resnet56")
    analysis_batch: int = 0  # held-out images a batch of the gradient and response analyses; 0: the training batch
    analysis_draws: int = 5  # held-out batches the gradient ratios are the median over
    title: str = "Degradation: plain versus residual networks"

    def check(self) -> None:
        check_models(self.models)
        check_analysis(self.analysis_batch, self.analysis_draws)


def depth_of(name: str) -> int:
    return model_info(name).depth or 0


def summarise(runs: list[RunDir]) -> list[dict]:
    table = []
    for run in runs:
        f = run_figures(run)
        s = f["summary"]
        table.append({
            "model": s["model"], "depth": depth_of(s["model"]), "params": s["params"],
            "final train error %": pct(f["train_error"]), "final val error %": pct(f["final"].get("val_error")),
            "best val error %": pct(s.get("best_val_error")),
            "paper test error %": PAPER_TEST_ERROR.get(s["model"], "-"),
            "iterations": s["steps"], "precision": s.get("precision", "-"), "train time s": s["train_time_s"],
        })
    return table


def verdict(table: list[dict]) -> list[str]:
    lines = []
    for residual, label in ((False, "Plain"), (True, "Residual")):
        rows = sorted((r for r in table if model_info(r["model"]).residual == residual), key=lambda r: r["depth"])
        if len(rows) < 2:
            continue
        shallow, deep = rows[0], rows[-1]
        a, b = shallow["final train error %"], deep["final train error %"]
        if a is None or b is None:  # a run too short to log a training step: nothing to compare
            lines.append(f"{label}: no training error logged for {shallow['model'] if a is None else deep['model']} "
                         "(the run ended before its first logged step): no comparison.")
        elif not residual:
            lines.append(f"Plain: {deep['model']} ends with {b:.2f}% training error against {shallow['model']}'s "
                         f"{a:.2f}%: " + ("the deeper plain network trains worse (degradation)." if b > a else
                                          "no degradation in this budget."))
        else:
            lines.append(f"Residual: {deep['model']} ends with {b:.2f}% training error against {shallow['model']}'s "
                         f"{a:.2f}%: " + ("the deeper residual network trains as well or better." if b <= a else
                                          "the deeper residual network trains worse here: this budget is too short "
                                          "to show depth paying off (He et al. train 64k iterations for that), only "
                                          "that the shortcut removes most of the degradation."))
        if len(rows) > 2:  # Table 6: the trend across every depth, not only the two ends
            lines.append(trend(rows, label))
    by_model = {r["model"]: r for r in table}
    for r in sorted(table, key=lambda r: r["depth"]):
        info = model_info(r["model"])
        twin = by_model.get(info.twin) if not info.residual and info.twin else None
        if twin is not None:
            a, b = r["final train error %"], twin["final train error %"]
            if a is None or b is None:
                continue
            lines.append(f"Twins at depth {r['depth']}: plain {a:.2f}%, residual {b:.2f}% training error; "
                         f"the shortcut alone {'lowers' if b < a else 'does not lower'} it.")
    return lines


def trend(rows: list[dict], label: str) -> str:
    """How one family's final errors move with depth (rows in order of depth), beside He et al.'s Table 6."""
    def how(values: list[float]) -> str:
        steps = [b - a for a, b in zip(values, values[1:])]
        if all(d < 0 for d in steps):
            return "falls at every step"
        if all(d > 0 for d in steps):
            return "rises at every step"
        if all(d == 0 for d in steps):
            return "the same at every depth"
        return f"{'falls' if values[-1] < values[0] else 'rises' if values[-1] > values[0] else 'ends level'} " \
               "overall, not at every step"
    depths = ", ".join(str(r["depth"]) for r in rows)
    parts = []
    for key, kind in (("final val error %", "validation"), ("final train error %", "training")):
        values = [r.get(key) for r in rows]
        if all(isinstance(v, (int, float)) for v in values):
            parts.append(f"{kind} {' / '.join(f'{v:.2f}' for v in values)}% ({how(values)})")
    paper = [r.get("paper test error %") for r in rows]
    if all(isinstance(v, (int, float)) for v in paper):
        parts.append(f"He et al.'s test error {' / '.join(f'{v:.2f}' for v in paper)}% ({how(paper)})")
    return f"{label} networks at depths {depths}: " + "; ".join(parts) + "."


def run_twins(base: RunConfig, models: tuple[str, ...], folder: ExperimentDir, ctx: Context, *, kind: str,
              title: str, analysis_batch: int, analysis_draws: int = 1, beside: str = "") -> dict:
    """Train plain and residual networks with one recipe, then gradients, responses, table and verdict; with
    ``beside`` (a folder of another record's runs), their errors beside this record's, network by network."""
    runs = train_sweep(base, list(models), folder, progress=ctx.progress, log=ctx.log,
                       jobs=ctx.jobs)
    # a finished run copied in from elsewhere may have come without its checkpoints: in the table; in the analyses
    # only as this folder measured it before from its weights
    ctx.log("analysing gradients and layer responses")
    batch, draws = analysis_batch or base.data.batch_size, analysis_draws
    flows = measured_or_kept(runs, lambda kept: gradients_of_runs(kept, batch=batch, draws=draws),
                             earlier_result(folder, "gradients", "flows", batch=batch, draws=draws),
                             flow_labels, valid_flow, what="gradient flow", log=ctx.log)
    folder.write_analysis("gradients", {"flows": flows, "batch": batch, "draws": draws,
                                        "verdict": gradient_verdict(flows)})
    responses = measured_or_kept(runs, lambda kept: responses_of_runs(kept, batch=batch),
                                 earlier_result(folder, "responses", "responses", batch=batch),
                                 lambda model: [model], valid_responses, what="layer responses", log=ctx.log)
    folder.write_analysis("responses", {"responses": responses, "batch": batch,
                                        "verdict": responses_verdict(responses)})
    table = summarise(runs)
    lines, extra = verdict(table) + [gradient_verdict(flows)], {}
    if beside:
        from reslab.experiments.beside import set_beside  # it reads this module's table

        summaries = [r.read_summary() for r in runs]
        extra["beside"], line = set_beside(table, {s["model"]: s for s in summaries}, beside)
        lines.append(line)
    ordered = sorted(models, key=depth_of)
    plain = [m for m in ordered if not model_info(m).residual]
    res = [m for m in ordered if model_info(m).residual]
    val = base.data.val_size
    return finish(folder, {
        "title": title, "kind": kind, "runs": list(models), "table": table,
        "panels": [p for p in (("plain networks", plain), ("residual networks", res)) if p[1]],
        "verdict": lines, **extra,
        "description": f"{len(models)} networks trained with the same recipe and seed on {base.data.dataset} "
                       f"(validation: {'auto-sized' if val < 0 else f'{val}'} held-out images)."})


@register("degradation", DegradationOptions,
          recipe="configs/cifar10_degradation.toml",
          summary="plain vs residual twins at two depths, curves in the style of He et al. Figure 6, verdict, report")
def run_degradation(base: RunConfig, options: DegradationOptions, folder: ExperimentDir, ctx: Context) -> dict:
    return run_twins(base, options.models, folder, ctx, kind="degradation", title=options.title,
                     analysis_batch=options.analysis_batch, analysis_draws=options.analysis_draws)
