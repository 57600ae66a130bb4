"""Test surfaces on which the lecture draws its optimizers: each a loss of a 2-D (or 1-D) parameter.

Every surface is a pure function of a tensor ``w`` (shape (2,) or (1,)), with its minimiser, the
plotting window and a start point that shows the difficulty it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor


@dataclass(frozen=True)
class Surface:
    name: str
    title: str
    loss: Callable[[Tensor], Tensor]
    start: tuple[float, ...]
    minimum: tuple[float, ...]
    window: tuple[tuple[float, float], ...]  # plotting range per coordinate
    lesson: str  # what the surface shows
    steps: int = 300  # default budget of the playground on this surface

    @property
    def dims(self) -> int:
        return len(self.start)

    def min_value(self) -> float:
        return float(self.loss(torch.tensor(self.minimum, dtype=torch.float64)))


def ravine(w: Tensor) -> Tensor:
    """Ill-conditioned quadratic: curvature 1 along x, 40 across y (condition number 40)."""
    return 0.5 * (w[0] ** 2 + 40.0 * w[1] ** 2)


def saddle(w: Tensor) -> Tensor:
    """x^2 - y^2 + y^4/2: a saddle at the origin, flat around it, minima at (0, +-1)."""
    return w[0] ** 2 - w[1] ** 2 + 0.5 * w[1] ** 4


def rosenbrock(w: Tensor) -> Tensor:
    """(1 - x)^2 + 100 (y - x^2)^2: a curved, narrow valley; minimum at (1, 1)."""
    return (1 - w[0]) ** 2 + 100.0 * (w[1] - w[0] ** 2) ** 2


def beale(w: Tensor) -> Tensor:
    """Beale's function: flat plateaus and steep ridges; minimum at (3, 0.5)."""
    x, y = w[0], w[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2 + (2.625 - x + x * y ** 3) ** 2


def bowl1d(w: Tensor) -> Tensor:
    """w^2 in one dimension: gradient descent converges for eta < 1 and diverges for eta > 1."""
    return w[0] ** 2


SURFACES = {
    "ravine": Surface("ravine", "Ill-conditioned quadratic ravine", ravine, (-4.5, 0.6), (0.0, 0.0),
                      ((-5, 5), (-1, 1)), "a small rate crawls along the ravine floor, a large one zig-zags "
                      "across it; momentum builds speed along it"),
    "saddle": Surface("saddle", "Saddle point x^2 - y^2 + y^4/2", saddle, (1.0, 1e-3), (0.0, 1.0),
                      ((-1.2, 1.2), (-1.5, 1.5)), "the gradient nearly vanishes near the saddle: plain steps "
                      "stall on the plateau, adaptive methods rescale the tiny gradient and leave"),
    "rosenbrock": Surface("rosenbrock", "Rosenbrock's valley", rosenbrock, (-1.5, 2.0), (1.0, 1.0),
                          ((-2, 2), (-1, 3)), "the valley is easy to find and slow to follow", steps=3000),
    "beale": Surface("beale", "Beale's function", beale, (1.0, 1.6), (3.0, 0.5), ((-1, 4.5), (-1.5, 2)),
                     "plateaus and steep walls: steps sized by the gradient alone misbehave", steps=2000),
    "bowl1d": Surface("bowl1d", "One-dimensional bowl w^2", bowl1d, (1.0,), (0.0,), ((-3, 3),),
                      "the step size decides: too small converges slowly, too large oscillates or diverges",
                      steps=60),
}
