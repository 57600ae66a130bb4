"""``reslab report DIR``: one self-contained HTML file (figures inline) built from a run or experiment folder.

It reads files only, through :mod:`reslab.rundir`: a run's config, metrics, gradients and summary, an
experiment's record, and their analyses. Figures are drawn again from those files, saved as PNG and
SVG beside the report, and embedded in the page as data URIs, so the page needs no network and no
other file.
"""

from __future__ import annotations

from pathlib import Path

from reslab.errors import NotFound, ReslabError
from reslab.report import interactive, plots
from reslab.report.ablation import ablation_sections
from reslab.report.depth import beside_label, depth, depth_figure, depth_series
from reslab.report.page import Page
from reslab.rundir import ExperimentDir, Folder, RunDir


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def run_section(page: Page, run: RunDir, *, label: str | None = None) -> None:
    summary = run.read_summary() or {}
    rows = run.read_metrics()
    name = label or run.name
    final = summary.get("final", {})
    page.h2(f"Run {name}")
    if summary:
        page.table(["model", "parameters", "dataset", "iterations", "epochs", "final train error",
                    "final validation error", "best validation error", "training time", "device / precision"],
                   [[summary.get("model", "?"), summary.get("params", 0), summary.get("dataset", "?"),
                     summary.get("steps", 0), summary.get("epochs", 0.0), _pct(final.get("train_error")),
                     _pct(final.get("val_error")), _pct(summary.get("best_val_error")),
                     f"{summary.get('train_time_s', 0):.0f} s", f"{summary.get('device')} / {summary.get('precision')}"]])
    if rows:
        page.figure(plots.run_curves_figure(rows, title=name), f"{name}_curves",
                    f"{name}: error and loss per iteration (thin: training, bold: validation).",
                    interactive.run_curves(rows, title=name))
    grads = run.read_gradients()
    if grads:
        page.figure(plots.gradient_history_figure(grads, title=name), f"{name}_gradient_history",
                    f"{name}: weight-gradient norms recorded during training (train.record_gradients).")
    analysis_sections(page, run, prefix=name)
    if run.config_file.is_file():
        page.pre(run.config_file.read_text())


def analysis_sections(page: Page, folder: Folder, *, prefix: str) -> None:
    grads = folder.read_analysis("gradients")
    if grads:
        page.h2("Gradient flow")
        page.figure(plots.gradient_figure(grads["flows"], key="weight_grad_norm",
                                          title="||dL/dW|| per layer"), f"{prefix}_gradients_weights",
                    "Norm of the loss gradient with respect to each layer's weights, input (left) to output (right).",
                    interactive.gradient_flow(grads["flows"], key="weight_grad_norm", title="||dL/dW|| per layer"))
        page.figure(plots.gradient_figure(grads["flows"], key="output_grad_norm",
                                          title="||dL/d output|| per layer"), f"{prefix}_gradients_outputs",
                    "Norm of the gradient flowing back through each layer's output.",
                    interactive.gradient_flow(grads["flows"], key="output_grad_norm",
                                              title="||dL/d output|| per layer"))
        if grads.get("verdict"):
            page.p(grads["verdict"], "verdict")
    study = folder.read_analysis("init_study")
    if study:
        page.h2("Activation and initialisation (deep MLP)")
        cells = {(c["activation"], c["init"]): c["flows"] for c in study["cells"]}
        page.figure(plots.grid_figure(cells, study["activations"], study["inits"], key="weight_grad_norm",
                                      title=f"||dL/dW|| per layer, {study['depth']}-layer MLP, plain vs residual"),
                    f"{prefix}_init_study", "Gradient norm per layer of a deep MLP for each activation (rows) "
                    "and initialisation (columns), plain and residual.")
        if study.get("verdict"):
            page.p(study["verdict"], "verdict")
    lesion = folder.read_analysis("lesion")
    if lesion:
        page.h2("Lesion study (Veit et al. Figures 3-5)")
        page.figure(plots.lesion_figure({lesion.get("model", prefix): lesion}), f"{prefix}_lesion",
                    f"Validation error after deleting blocks at test time ({lesion.get('images', '?')} images, "
                    f"{lesion.get('seconds', 0):.0f} s).", interactive.lesion({lesion.get("model", prefix): lesion}))
    paths = folder.read_analysis("paths")
    if paths:
        page.h2("Paths (Veit et al. Figure 6)")
        page.figure(plots.paths_figure({paths.get("model", prefix): paths}), f"{prefix}_paths",
                    f"{paths['blocks']} blocks: most gradient comes from paths of length {paths['peak_length']}; "
                    f"90% from lengths {paths['effective_range'][0]}-{paths['effective_range'][1]} "
                    f"(mean path length {paths['mean_path_length']:.1f}).",
                    interactive.paths({paths.get("model", prefix): paths}))
    land = folder.read_analysis("landscape")
    if land:
        page.h2("Loss landscape (Li et al. 2018)")
        page.figure(plots.landscape_figure({land.get("model", prefix): land}), f"{prefix}_landscape",
                    f"{land['resolution']}x{land['resolution']} grid on {land['images']} images "
                    f"({land['surface']['seconds']:.0f} s).", interactive.landscape({land.get("model", prefix): land}))
        page.figure(plots.interpolation_figure({land.get("model", prefix): land}), f"{prefix}_interpolation",
                    "Loss along the straight line from the trained weights to the initialisation.",
                    interactive.interpolation({land.get("model", prefix): land}))
    resp = folder.read_analysis("responses")
    if resp:
        page.h2("Layer responses (He et al. Figure 7)")
        page.figure(plots.responses_figure(resp["responses"]), f"{prefix}_responses",
                    "Standard deviation of each 3x3 layer's output after BN, before ReLU or addition.",
                    interactive.responses(resp["responses"]))
        if resp.get("verdict"):
            page.p(resp["verdict"], "verdict")


