"""Figures from saved results. Every function takes plain data and returns a matplotlib Figure."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def save_figure(fig, base: Path) -> tuple[Path, Path]:
    """Write ``base.png`` and ``base.svg`` and close the figure."""
    base.parent.mkdir(parents=True, exist_ok=True)
    png, svg = base.with_suffix(".png"), base.with_suffix(".svg")
    fig.savefig(png, dpi=110)
    fig.savefig(svg)
    plt.close(fig)
    return png, svg


def split_rows(rows: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    return [r for r in rows if r.get("kind") == "train"], [r for r in rows if r.get("kind") == "eval"]


def run_curves_figure(rows: Sequence[dict], *, title: str = ""):
    """Error and loss per iteration of one run: thin = training, bold = validation."""
    train, val = split_rows(rows)
    fig, (ax_e, ax_l) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        ax_e.plot([r["step"] for r in train], [100 * r["train_error"] for r in train], lw=0.8, color=COLORS[0],
                  label="train")
        ax_l.plot([r["step"] for r in train], [r["train_loss"] for r in train], lw=0.8, color=COLORS[0], label="train")
    val = [r for r in val if "val_error" in r]
    if val:
        ax_e.plot([r["step"] for r in val], [100 * r["val_error"] for r in val], lw=2.2, color=COLORS[1],
                  label="validation")
        ax_l.plot([r["step"] for r in val], [r["val_loss"] for r in val], lw=2.2, color=COLORS[1], label="validation")
    ax_e.set_ylabel("error (%)")
    ax_l.set_ylabel("loss")
    for ax in (ax_e, ax_l):
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend()
    ax_e.set_ylim(0, min(100, max([100 * r["train_error"] for r in train[len(train) // 20:]] or [100]) * 1.3 + 2))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def degradation_figure(curves: dict[str, Sequence[dict]], panels: Sequence[tuple[str, Sequence[str]]], *,
                       ymax: float | None = None):
    """He et al. Figure 6 style: one panel per family (plain | residual); thin = training error,
    bold = validation error; one colour per depth."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.3), sharey=True, squeeze=False)
    top = 0.0
    for ax, (title, names) in zip(axes[0], panels):
        for i, name in enumerate(names):
            train, val = split_rows(curves.get(name, []))
            c = COLORS[i % 10]
            if train:
                ys = [100 * r["train_error"] for r in train]
                ax.plot([r["step"] for r in train], ys, lw=0.8, color=c, alpha=0.9)
                top = max(top, max(ys[len(ys) // 10:] or ys))
            val = [r for r in val if "val_error" in r]
            if val:
                ax.plot([r["step"] for r in val], [100 * r["val_error"] for r in val], lw=2.4, color=c, label=name)
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(title="bold: validation, thin: training", fontsize=8, title_fontsize=8)
    axes[0][0].set_ylabel("error (%)")
    axes[0][0].set_ylim(0, ymax or min(100, top * 1.15 + 2))
    fig.tight_layout()
    return fig


def gradient_figure(flows: dict[str, dict], *, key: str = "weight_grad_norm", title: str = ""):
    """Gradient norm per layer against depth (log scale), one line per network or checkpoint."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, (label, flow) in enumerate(flows.items()):
        layers = flow["layers"]
        ys = np.maximum([l[key] for l in layers], 1e-30)
        ax.semilogy([l["index"] for l in layers], ys, "-o", ms=2.5, lw=1.2, color=COLORS[i % 10],
                    label=f"{label} (first/last {ys[0] / ys[-1]:.2g})")
    ax.set_xlabel("layer (1 = nearest the input)")
    ax.set_ylabel({"weight_grad_norm": "||dL/dW||", "output_grad_norm": "||dL/d output|| per sample",
                   "output_norm": "||output|| per sample"}.get(key, key) + " (log scale)")
    ax.set_title(title or "Gradient norm per layer")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def responses_figure(responses: dict[str, Sequence[dict]], *, title: str = ""):
    """He et al. Figure 7: std of each 3x3 layer's response, in layer order (top) and sorted (bottom)."""
    fig, (ax_o, ax_s) = plt.subplots(2, 1, figsize=(8, 6.5))
    for i, (label, rows) in enumerate(responses.items()):
        stds = [r["std"] for r in rows]
        c = COLORS[i % 10]
        ax_o.plot(range(1, len(stds) + 1), stds, "-", lw=1.2, color=c, label=label)
        ax_s.plot(range(1, len(stds) + 1), sorted(stds, reverse=True), "-", lw=1.2, color=c, label=label)
    ax_o.set_xlabel("layer index (original order)")
    ax_s.set_xlabel("layer index (sorted by magnitude)")
    for ax in (ax_o, ax_s):
        ax.set_ylabel("std")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or "Standard deviation of the 3x3 layers' responses")
    fig.tight_layout()
    return fig


def grid_figure(cells: dict[tuple[str, str], dict], rows: Sequence[str], cols: Sequence[str], *, key: str,
                title: str):
    """Small multiples: gradient norm versus depth for each (row, column) condition, lines per variant."""
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.6 * len(cols), 2.8 * len(rows)), squeeze=False,
                             sharex=True)
    for r, row in enumerate(rows):
        for c, col in enumerate(cols):
            ax = axes[r][c]
            for i, (label, flow) in enumerate(cells.get((row, col), {}).items()):
                ys = np.maximum([l[key] for l in flow["layers"]], 1e-30)
                ax.semilogy(range(1, len(ys) + 1), ys, lw=1.2, color=COLORS[i % 10], label=label)
            ax.set_title(f"{row}, {col}", fontsize=9)
            ax.grid(alpha=0.3, which="both")
            if r == 0 and c == 0:
                ax.legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("layer")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
