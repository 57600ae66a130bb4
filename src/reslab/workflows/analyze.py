"""``reslab analyze``: measurements on saved runs (or fresh models), written to the run's analysis folder.

Glue between a restored run (:mod:`.restore`) and the pure measurements of :mod:`reslab.analysis`;
the verdicts in words live beside those measurements.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from reslab.analysis.gradients import flow_over, gradient_verdict, labelled
from reslab.analysis.landscape import filter_normalized_direction, interpolate, surface
from reslab.analysis.lesion import lesion_study
from reslab.analysis.paths import gradient_per_path_length
from reslab.analysis.responses import layer_responses, responses_verdict
from reslab.config import DataConfig
from reslab.device import autocast, resolve_precision
from reslab.errors import ReslabError
from reslab.models import create_model, list_models, model_info
from reslab.rundir import Folder, RunDir, write_json
from reslab.workflows.restore import analysis_batch, analysis_batches, fresh_model, heldout_batches, restore_run

SAMPLE = DataConfig(dataset="sample", val_size=500)  # analyses of a bare model name run on the embedded sample


def eval_precision(precision: str):
    """Autocast context for the evaluation-only analyses on the CPU: ``fp32`` (default), ``bf16``
    (about twice as fast where the CPU has bf16 instructions; convolutions in bf16 with fp32
    accumulation, BatchNorm and the loss in fp32), or ``auto`` (bf16 where supported)."""
    if precision not in ("fp32", "bf16", "auto"):
        raise ReslabError(f"precision must be fp32, bf16 or auto, got {precision!r}")
    cpu = torch.device("cpu")
    resolved = resolve_precision(precision, cpu)
    return resolved, autocast(cpu, resolved)


def _run(target: str | Path) -> RunDir:
    run = RunDir(target)
    if not run.path.is_dir():
        raise ReslabError(f"{target} is not a run folder")
    return run


# -- gradient flow and layer responses -----------------------------------------------------------------------
def gradients_of_runs(runs: Sequence[RunDir], *, batch: int = 256, draws: int = 1) -> dict[str, dict]:
    """Each run's network at initialisation (same seed) and after training, on the same ``draws`` held-out
    batches of ``batch`` images (with several, every figure is the median over them: ``flow_over``)."""
    flows: dict[str, dict] = {}
    batches = None
    for run in runs:
        r = restore_run(run)
        if batches is None:
            batches, _ = analysis_batches(r.config.data, n=batch, draws=draws, stats=r.stats)
        name = r.config.model.name
        init = fresh_model(r.config, r.state["num_classes"])
        flows[f"{name} init"] = labelled(flow_over(init.train(), batches), name, "init")
        flows[f"{name} trained"] = labelled(flow_over(r.model.train(), batches), name, "trained")
    return flows


def analyze_gradients(target: str, *, out: Path | None = None, batch: int = 256,
                      draws: int = 1) -> tuple[Path, dict]:
    """``target``: a run folder (init versus trained) or a model name (it and its twin, at init); every
    figure the median over ``draws`` held-out batches of ``batch`` images."""
    if draws < 1:
        raise ReslabError(f"--draws must be at least 1, got {draws}")
    if Path(target).is_dir():
        flows = gradients_of_runs([RunDir(target)], batch=batch, draws=draws)
        folder = Folder(out) if out else RunDir(target)
    else:
        if target not in list_models():
            raise ReslabError(f"{target} is neither a run folder nor a model name")
        batches, data = analysis_batches(SAMPLE, n=batch, draws=draws)
        flows = {}
        for name in filter(None, [target, model_info(target).twin]):
            for norm in ("bn", "none"):
                torch.manual_seed(0)
                try:
                    model = create_model(name, num_classes=data.num_classes, norm=norm)
                except ReslabError:  # a network without that normalisation option
                    continue
                label = f"{name} init" + (" (no BN)" if norm == "none" else "")
                flows[label] = labelled(flow_over(model.train(), batches), name, "init")
        folder = Folder(out or Path("runs") / f"gradients-{target}")
    result = {"flows": flows, "batch": batch, "draws": draws, "verdict": gradient_verdict(flows)}
    return folder.write_analysis("gradients", result), result


def responses_of_runs(runs: Sequence[RunDir], *, batch: int = 256) -> dict[str, list[dict]]:
    responses: dict[str, list[dict]] = {}
    x = None
    for run in runs:
        r = restore_run(run)
        if x is None:
            x, _, _ = analysis_batch(r.config.data, n=batch, stats=r.stats)
        responses[r.config.model.name] = [resp.__dict__ for resp in layer_responses(r.model, x)]
    return responses


def analyze_responses(target: str, *, batch: int = 256) -> tuple[Path, dict]:
    run = _run(target)
    responses = responses_of_runs([run], batch=batch)
    result = {"responses": responses, "verdict": responses_verdict(responses)}
    return run.write_analysis("responses", result), result


# -- why residual networks work (Veit et al., Li et al.) ------------------------------------------------
def analyze_lesion(target: str, *, images: int = 2000, draws: int = 10,
                   precision: str = "fp32") -> tuple[Path, dict]:
    """Lesion study of a trained run (single blocks, k random blocks, re-ordering)."""
    r = restore_run(_run(target))
    batches, _, _ = heldout_batches(r, images, channels_last=True)
    precision, context = eval_precision(precision)
    t = time.perf_counter()
    with context:
        result = lesion_study(r.model, batches, draws=draws)
    result.update(model=r.config.model.name, images=sum(len(y) for _, y in batches),
                  seconds=time.perf_counter() - t, precision=precision)
    return r.run.write_analysis("lesion", result), result


def analyze_paths(target: str, *, images: int = 256, draws: int = 20) -> tuple[Path, dict]:
    r = restore_run(_run(target))
    _, x, y = heldout_batches(r, images)
    t = time.perf_counter()
    result = gradient_per_path_length(r.model, x, y, draws=draws)
    result.update(model=r.config.model.name, images=len(y), seconds=time.perf_counter() - t)
    return r.run.write_analysis("paths", result), result


def landscape_grid_file(resolution: int, images: int, precision: str, seed: int) -> str:
    """Name of the resumable grid of one landscape setting (a different setting starts a new grid)."""
    return f"landscape_{resolution}x{resolution}_{images}img_{precision}_seed{seed}.npz"


def analyze_landscape(target: str, *, resolution: int = 21, span: float = 1.0, images: int = 2000, seed: int = 0,
                      progress: Callable[[int, int], None] | None = None, precision: str = "fp32",
                      jobs: int = 1) -> tuple[Path, dict]:
    """2-D filter-normalised slice around the trained weights, and the 1-D path from initialisation."""
    r = restore_run(_run(target))
    batches, _, _ = heldout_batches(r, images, channels_last=True)
    g = torch.Generator().manual_seed(seed)
    d1 = filter_normalized_direction(r.model, generator=g)
    d2 = filter_normalized_direction(r.model, generator=g)
    coords = np.linspace(-span, span, resolution).tolist()
    r.run.analysis_dir.mkdir(parents=True, exist_ok=True)
    precision, context = eval_precision(precision)
    with context:
        grid = surface(r.model, d1, d2, coords, batches, progress=progress, jobs=jobs,
                       checkpoint=r.run.analysis_dir / landscape_grid_file(resolution, images, precision, seed))
        init = fresh_model(r.config, r.state["num_classes"]).state_dict()
        line = interpolate(r.model, init, np.linspace(0.0, 1.0, 21).tolist(), batches)
    line["from"], line["to"] = "trained (alpha 0)", "initialisation (alpha 1)"
    result = {"model": r.config.model.name, "resolution": resolution, "span": span, "precision": precision,
              "images": sum(len(y) for _, y in batches), "surface": grid, "interpolation": line}
    return r.run.write_analysis("landscape", result), result


__all__ = ["analyze_gradients", "analyze_landscape", "analyze_lesion", "analyze_paths", "analyze_responses",
           "eval_precision", "gradients_of_runs", "responses_of_runs", "write_json"]