def comparison_sections(page: Page, exp: ExperimentDir, runs: list[str]) -> None:
    """The per-run analyses (lesion, paths, landscape) of two or more runs, drawn in one figure each."""
    found = {kind: {} for kind in ("lesion", "paths", "landscape")}
    for name in runs:
        for kind in found:
            result = exp.run(name).read_analysis(kind)
            if result:
                found[kind][name] = result
    if len(found["lesion"]) > 1:
        page.h2("Lesion study, side by side")
        page.figure(plots.lesion_figure(found["lesion"]), "compare_lesion",
                    "Validation error after deleting blocks at test time, every analysed network.",
                    interactive.lesion(found["lesion"]))
    if len(found["paths"]) > 1:
        page.h2("Paths, side by side")
        page.figure(plots.paths_figure(found["paths"]), "compare_paths",
                    "Path-length distribution and gradient per path length, every analysed network.",
                    interactive.paths(found["paths"]))
    if len(found["landscape"]) > 1:
        page.h2("Loss landscapes, side by side")
        page.figure(plots.landscape_figure(found["landscape"]), "compare_landscape",
                    "Filter-normalised 2-D slices around each trained network (Li et al. Figure 5), on one "
                    "colour and height scale.", interactive.landscape(found["landscape"]))
        page.figure(plots.interpolation_figure(found["landscape"]), "compare_interpolation",
                    "Loss from the trained weights (0) to the initialisation (1), every analysed network.",
                    interactive.interpolation(found["landscape"]))


def experiment_sections(page: Page, folder: ExperimentDir, exp: dict) -> None:
    page.p(exp.get("description", ""))
    if exp.get("verdict"):
        page.h2("Verdict")
        for line in exp["verdict"]:
            page.p(line, "verdict")
    table = exp.get("table", [])
    if table:
        page.h2("Summary")
        cols = list(table[0])
        page.table(cols, [[r[c] for c in cols] for r in table])
    if exp.get("kind") == "ablation":
        ablation_sections(page, exp)
    if exp.get("kind") == "depth" and depth_series(table):
        page.h2("Error against depth")
        name = beside_label(exp.get("beside"))
        hollow = (f" Hollow points: the same networks' validation error in {exp['beside']['folder']}"
                  f" ({'; '.join(exp['beside'].get('differs', [])) or 'the same settings'})."
                  if name != "beside" and any(isinstance(r.get("val error % beside"), (int, float)) for r in table)
                  else "")
        page.figure(depth_figure(table, name), "depth", "Final error of each network against its depth: validation "
                    "(bold) and training (dashed, the mean over the last 5% of iterations), with He et al.'s test "
                    "errors for the residual networks (Table 6, dotted). Deeper should be better for the residual "
                    "networks and worse for the plain ones." + hollow, depth(table, name))
    curves = {name: folder.run(name).read_metrics() for name in exp.get("runs", [])}
    if exp.get("panels"):
        page.h2("Training and validation error")
        if exp.get("kind") in ("degradation", "depth"):
            name, caption = "degradation", "Thin lines: training error; bold lines: validation error (as He et al. Figure 6)."
        else:
            name, caption = "curves", "Thin lines: training error; bold lines: validation error."
        page.figure(plots.degradation_figure(curves, exp["panels"]), name, caption,
                    interactive.degradation(curves, exp["panels"]))
    analysis_sections(page, folder, prefix="experiment")
    comparison_sections(page, folder, exp.get("runs", []))
    for name in exp.get("runs", []):
        if folder.run(name).path.is_dir():
            run_section(page, folder.run(name), label=name)


def build_report(path: str | Path, *, plotly_js: str = "inline") -> Path:
    """Write the HTML report of a run folder or an experiment folder; returns its path. ``plotly_js``:
    ``"inline"`` (one self-contained file) or ``"beside"`` (reports in one folder share ``plotly.min.js``)."""
    root = Path(path)
    if not root.is_dir():
        raise NotFound(f"no such folder: {root}", root)
    exp = ExperimentDir(root).read()
    if exp is not None:
        page = Page(root, exp.get("title", f"reslab experiment {root.name}"))
        experiment_sections(page, ExperimentDir(root), exp)
    elif RunDir(root).looks_like_run():
        page = Page(root, f"reslab run {root.name}")
        run_section(page, RunDir(root))
    elif Folder(root).analysis_dir.is_dir():
        page = Page(root, f"reslab analysis {root.name}")
        analysis_sections(page, Folder(root), prefix=root.name)
    else:
        raise ReslabError(f"{root} is neither a run nor an experiment folder (no {RunDir(root).metrics_file.name} "
                          f"or {ExperimentDir(root).record_file.name})")
    return page.write(plotly_js)
