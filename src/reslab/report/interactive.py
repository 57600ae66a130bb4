"""The report's interactive figures, with Plotly: hover a curve to read a value, click a legend entry to
hide a run, turn the loss surface. Each function takes the same plain data as its matplotlib twin in
:mod:`reslab.report.plots` (which still draws the PNG kept beside the report) and returns a Plotly figure.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from matplotlib.colors import to_hex

from reslab.report.plots import COLORS as MPL_COLORS, landscape_scale, split_rows

COLORS = [to_hex(c) for c in MPL_COLORS]  # the PNGs' colours, as CSS for Plotly

FONT = dict(family="system-ui, -apple-system, Segoe UI, sans-serif", size=12)


def layout(fig: go.Figure, *, height: int, title: str = "") -> go.Figure:
    """The house style every interactive figure shares (font, template, margins, hover)."""
    fig.update_layout(height=height, title=dict(text=title, x=0.01), font=FONT, template="plotly_white",
                      margin=dict(l=60, r=20, t=50 if title else 30, b=50), hovermode="closest",
                      legend=dict(font=dict(size=11)))
    return fig


def run_curves(rows: Sequence[dict], *, title: str = "") -> go.Figure:
    """One run: error and loss per iteration, training (thin) and validation (bold)."""
    train, val = split_rows(rows)
    val = [r for r in val if "val_error" in r]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("error (%)", "loss"))
    for col, key, scale in ((1, "error", 100.0), (2, "loss", 1.0)):
        if train:
            fig.add_trace(go.Scatter(x=[r["step"] for r in train], y=[scale * r[f"train_{key}"] for r in train],
                                     name="training", legendgroup="train", showlegend=col == 1, mode="lines",
                                     line=dict(width=1, color=COLORS[0])), row=1, col=col)
        if val:
            fig.add_trace(go.Scatter(x=[r["step"] for r in val], y=[scale * r[f"val_{key}"] for r in val],
                                     name="validation", legendgroup="val", showlegend=col == 1, mode="lines+markers",
                                     line=dict(width=2.5, color=COLORS[1])), row=1, col=col)
    fig.update_xaxes(title_text="iteration")
    return layout(fig, height=380, title=title)


def degradation(curves: dict[str, Sequence[dict]], panels: Sequence[tuple[str, Sequence[str]]]) -> go.Figure:
    """He et al. Figure 6: a panel per family, training error thin and validation error bold, one colour
    per network; a legend entry toggles a network's two curves together."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for t, _ in panels], shared_yaxes=True)
    for col, (_, names) in enumerate(panels, start=1):
        for i, name in enumerate(names):
            train, val = split_rows(curves.get(name, []))
            color = COLORS[i % 10]
            if train:
                fig.add_trace(go.Scatter(x=[r["step"] for r in train], y=[100 * r["train_error"] for r in train],
                                         name=f"{name} training", legendgroup=name, mode="lines",
                                         line=dict(width=1, color=color), opacity=0.85), row=1, col=col)
            val = [r for r in val if "val_error" in r]
            if val:
                fig.add_trace(go.Scatter(x=[r["step"] for r in val], y=[100 * r["val_error"] for r in val],
                                         name=f"{name} validation", legendgroup=name, mode="lines+markers",
                                         line=dict(width=3, color=color)), row=1, col=col)
    fig.update_xaxes(title_text="iteration")
    fig.update_yaxes(title_text="error (%)", row=1, col=1)
    return layout(fig, height=430)


def gradient_flow(flows: dict[str, dict], *, key: str, title: str) -> go.Figure:
    """Gradient norm per layer, input to output (log scale), one line per network or checkpoint."""
    fig = go.Figure()
    for i, (label, flow) in enumerate(flows.items()):
        layers = flow["layers"]
        ys = np.maximum([layer[key] for layer in layers], 1e-30)
        fig.add_trace(go.Scatter(x=[layer["index"] for layer in layers], y=ys.tolist(), mode="lines+markers",
                                 name=f"{label} (first/last {ys[0] / ys[-1]:.2g})", marker=dict(size=4),
                                 line=dict(color=COLORS[i % 10]),
                                 text=[layer.get("name", "") for layer in layers],
                                 hovertemplate="layer %{x} %{text}<br>%{y:.3g}<extra>" + label + "</extra>"))
    fig.update_xaxes(title_text="layer (1 = nearest the input)")
    fig.update_yaxes(type="log", title_text=key.replace("_", " "))
    return layout(fig, height=420, title=title)


