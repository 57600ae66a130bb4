"""The depth experiment's summary figure (``reslab experiment depth``): final error against depth for each
family, He et al.'s Table 6 beside the residual networks; drawn with matplotlib for the PNG kept beside the
report and with Plotly for the page, from the record's table."""

from __future__ import annotations

from typing import Sequence

import re

import plotly.graph_objects as go

from reslab.report.interactive import COLORS, layout
from reslab.report.plots import plt

FAMILIES = (("plain", "plain"), ("resnet", "residual"))
SERIES = (("final val error %", "validation", 2.4, "solid"), ("final train error %", "training", 1.0, "dash"))


def beside_label(beside: dict | None) -> str:
    """What the hollow points are, for the legend: the setting values of the other record where they differ from
    this one's (``train.precision: bf16 there, fp32 here`` gives "bf16") and its folder; "beside" without one."""
    if not isinstance(beside, dict) or not beside.get("folder"):
        return "beside"
    there = [m[1] for d in beside.get("differs", []) if (m := re.fullmatch(r"[\w.]+: (.+?) there, .+ here", d))]
    return f"{', '.join(there)} ({beside['folder']})" if there else str(beside["folder"])


def depth_series(table: Sequence[dict], beside_name: str = "beside") -> list[dict]:
    """The lines to draw: per family and error kind, the depths and errors in order of depth; then He et al.'s
    test errors where the table has them. Families with fewer than two depths are left out (no line to read).
    Another record's validation errors set beside (``reslab experiment depth --experiment.beside``) are points,
    hollow, at whichever depths it has, named ``beside_name``."""
    series = []
    for i, (prefix, label) in enumerate(FAMILIES):
        rows = sorted((r for r in table if str(r["model"]).startswith(prefix)), key=lambda r: r["depth"])
        if len(rows) < 2:
            continue
        for key, kind, width, dash in SERIES:
            if not all(isinstance(r.get(key), (int, float)) for r in rows):
                continue  # a run that logged no training step has no final training error
            series.append({"name": f"{label} {kind}", "x": [r["depth"] for r in rows], "y": [r[key] for r in rows],
                           "color": i, "width": width, "dash": dash})
        beside = [r for r in rows if isinstance(r.get("val error % beside"), (int, float))]
        if beside and any(x["color"] == i for x in series):
            series.append({"name": f"{label} validation, {beside_name}", "x": [r["depth"] for r in beside],
                           "y": [r["val error % beside"] for r in beside], "color": i, "width": 0, "dash": "points"})
    paper = sorted((r["depth"], r["paper test error %"]) for r in table
                   if isinstance(r.get("paper test error %"), (int, float)))
    if series and len(paper) >= 2:
        series.append({"name": "He et al. test error (residual)", "x": [d for d, _ in paper],
                       "y": [e for _, e in paper], "color": None, "width": 1.2, "dash": "dot"})
    return series


def depth_figure(table: Sequence[dict], beside_name: str = "beside"):
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for s in depth_series(table, beside_name):
        color = "0.2" if s["color"] is None else COLORS[s["color"]]
        if s["dash"] == "points":
            ax.scatter(s["x"], s["y"], s=60, facecolors="none", edgecolors=color, linewidths=1.5, label=s["name"])
            continue
        ax.plot(s["x"], s["y"], marker="x" if s["color"] is None else "o", lw=s["width"], color=color,
                linestyle={"solid": "-", "dash": "--", "dot": ":"}[s["dash"]], label=s["name"])
    depths = sorted({r["depth"] for r in table})
    ax.set_xticks(depths)
    ax.set_xlabel("depth (layers)")
    ax.set_ylabel("final error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def depth(table: Sequence[dict], beside_name: str = "beside") -> go.Figure:
    fig = go.Figure()
    for s in depth_series(table, beside_name):
        color = "#333333" if s["color"] is None else COLORS[s["color"]]
        if s["dash"] == "points":
            fig.add_trace(go.Scatter(x=s["x"], y=s["y"], name=s["name"], mode="markers",
                                     marker=dict(symbol="circle-open", size=11, color=color, line=dict(width=2)),
                                     hovertemplate="depth %{x}: %{y:.2f}%<extra>" + s["name"] + "</extra>"))
            continue
        fig.add_trace(go.Scatter(x=s["x"], y=s["y"], name=s["name"], mode="lines+markers",
                                 marker=dict(symbol="x" if s["color"] is None else "circle", color=color),
                                 line=dict(color=color, width=s["width"], dash=s["dash"]),
                                 hovertemplate="depth %{x}: %{y:.2f}%<extra>" + s["name"] + "</extra>"))
    fig.update_xaxes(title_text="depth (layers)", tickvals=sorted({r["depth"] for r in table}))
    fig.update_yaxes(title_text="final error (%)")
    return layout(fig, height=380)
