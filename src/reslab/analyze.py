"""``reslab analyze``: measurements on saved runs (or fresh models), written to ``analysis/*.json``.

Glue between the files of a run (config, checkpoint, data) and the pure measurements in
:mod:`reslab.analysis`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from reslab.analysis.gradients import MLP, gradient_flow
from reslab.analysis.responses import layer_responses
from reslab.config import DataConfig, RunConfig
from reslab.data import build_data, mix_seed, normalize, stratified_subset
from reslab.errors import CheckpointError, ReslabError
from reslab.models import create_model
from reslab.train import load_checkpoint
from reslab.train.checkpoint import load_model_state

VANISH, EXPLODE = 0.1, 10.0  # first/last gradient ratios outside this band count as vanishing / exploding


def analysis_batch(data_cfg: DataConfig, *, n: int = 256, seed: int = 0, stats=None):
    """A fixed batch of ``n`` held-out images (training images when there is no hold-out), normalised,
    un-augmented: the same share of every class, in a seeded random order.

    Held-out sets are stored class by class, so their first ``n`` images would cover a few classes
    only; and in training mode BatchNorm normalises with the batch's own statistics, which a one-class
    batch distorts (a trained ResNet-20 then shows a loss of 4.9 instead of 0.4).
    """
    data = build_data(data_cfg, seed=seed, channels_last=False, stats=stats)
    loader = data.val if data.val is not None else data.train
    n = min(n, loader.num_samples)
    idx = stratified_subset(loader.labels.cpu(), n, seed=mix_seed(seed, 2))
    idx = idx[torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(seed, 3)))]
    x = normalize(loader.images.index_select(0, idx.to(loader.device)), loader.mean, loader.std,
                  channels_last=False)
    return x.contiguous(), loader.labels.index_select(0, idx.to(loader.device)), data


def twin_of(model_name: str) -> str | None:
    """plain56 <-> resnet56 (and the ImageNet pairs)."""
    if model_name.startswith("plain"):
        return "resnet" + model_name[len("plain"):]
    if model_name.startswith("resnet"):
        twin = "plain" + model_name[len("resnet"):]
        from reslab.models import list_models
        return twin if twin in list_models() else None
    return None


def classify_ratio(ratio: float) -> str:
    if not math.isfinite(ratio):
        return "undefined"
    if ratio < VANISH:
        return "vanishing toward the input"
    if ratio > EXPLODE:
        return "exploding toward the input"
    return "healthy (within a factor of 10 from last to first layer)"


def gradient_verdict(flows: dict[str, dict]) -> str:
    """One paragraph: every network's first/last-layer weight-gradient ratio, and which reading of
    degradation they support. Labels ending in "init" are networks at initialisation, in "trained"
    after training; a gradient problem that is gone after training while the deep plain network still
    trains worse cannot be what holds it back."""
    parts = []
    for label, flow in flows.items():
        r = flow["ratio_first_last_weight"]
        healthy = VANISH <= r <= EXPLODE
        parts.append(f"{label} {r:.3g}" + ("" if healthy else f" ({classify_ratio(r)})"))
    text = (f"First/last layer gradient ratio (healthy within {VANISH:g}-{EXPLODE:g}): " + ", ".join(parts) + ".")
    plain = {label: f["ratio_first_last_weight"] for label, f in flows.items() if "plain" in label}
    if not plain:
        return text
    bad = {label: r for label, r in plain.items() if not VANISH <= r <= EXPLODE}
    trained = [label for label in plain if label.endswith("trained")]
    if not bad:
        return text + (" The plain networks' gradients neither vanish nor explode: with BatchNorm, the measurements "
                       "support He et al.'s reading that degradation is an optimisation difficulty, not vanishing "
                       "gradients.")
    if trained and not any(label in bad for label in trained):
        worst = max(bad, key=lambda label: abs(math.log10(bad[label])) if bad[label] > 0 else math.inf)
        return text + (f" The plain networks' gradient problem is there at initialisation only ({worst}: "
                       f"{classify_ratio(bad[worst])}) and gone after training, while the deep plain network "
                       "still trains worse: on the degradation itself, the measurements support He et al.'s "
                       "reading (an optimisation difficulty) over the notes' (vanishing gradients); unhealthy "
                       "gradients are a problem of the start of training only.")
    return text + (" Some plain network's gradients vanish or explode after training too: these measurements "
                   "support the notes' reading that vanishing/exploding gradients are at play.")


def load_run(run_dir: Path, which: str = "best") -> tuple[RunConfig, torch.nn.Module, dict]:
    from reslab.runner import load_run_config

    cfg = load_run_config(run_dir)
    path = run_dir / "checkpoints" / f"{which}.pt"
    if not path.is_file():
        path = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    model = create_model(state["model_name"], num_classes=state["num_classes"], **state.get("model_options", {}))
    load_model_state(model, state, source=str(path))
    return cfg, model, state


def fresh_model(cfg: RunConfig, num_classes: int, name: str | None = None) -> torch.nn.Module:
    torch.manual_seed(cfg.train.seed)
    return create_model(name or cfg.model.name, num_classes=num_classes, **cfg.model.options)


def gradients_of_runs(run_dirs: list[Path], *, batch: int = 256) -> dict[str, dict]:
    """Each run's model at initialisation (same seed) and after training, on the same held-out batch."""
    flows: dict[str, dict] = {}
    x = y = None
    for run_dir in run_dirs:
        cfg, trained, state = load_run(run_dir)
        if x is None:
            x, y, _ = analysis_batch(cfg.data, n=batch, stats=state.get("data_stats"))
        init = fresh_model(cfg, state["num_classes"])
        flows[f"{cfg.model.name} init"] = gradient_flow(init.train(), x, y).as_dict()
        flows[f"{cfg.model.name} trained"] = gradient_flow(trained.train(), x, y).as_dict()
    return flows


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def analyze_gradients(target: str, *, out: Path | None = None, batch: int = 256,
                      data_cfg: DataConfig | None = None) -> tuple[Path, dict]:
    """``target``: a run folder (init versus trained) or a model name (it and its twin, at init)."""
    path = Path(target)
    if path.is_dir():
        flows = gradients_of_runs([path], batch=batch)
        out = out or path / "analysis"
    else:
        from reslab.models import list_models
        if target not in list_models():
            raise ReslabError(f"{target} is neither a run folder nor a model name")
        data_cfg = data_cfg or DataConfig(dataset="sample", val_size=500)
        x, y, data = analysis_batch(data_cfg, n=batch)
        flows = {}
        for name in filter(None, [target, twin_of(target)]):
            for norm in ("bn", "none"):
                torch.manual_seed(0)
                try:
                    model = create_model(name, num_classes=data.num_classes, norm=norm)
                except Exception:
                    continue
                label = f"{name} init" + (" (no BN)" if norm == "none" else "")
                flows[label] = gradient_flow(model.train(), x, y).as_dict()
        out = out or Path("runs") / "analysis" / target
    result = {"flows": flows, "batch": batch, "verdict": gradient_verdict(flows)}
    return write_json(out / "gradients.json", result), result


