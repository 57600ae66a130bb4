"""Pictures of the playground: contour plots with trajectories, loss curves, an animation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib import animation  # noqa: E402

from reslab.playground.run import Trajectory  # noqa: E402
from reslab.playground.surfaces import Surface  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _grid(surface: Surface, n: int = 300):
    (x0, x1), (y0, y1) = surface.window
    xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    X, Y = np.meshgrid(xs, ys)
    Z = surface.loss(torch.tensor(np.stack([X, Y]), dtype=torch.float64)).numpy()
    return X, Y, Z


def _contour(ax, surface: Surface) -> None:
    X, Y, Z = _grid(surface)
    shifted = Z - Z.min() + 1e-3
    levels = np.logspace(np.log10(shifted.min()), np.log10(shifted.max()), 30)
    ax.contour(X, Y, shifted, levels=levels, cmap="Greys", linewidths=0.6, alpha=0.7)
    ax.plot(*surface.minimum, marker="*", color="k", markersize=12, zorder=5)
    ax.set_xlim(*surface.window[0])
    ax.set_ylim(*surface.window[1])


def _clip(points, surface: Surface) -> np.ndarray:
    pts = np.array(points)
    lo = np.array([w[0] for w in surface.window]) - 10
    hi = np.array([w[1] for w in surface.window]) + 10
    return np.clip(pts, lo, hi)


def contour_figure(surface: Surface, trajectories: list[Trajectory]):
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    if surface.dims == 1:
        xs = np.linspace(*surface.window[0], 400)
        ax.plot(xs, surface.loss(torch.tensor(xs[None])).numpy(), color="0.6")
        for i, t in enumerate(trajectories):
            pts = _clip(t.points, surface)[:, 0]
            ax.plot(pts, surface.loss(torch.tensor(pts[None])).numpy(), "o-", ms=3, lw=1, color=COLORS[i % 10],
                    label=t.label + (" (diverged)" if t.diverged else ""))
        ax.set_xlim(*surface.window[0])
        ax.set_ylim(-0.2, surface.window[0][1] ** 2)
        ax.set_xlabel("w")
        ax.set_ylabel("loss")
    else:
        _contour(ax, surface)
        for i, t in enumerate(trajectories):
            pts = _clip(t.points, surface)
            ax.plot(pts[:, 0], pts[:, 1], "-", lw=1.4, color=COLORS[i % 10],
                    label=t.label + (" (diverged)" if t.diverged else ""))
            ax.plot(pts[-1, 0], pts[-1, 1], "o", ms=4, color=COLORS[i % 10])
        ax.plot(*surface.start, "ks", ms=5)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    ax.set_title(surface.title + "\n" + textwrap.fill(surface.lesson, 95), fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def loss_figure(surface: Surface, trajectories: list[Trajectory]):
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    best = surface.min_value()
    for i, t in enumerate(trajectories):
        gap = np.maximum(np.array(t.losses) - best, 1e-16)
        ax.semilogy(gap, color=COLORS[i % 10], label=t.label + (" (diverged)" if t.diverged else ""))
    ax.set_xlabel("step")
    ax.set_ylabel("loss - minimum (log scale)")
    ax.set_title(f"{surface.title}: loss per step", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def animate(surface: Surface, trajectories: list[Trajectory], path: Path, *, frames: int = 60, fps: int = 12) -> None:
    """An animated GIF of the trajectories being drawn (2-D surfaces)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    _contour(ax, surface)
    lines = [ax.plot([], [], "-", lw=1.4, color=COLORS[i % 10], label=t.label)[0] for i, t in enumerate(trajectories)]
    heads = [ax.plot([], [], "o", ms=4, color=COLORS[i % 10])[0] for i in range(len(trajectories))]
    ax.legend(fontsize=6, loc="upper right")
    ax.set_title(surface.title, fontsize=9)
    longest = max(len(t.points) for t in trajectories)
    clipped = [_clip(t.points, surface) for t in trajectories]

    def draw(frame: int):
        upto = max(1, int(longest * (frame + 1) / frames))
        for line, head, pts in zip(lines, heads, clipped):
            k = min(upto, len(pts))
            line.set_data(pts[:k, 0], pts[:k, 1])
            head.set_data([pts[k - 1, 0]], [pts[k - 1, 1]])
        return lines + heads

    anim = animation.FuncAnimation(fig, draw, frames=frames, blit=True)
    anim.save(path, writer=animation.PillowWriter(fps=fps))
    plt.close(fig)


def save(fig, base: Path) -> list[Path]:
    paths = [base.with_suffix(".png"), base.with_suffix(".svg")]
    for p in paths:
        fig.savefig(p, dpi=110)
    plt.close(fig)
    return paths