def responses(data: dict[str, Sequence[dict]]) -> go.Figure:
    """He et al. Figure 7: std of each 3x3 layer's response, in layer order and sorted."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("in layer order", "sorted by magnitude"))
    for i, (label, rows) in enumerate(data.items()):
        stds = [r["std"] for r in rows]
        xs = list(range(1, len(stds) + 1))
        for col, ys in ((1, stds), (2, sorted(stds, reverse=True))):
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=label, legendgroup=label, showlegend=col == 1,
                                     line=dict(color=COLORS[i % 10])), row=1, col=col)
    fig.update_xaxes(title_text="layer index")
    fig.update_yaxes(title_text="std", row=1, col=1)
    return layout(fig, height=380)


def lesion(studies: dict[str, dict]) -> go.Figure:
    """Veit et al. Figures 3-5: delete one block; delete k random blocks; swap k pairs."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("delete one block", "delete k random identity blocks",
                                                        "swap k random pairs of blocks"))
    for i, (label, s) in enumerate(studies.items()):
        color = COLORS[i % 10]
        single = [b for b in s["single"] if b["error"] is not None]
        fig.add_trace(go.Scatter(x=[b["block"] + 1 for b in single], y=[100 * b["error"] for b in single],
                                 mode="lines+markers", name=label, legendgroup=label, line=dict(color=color),
                                 marker=dict(symbol=["x" if b["downsampling"] else "circle" for b in single], size=7),
                                 hovertemplate="block %{x}: %{y:.1f}%<extra>" + label + "</extra>"), row=1, col=1)
        fig.add_hline(y=100 * s["baseline_error"], line=dict(color=color, dash="dot", width=1), row=1, col=1)
        for col, rows, key in ((2, s["random_k"], "k"), (3, s.get("reorder") or [], "swaps")):
            if rows:
                fig.add_trace(go.Scatter(x=[r[key] for r in rows], y=[100 * r["mean"] for r in rows],
                                         error_y=dict(array=[100 * r["std"] for r in rows]), mode="lines+markers",
                                         name=label, legendgroup=label, showlegend=False, line=dict(color=color)),
                              row=1, col=col)
    fig.update_yaxes(range=[0, 100], title_text="error (%)", row=1, col=1)
    return layout(fig, height=400)


def paths(results: dict[str, dict]) -> go.Figure:
    """Veit et al. Figure 6: paths of each length; gradient of one path; total gradient per length."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("paths of each length", "gradient norm of one path",
                                                        "total gradient from all paths of a length"))
    for i, (label, r) in enumerate(results.items()):
        color, rows = COLORS[i % 10], r["rows"]
        ks = [row["length"] for row in rows]
        fig.add_trace(go.Bar(x=ks, y=[row["paths"] for row in rows], name=label, legendgroup=label,
                             marker_color=color, opacity=0.6), row=1, col=1)
        fig.add_trace(go.Scatter(x=ks, y=[max(row["mean_grad_norm"], 1e-30) for row in rows], mode="lines+markers",
                                 name=label, legendgroup=label, showlegend=False, line=dict(color=color)), row=1, col=2)
        fig.add_trace(go.Scatter(x=ks, y=[row["total_grad"] for row in rows], mode="lines+markers", name=label,
                                 legendgroup=label, showlegend=False, line=dict(color=color)), row=1, col=3)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_xaxes(title_text="path length")
    return layout(fig, height=400)


def landscape(results: dict[str, dict]) -> go.Figure:
    """Li et al.: each network's 2-D slice as a rotatable 3-D surface (top) and a contour map (bottom), side
    by side, on one colour and height scale (log10 loss, clipped 3 decades above the lowest point)."""
    surfaces, lo, hi = landscape_scale(results)
    n = len(results)
    fig = make_subplots(rows=2, cols=n, specs=[[{"type": "surface"}] * n, [{"type": "contour"}] * n],
                        subplot_titles=[f"{label}: surface" for label in results] + [f"{label}: contours" for label in results],
                        vertical_spacing=0.08, row_heights=[0.58, 0.42])
    for col, (label, r) in enumerate(results.items(), start=1):
        coords = list(r["surface"]["coords"])
        z = np.where(np.isfinite(surfaces[label]), np.minimum(surfaces[label], hi), hi).tolist()
        fig.add_trace(go.Surface(x=coords, y=coords, z=z, cmin=lo, cmax=hi, colorscale="Viridis", name=label,
                                 showscale=col == n, colorbar=dict(title="log10 loss", len=0.5, y=0.75),
                                 hovertemplate="a %{x:.2f}, b %{y:.2f}: log10 loss %{z:.2f}<extra>" + label + "</extra>"),
                      row=1, col=col)
        fig.add_trace(go.Contour(x=coords, y=coords, z=z, zmin=lo, zmax=hi, colorscale="Viridis", showscale=False,
                                 contours=dict(start=lo, end=hi, size=(hi - lo) / 25, coloring="lines"), name=label,
                                 hovertemplate="a %{x:.2f}, b %{y:.2f}: log10 loss %{z:.2f}<extra>" + label + "</extra>"),
                      row=2, col=col)
        fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker=dict(symbol="star", size=12, color="red"),
                                 name="trained weights", showlegend=col == 1), row=2, col=col)
    scene = dict(zaxis=dict(range=[lo, hi], title="log10 loss"), xaxis_title="a", yaxis_title="b")
    fig.update_scenes(**scene)
    return layout(fig, height=900)


def interpolation(results: dict[str, dict]) -> go.Figure:
    fig = go.Figure()
    for i, (label, r) in enumerate(results.items()):
        line = r["interpolation"]
        fig.add_trace(go.Scatter(x=line["alphas"], y=line["loss"], mode="lines+markers", name=label,
                                 line=dict(color=COLORS[i % 10])))
    fig.update_xaxes(title_text="alpha: trained weights (0) to initialisation (1)")
    fig.update_yaxes(type="log", title_text="loss")
    return layout(fig, height=380)