def responses_of_runs(run_dirs: list[Path], *, batch: int = 256) -> dict[str, list[dict]]:
    responses: dict[str, list[dict]] = {}
    x = None
    for run_dir in run_dirs:
        cfg, model, state = load_run(run_dir)
        if x is None:
            x, _, _ = analysis_batch(cfg.data, n=batch, stats=state.get("data_stats"))
        responses[cfg.model.name] = [r.__dict__ for r in layer_responses(model, x)]
    return responses


def responses_verdict(responses: dict[str, list[dict]]) -> str:
    means = {k: sum(r["std"] for r in v) / len(v) for k, v in responses.items() if v}
    text = "; ".join(f"{k}: mean response std {m:.3g}" for k, m in means.items()) + "."
    plain = {k: m for k, m in means.items() if k.startswith("plain")}
    res = {k: m for k, m in means.items() if k.startswith(("resnet", "preact"))}
    if plain and res:
        twins = [(k, "resnet" + k[len("plain"):]) for k in plain if "resnet" + k[len("plain"):] in res]
        text += "".join(f" {r}'s mean response is {abs(100 * (1 - means[r] / means[p])):.0f}% "
                        f"{'below' if means[r] < means[p] else 'above'} {p}'s." for p, r in twins)
        smaller = max(res.values()) < min(plain.values())
        text += (" Every residual network responds more weakly than every plain one, as in He et al. Figure 7: "
                 "the residual functions lie closer to zero than the plain layers' mappings." if smaller else
                 " The residual layers' responses are not uniformly smaller than the plain ones here.")
    return text


def analyze_responses(target: str, *, batch: int = 256) -> tuple[Path, dict]:
    path = Path(target)
    if not path.is_dir():
        raise ReslabError(f"{target} is not a run folder")
    responses = responses_of_runs([path], batch=batch)
    result = {"responses": responses, "verdict": responses_verdict(responses)}
    return write_json(path / "analysis" / "responses.json", result), result


def init_study(out: Path, *, depth: int = 30, width: int = 64, batch: int = 128,
               activations=("sigmoid", "relu"), inits=("he", "xavier", "small"),
               data_cfg: DataConfig | None = None) -> tuple[Path, dict]:
    """Deep MLPs, plain and residual, for each activation and initialisation: gradient norm per layer."""
    x, y, data = analysis_batch(data_cfg or DataConfig(dataset="sample", val_size=500), n=batch)
    cells = []
    for act in activations:
        for init in inits:
            flows = {}
            for residual in (False, True):
                torch.manual_seed(0)
                model = MLP(depth=depth, width=width, in_features=x[0].numel(), num_classes=data.num_classes,
                            activation=act, residual=residual, init=init)
                flows["residual" if residual else "plain"] = gradient_flow(model, x, y).as_dict()
            cells.append({"activation": act, "init": init, "flows": flows})
    lines = []
    for c in cells:
        p, r = c["flows"]["plain"]["ratio_first_last_weight"], c["flows"]["residual"]["ratio_first_last_weight"]
        lines.append(f"{c['activation']}/{c['init']}: plain {p:.2g} ({classify_ratio(p).split(' (')[0]}), "
                     f"residual {r:.2g} ({classify_ratio(r).split(' (')[0]})")
    result = {"depth": depth, "width": width, "activations": list(activations), "inits": list(inits),
              "cells": cells, "verdict": "First/last layer gradient ratios: " + "; ".join(lines) + "."}
    return write_json(out / "init_study.json", result), result


