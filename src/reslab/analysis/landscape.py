"""Loss landscapes: 1-D interpolation and 2-D slices along filter-normalised random directions.

Directions: a Gaussian direction d has each filter (each output unit of a convolution or linear layer)
rescaled to the norm of the model's filter, d_i <- d_i ||theta_i|| / ||d_i||, so that the picture does
not depend on the scale invariance that BatchNorm gives the weights. Parameters of BatchNorm and the
biases (1-D tensors) are not perturbed, and BatchNorm uses its running statistics, as Li et al. do.

Evaluation moves the model's own weights in place, theta = theta* + a d1 + b d2, with a few fused
vector operations per grid point, on a fixed subset of images already on the device in batches: no
copy of the model, no reloading of weights. A grid is saved after each row and resumes where it stopped;
its rows can be spread over worker processes.

References:
    Li, Xu, Taylor, Studer, Goldstein. Visualizing the Loss Landscape of Neural Nets. NeurIPS 2018.
    Goodfellow, Vinyals, Saxe 2015 (1-D linear interpolation).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from reslab.evaluation import loss_and_error


def parameters(model: nn.Module) -> list[Tensor]:
    return [p for p in model.parameters()]


def filter_normalized_direction(model: nn.Module, *, generator: torch.Generator) -> list[Tensor]:
    """A random direction, one tensor per parameter, each filter scaled to its model filter's norm."""
    direction = []
    for p in model.parameters():
        if p.ndim <= 1:
            direction.append(torch.zeros_like(p))  # BN parameters and biases are not perturbed
            continue
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
        d_norm = d.flatten(1).norm(dim=1).clamp_min(1e-12)
        p_norm = p.detach().flatten(1).norm(dim=1)
        scale = (p_norm / d_norm).view(-1, *([1] * (p.ndim - 1)))
        direction.append(d * scale)
    return direction


class WeightMover:
    """Sets the model's weights to theta* + a d1 (+ b d2) in place; restores theta* on exit."""

    def __init__(self, model: nn.Module, d1: Sequence[Tensor], d2: Sequence[Tensor] | None = None) -> None:
        self.params = parameters(model)
        self.origin = [p.detach().clone() for p in self.params]
        self.d1, self.d2 = list(d1), (list(d2) if d2 is not None else None)

    @torch.no_grad()
    def move(self, a: float, b: float = 0.0) -> None:
        torch._foreach_copy_(self.params, self.origin)
        if a:
            torch._foreach_add_(self.params, self.d1, alpha=a)
        if b and self.d2 is not None:
            torch._foreach_add_(self.params, self.d2, alpha=b)
        # Inside one autocast region, the low-precision copy of each weight is cast once and cached: without
        # this, every point of a bf16 grid would be evaluated with the weights of the first one.
        torch.clear_autocast_cache()

    def __enter__(self) -> "WeightMover":
        return self

    def __exit__(self, *exc) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.params, self.origin)
        torch.clear_autocast_cache()


def interpolate(model: nn.Module, target_state: dict[str, Tensor], alphas: Sequence[float],
                batches: list[tuple[Tensor, Tensor]]) -> dict:
    """Loss and error along (1 - a) theta_model + a theta_target (e.g. trained to initial weights).

    The floating-point buffers (BatchNorm's running mean and variance) move along with the weights, so
    both ends are exactly the two models; the model's own are restored afterwards.
    """
    names = [n for n, _ in model.named_parameters()]
    target = [target_state[n].to(p.device, p.dtype) for n, p in zip(names, model.parameters())]
    buffers = [(b, target_state[n].to(b.device, b.dtype)) for n, b in model.named_buffers()
               if b.is_floating_point() and n in target_state]
    saved = [b.detach().clone() for b, _ in buffers]
    try:
        with WeightMover(model, [t - p.detach() for t, p in zip(target, model.parameters())]) as mover:
            losses, errors = [], []
            for a in alphas:
                mover.move(float(a))
                with torch.no_grad():
                    for (b, t), b0 in zip(buffers, saved):
                        torch.lerp(b0, t, float(a), out=b)
                loss, err = loss_and_error(model, batches)
                losses.append(loss)
                errors.append(err)
    finally:
        with torch.no_grad():
            for (b, _), b0 in zip(buffers, saved):
                b.copy_(b0)
    return {"alphas": list(map(float, alphas)), "loss": losses, "error": errors}


def _row(model: nn.Module, mover: WeightMover, coords: Sequence[float], b: float,
         batches: list[tuple[Tensor, Tensor]]) -> tuple[list[float], list[float]]:
    losses, errors = [], []
    for a in coords:
        mover.move(float(a), float(b))
        loss, err = loss_and_error(model, batches)
        losses.append(loss)
        errors.append(err)
    return losses, errors


