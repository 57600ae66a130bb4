"""Run reslab's optimizers on the test surfaces and record their trajectories."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from reslab.optim import create_optimizer
from reslab.playground.surfaces import SURFACES, Surface

# Each surface's line-up: (label, optimizer name, hyperparameters). Rates chosen to show the lecture's
# points; ``reslab playground --lr`` changes them.
LINEUPS: dict[str, list[tuple[str, str, dict]]] = {
    "ravine": [
        ("GD eta=0.005", "sgd", {"lr": 0.005}),
        ("GD eta=0.048", "sgd", {"lr": 0.048}),
        ("momentum eta=0.005", "momentum", {"lr": 0.005, "momentum": 0.9}),
        ("Nesterov eta=0.005", "nesterov", {"lr": 0.005, "momentum": 0.9}),
        ("AdaGrad eta=0.5", "adagrad", {"lr": 0.5}),
        ("RMSProp eta=0.05", "rmsprop", {"lr": 0.05}),
        ("Adam eta=0.1", "adam", {"lr": 0.1}),
    ],
    "saddle": [
        ("GD eta=0.01", "sgd", {"lr": 0.01}),
        ("momentum eta=0.01", "momentum", {"lr": 0.01, "momentum": 0.9}),
        ("AdaGrad eta=0.1", "adagrad", {"lr": 0.1}),
        ("RMSProp eta=0.01", "rmsprop", {"lr": 0.01}),
        ("Adam eta=0.02", "adam", {"lr": 0.02}),
    ],
    "rosenbrock": [
        ("GD eta=0.001", "sgd", {"lr": 0.001}),
        ("momentum eta=0.001", "momentum", {"lr": 0.001, "momentum": 0.9}),
        ("Nesterov eta=0.001", "nesterov", {"lr": 0.001, "momentum": 0.9}),
        ("RMSProp eta=0.01", "rmsprop", {"lr": 0.01}),
        ("Adam eta=0.05", "adam", {"lr": 0.05}),
    ],
    "beale": [
        ("GD eta=0.01", "sgd", {"lr": 0.01}),
        ("momentum eta=0.005", "momentum", {"lr": 0.005, "momentum": 0.9}),
        ("AdaGrad eta=0.5", "adagrad", {"lr": 0.5}),
        ("RMSProp eta=0.01", "rmsprop", {"lr": 0.01}),
        ("Adam eta=0.05", "adam", {"lr": 0.05}),
    ],
    "bowl1d": [
        ("GD eta=0.05 (too small)", "sgd", {"lr": 0.05}),
        ("GD eta=0.5 (one step)", "sgd", {"lr": 0.5}),
        ("GD eta=0.95 (oscillates)", "sgd", {"lr": 0.95}),
        ("GD eta=1.05 (diverges)", "sgd", {"lr": 1.05}),
    ],
}


@dataclass
class Trajectory:
    label: str
    optimizer: str
    hyper: dict
    points: list[tuple[float, ...]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    steps_to_tol: int | None = None
    diverged: bool = False


def run_optimizer(surface: Surface, label: str, name: str, hyper: dict, *, steps: int, tol: float,
                  start: tuple[float, ...] | None = None, noise=None, sigma: float = 0.0) -> Trajectory:
    """Minimise ``surface`` from ``start`` (its own by default) with one optimizer, in float64; stop early
    on divergence. ``noise``: a standard-normal draw per step and coordinate, added to the gradient
    times ``sigma`` (stochastic gradient descent's noise, made reproducible)."""
    w = torch.tensor(surface.start if start is None else start, dtype=torch.float64, requires_grad=True)
    opt = create_optimizer(name, [w], impl="reference", **hyper)
    best = surface.min_value()
    start_gap = max(float(surface.loss(w.detach())) - best, 1e-12)
    traj = Trajectory(label, name, dict(hyper))
    for step in range(steps + 1):
        loss = surface.loss(w)
        value = float(loss.detach())
        traj.points.append(tuple(float(v) for v in w.detach()))
        traj.losses.append(value)
        if not math.isfinite(value) or value - best > 1e3 * start_gap:  # a thousand times worse than the start
            traj.diverged = True
            break
        if traj.steps_to_tol is None and value - best < tol:
            traj.steps_to_tol = step
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        if noise is not None:
            w.grad.add_(torch.tensor(noise[step], dtype=torch.float64) * sigma)
        opt.step()
    return traj


def run_surface(name: str, *, steps: int | None = None, tol: float = 1e-3,
                lineup: list[tuple[str, str, dict]] | None = None) -> list[Trajectory]:
    """Every optimizer of the line-up on one surface (``steps``: the surface's own budget by default)."""
    surface = SURFACES[name]
    steps = steps or surface.steps
    return [run_optimizer(surface, label, opt, hyper, steps=steps, tol=tol)
            for label, opt, hyper in (lineup or LINEUPS[name])]