# -- why residual networks work (Veit et al., Li et al.) ------------------------------------------------
def heldout_batches(cfg: RunConfig, state: dict, n: int, batch: int = 500, model: torch.nn.Module | None = None):
    """Held-out images in fixed batches. With ``model``, images and model go channels_last: the same fp32
    numbers, and on a CPU the convolutions run faster in that layout."""
    from reslab.analysis.common import fixed_batches

    x, y, _ = analysis_batch(cfg.data, n=n, stats=state.get("data_stats"))
    if model is not None:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return fixed_batches(x, y, batch), x, y


def eval_precision(precision: str):
    """Autocast context for the evaluation-only analyses on the CPU: ``fp32`` (default), ``bf16``
    (about twice as fast where the CPU has bf16 instructions; convolutions in bf16 with fp32
    accumulation, BatchNorm and the loss in fp32), or ``auto`` (bf16 where supported)."""
    from reslab.train.device import autocast, resolve_precision

    if precision not in ("fp32", "bf16", "auto"):
        raise ReslabError(f"precision must be fp32, bf16 or auto, got {precision!r}")
    cpu = torch.device("cpu")
    resolved = resolve_precision(precision, cpu)
    return resolved, autocast(cpu, resolved)


def analyze_lesion(target: str, *, images: int = 2000, draws: int = 10,
                   precision: str = "fp32") -> tuple[Path, dict]:
    """Lesion study of a trained run (single blocks, k random blocks, re-ordering)."""
    import time

    from reslab.analysis.lesion import lesion_study

    run_dir = Path(target)
    cfg, model, state = load_run(run_dir)
    batches, _, _ = heldout_batches(cfg, state, images, model=model)
    precision, context = eval_precision(precision)
    t = time.perf_counter()
    with context:
        result = lesion_study(model, batches, draws=draws)
    result.update(model=cfg.model.name, images=sum(len(y) for _, y in batches), seconds=time.perf_counter() - t,
                  precision=precision)
    return write_json(run_dir / "analysis" / "lesion.json", result), result


def analyze_paths(target: str, *, images: int = 256, draws: int = 20) -> tuple[Path, dict]:
    import time

    from reslab.analysis.paths import gradient_per_path_length

    run_dir = Path(target)
    cfg, model, state = load_run(run_dir)
    _, x, y = heldout_batches(cfg, state, images)
    t = time.perf_counter()
    result = gradient_per_path_length(model, x, y, draws=draws)
    result.update(model=cfg.model.name, images=len(y), seconds=time.perf_counter() - t)
    return write_json(run_dir / "analysis" / "paths.json", result), result


def landscape_grid_file(resolution: int, images: int, precision: str, seed: int) -> str:
    """Name of the resumable grid of one landscape setting (a different setting starts a new grid)."""
    return f"landscape_{resolution}x{resolution}_{images}img_{precision}_seed{seed}.npz"


def analyze_landscape(target: str, *, resolution: int = 21, span: float = 1.0, images: int = 2000,
                      seed: int = 0, progress=None, precision: str = "fp32", jobs: int = 1) -> tuple[Path, dict]:
    """2-D filter-normalised slice around the trained weights, and the 1-D path from initialisation."""
    import numpy as np

    from reslab.analysis.landscape import filter_normalized_direction, interpolate, surface

    run_dir = Path(target)
    cfg, model, state = load_run(run_dir)
    batches, _, _ = heldout_batches(cfg, state, images, model=model)
    g = torch.Generator().manual_seed(seed)
    d1 = filter_normalized_direction(model, generator=g)
    d2 = filter_normalized_direction(model, generator=g)
    coords = np.linspace(-span, span, resolution).tolist()
    out_dir = run_dir / "analysis"
    out_dir.mkdir(parents=True, exist_ok=True)
    precision, context = eval_precision(precision)
    with context:
        grid = surface(model, d1, d2, coords, batches,
                       checkpoint=out_dir / landscape_grid_file(resolution, images, precision, seed), progress=progress,
                       jobs=jobs)
        init = fresh_model(cfg, state["num_classes"]).state_dict()
        line = interpolate(model, init, np.linspace(0.0, 1.0, 21).tolist(), batches)
    line["from"], line["to"] = "trained (alpha 0)", "initialisation (alpha 1)"
    result = {"model": cfg.model.name, "resolution": resolution, "span": span, "precision": precision,
              "images": sum(len(y) for _, y in batches), "surface": grid, "interpolation": line}
    return write_json(out_dir / "landscape.json", result), result