_WORKER: dict = {}


def _init_worker(model, d1, d2, coords, batches, threads: int, autocast_dtype) -> None:
    torch.set_num_threads(threads)
    # Tensors reach the workers in shared memory: without a private copy, every worker (and the parent)
    # would move the same weights at once.
    model = copy.deepcopy(model)
    _WORKER.update(model=model, mover=WeightMover(model, d1, d2), coords=coords, batches=batches,
                   autocast_dtype=autocast_dtype)


def _worker_row(i: int) -> tuple[int, list[float], list[float]]:
    w = _WORKER
    dtype = w["autocast_dtype"]
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        return (i, *_row(w["model"], w["mover"], w["coords"], w["coords"][i], w["batches"]))


def _rows_in_processes(model, d1, d2, coords, batches, rows: list[int], jobs: int):
    """Rows computed by ``jobs`` worker processes (spawned, each with its share of the threads and its own
    copy of the model), yielded as they finish. CPU only."""
    import torch.multiprocessing as mp

    threads = max(1, torch.get_num_threads() // jobs)
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
    ctx = mp.get_context("spawn")
    with ctx.Pool(jobs, initializer=_init_worker,
                  initargs=(model, list(d1), list(d2), list(coords), batches, threads, dtype)) as pool:
        yield from pool.imap_unordered(_worker_row, rows)


def _save_grid(path: Path, loss: np.ndarray, error: np.ndarray, coords: Sequence[float], seconds: float) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, loss=loss, error=error, coords=np.asarray(coords), seconds=seconds)
    tmp.replace(path)  # a stop mid-write leaves the previous grid whole


def surface(model: nn.Module, d1: Sequence[Tensor], d2: Sequence[Tensor], coords: Sequence[float],
            batches: list[tuple[Tensor, Tensor]], *, checkpoint: Path | None = None,
            progress: Callable[[int, int], None] | None = None, jobs: int = 1) -> dict:
    """Loss and error on the grid coords x coords around the model's weights; resumable via ``checkpoint``.

    ``jobs > 1`` spreads the rows over that many worker processes (CPU models only), the threads split
    between them: worth it on a many-core CPU, where one evaluation no longer scales across all cores.
    """
    n = len(coords)
    spent = 0.0
    loss = np.full((n, n), np.nan)
    error = np.full((n, n), np.nan)
    if checkpoint is not None and checkpoint.is_file():
        saved = np.load(checkpoint)
        if saved["loss"].shape == loss.shape and np.allclose(saved["coords"], coords):
            loss, error = saved["loss"].copy(), saved["error"].copy()
            spent = float(saved["seconds"]) if "seconds" in saved else 0.0
    todo = [i for i in range(n) if np.isnan(loss[i]).any()]  # row i: fixed beta = coords[i]
    start = time.perf_counter() - spent  # seconds of evaluation, summed over resumed sessions
    with WeightMover(model, d1, d2) as mover:
        if jobs > 1 and len(todo) > 1 and next(model.parameters()).device.type == "cpu":
            rows = _rows_in_processes(model, d1, d2, coords, batches, todo, min(jobs, len(todo)))
        else:
            rows = ((i, *_row(model, mover, coords, coords[i], batches)) for i in todo)
        for done, (i, row_loss, row_error) in enumerate(rows, start=n - len(todo) + 1):
            loss[i], error[i] = row_loss, row_error
            if checkpoint is not None:
                _save_grid(checkpoint, loss, error, coords, time.perf_counter() - start)
            if progress is not None:
                progress(done, n)
    seconds = time.perf_counter() - start
    if checkpoint is not None and todo:  # the finished grid's file keeps its whole time
        _save_grid(checkpoint, loss, error, coords, seconds)
    return {"coords": list(map(float, coords)), "loss": loss.tolist(), "error": error.tolist(), "seconds": seconds}


def surface_straightforward(model: nn.Module, d1: Sequence[Tensor], d2: Sequence[Tensor], coords: Sequence[float],
                            batches: list[tuple[Tensor, Tensor]]) -> np.ndarray:
    """The plain method, kept as the speed reference: for every grid point copy the model, load the
    moved weights through a state dict, evaluate."""
    names = [n for n, _ in model.named_parameters()]
    origin = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = np.zeros((len(coords), len(coords)))
    for i, b in enumerate(coords):
        for j, a in enumerate(coords):
            probe = copy.deepcopy(model)
            state = probe.state_dict()
            for k, name in enumerate(names):
                state[name] = origin[name] + a * d1[k] + b * d2[k]
            probe.load_state_dict(state)
            out[i, j] = loss_and_error(probe, batches)[0]
    return out
