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


def gradient_history_figure(rows: Sequence[dict], *, title: str = "", curves: int = 6):
    """Gradient norms recorded during training (the run's gradient record): per-layer weight-gradient norm
    against depth at a few recorded steps (early: light, late: dark), and the first/last-layer ratio
    at every recorded step."""
    fig, (ax_d, ax_r) = plt.subplots(1, 2, figsize=(11, 4))
    if rows:
        picks = sorted({round(i * (len(rows) - 1) / max(curves - 1, 1)) for i in range(curves)})
        cmap = plt.get_cmap("viridis")
        for j, i in enumerate(picks):
            norms = rows[i]["weight_grad_norm"]
            xs = [k + 1 for k, v in enumerate(norms) if v]
            ax_d.semilogy(xs, [v for v in norms if v], lw=1.2, color=cmap(0.9 - 0.8 * j / max(len(picks) - 1, 1)),
                          label=f"step {rows[i]['step']}")
        ratios = [(r["step"], r["weight_grad_norm"][0] / r["weight_grad_norm"][-1]) for r in rows
                  if r["weight_grad_norm"][0] and r["weight_grad_norm"][-1]]
        ax_r.semilogy([s for s, _ in ratios], [q for _, q in ratios], "-o", ms=3, color=COLORS[0])
        ax_r.axhline(1.0, color="gray", lw=0.8, ls=":")
        ax_d.legend(fontsize=7)
    ax_d.set_xlabel("layer (input to output)")
    ax_d.set_ylabel("weight-gradient norm")
    ax_d.set_title("per-layer gradient norm at recorded steps")
    ax_r.set_xlabel("iteration")
    ax_r.set_ylabel("first layer / last layer")
    ax_r.set_title("first / last layer gradient norm")
    for ax in (ax_d, ax_r):
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(title)
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


def lesion_figure(studies: dict[str, dict]):
    """Veit et al. Figures 3-5: error after deleting each block; after deleting k random blocks; re-ordering."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, (label, s) in enumerate(studies.items()):
        c = COLORS[i % 10]
        single = [b for b in s["single"] if b["error"] is not None]  # a plain down-sampling block has none
        xs = [b["block"] + 1 for b in single]
        ax = axes[0]
        ax.plot(xs, [100 * b["error"] for b in single], "-o", ms=3, color=c, label=label)
        ds = [b for b in single if b["downsampling"]]
        ax.plot([b["block"] + 1 for b in ds], [100 * b["error"] for b in ds], "x", ms=9, mew=2, color=c)
        ax.axhline(100 * s["baseline_error"], color=c, ls=":", lw=1)
        ks = s["random_k"]
        axes[1].errorbar([r["k"] for r in ks], [100 * r["mean"] for r in ks], yerr=[100 * r["std"] for r in ks],
                         color=c, marker="o", ms=3, capsize=2, label=label)
        if s.get("reorder"):
            ro = s["reorder"]
            axes[2].errorbar([r["swaps"] for r in ro], [100 * r["mean"] for r in ro],
                             yerr=[100 * r["std"] for r in ro], color=c, marker="o", ms=3, capsize=2, label=label)
    axes[0].set_title("delete one block (x: down-sampling block; dotted: intact)")
    axes[0].set_xlabel("deleted block")
    axes[1].set_title("delete k random identity blocks")
    axes[1].set_xlabel("k")
    axes[2].set_title("swap k random pairs of blocks")
    axes[2].set_xlabel("swaps")
    for ax in axes:
        ax.set_ylabel("error (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_ylim(0, 100)
    fig.tight_layout()
    return fig


def paths_figure(results: dict[str, dict]):
    """Veit et al. Figure 6: path-length distribution; gradient per path; total gradient per length."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, (label, r) in enumerate(results.items()):
        c = COLORS[i % 10]
        rows = r["rows"]
        ks = [row["length"] for row in rows]
        axes[0].bar(ks, [row["paths"] for row in rows], color=c, alpha=0.5, label=label)
        axes[1].semilogy(ks, [max(row["mean_grad_norm"], 1e-30) for row in rows], "-o", ms=3, color=c, label=label)
        axes[2].plot(ks, [row["total_grad"] for row in rows], "-o", ms=3, color=c, label=label)
    axes[0].set_title("number of paths of each length")
    axes[1].set_title("gradient norm of one path (log)")
    axes[2].set_title("total gradient from all paths of a length")
    for ax in axes:
        ax.set_xlabel("path length (residual branches passed)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def landscape_scale(results: dict[str, dict]) -> tuple[dict[str, np.ndarray], float, float]:
    """(log10 loss grid per network, low, high): one height scale for every network, from the lowest
    point to 3 decades above it, so that a steep, chaotic surface shows as many crowded contours beside
    a wide basin's few (Li et al. Figure 5)."""
    surfaces = {label: np.log10(np.maximum(np.array(r["surface"]["loss"], dtype=float), 1e-6))
                for label, r in results.items()}
    finite = np.concatenate([z[np.isfinite(z)].ravel() for z in surfaces.values()])
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(min(finite.max(), lo + 3.0)) if finite.size else 1.0
    return surfaces, lo, hi if hi > lo else lo + 1.0


def landscape_figure(results: dict[str, dict]):
    """Li et al.: contour of the 2-D slice (log loss) and a 3-D surface, one row per network."""
    n = len(results)
    fig = plt.figure(figsize=(12, 4.8 * n))
    surfaces, lo, hi = landscape_scale(results)
    levels = np.linspace(lo, hi, 26)
    for i, (label, r) in enumerate(results.items()):
        coords = np.array(r["surface"]["coords"])
        Z = surfaces[label]
        X, Y = np.meshgrid(coords, coords)
        ax = fig.add_subplot(n, 2, 2 * i + 1)
        cs = ax.contour(X, Y, Z, levels=levels, cmap="viridis")
        ax.clabel(cs, fontsize=6, fmt="%.1f")
        ax.plot(0, 0, "r*")
        ax.set_title(f"{label}: log10 loss, filter-normalised directions")
        ax3 = fig.add_subplot(n, 2, 2 * i + 2, projection="3d")
        ax3.plot_surface(X, Y, np.minimum(Z, levels[-1]), cmap="viridis", vmin=levels[0], vmax=levels[-1],
                         linewidth=0, antialiased=True)
        ax3.set_zlim(levels[0], levels[-1])
        ax3.set_title(f"{label}: surface (log10 loss, clipped at {levels[-1]:.1f})")
    fig.tight_layout()
    return fig


def interpolation_figure(results: dict[str, dict]):
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, r) in enumerate(results.items()):
        line = r["interpolation"]
        ax.semilogy(line["alphas"], line["loss"], "-o", ms=3, color=COLORS[i % 10], label=label)
    ax.set_xlabel("alpha: trained weights (0) to initialisation (1)")
    ax.set_ylabel("loss (log)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
