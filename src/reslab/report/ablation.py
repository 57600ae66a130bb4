"""The ablation's figures (``reslab experiment ablation``), each drawn twice from the same record: with
matplotlib for the PNG kept beside the report, and with Plotly for the page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reslab.report.interactive import COLORS, layout
from reslab.report.plots import plt

if TYPE_CHECKING:
    from reslab.report.page import Page

MODELS = {"absorbed": "re-encoding absorbs the first rounding", "added": "re-encoding adds to the first rounding"}


def jpeg_panels(points: Sequence[dict], cost: dict | None) -> list[dict]:
    """One panel per model of re-encoding: the arms' errors against JPEG's quantisation noise power, with the
    fitted line read at zero (the lossless images). A record without fits gets one panel against quality."""
    if not cost or "fits" not in cost:
        return [{"title": "", "x": [p["quality"] for p in points], "xlabel": "JPEG quality", "line": None,
                 "chord": None}]
    panels = []
    for model, fit in cost["fits"].items():
        xs = [fit["x"][str(p["quality"])] for p in points]
        chord = fit.get("chord")  # absent from records made before the chord was read
        panels.append({"title": MODELS.get(model, model), "x": xs, "line": (fit["intercept"], fit["slope"]),
                       "chord": (chord["intercept"], chord["slope"], sorted(xs)[1]) if chord else None,
                       "xlabel": "quantisation noise power, s(q)^2 (quality 50 = 1)"})
    return panels


def _ys(points: Sequence[dict]) -> tuple[list[float], list[float]]:
    return [p["val error %"] for p in points], [p["val sd"] for p in points]


def jpeg_figure(points: Sequence[dict], cost: dict | None = None):
    panels = jpeg_panels(points, cost)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), sharey=True, squeeze=False)
    ys, sds = _ys(points)
    for ax, panel in zip(axes[0], panels):
        ax.errorbar(panel["x"], ys, yerr=sds, fmt="o", capsize=3, color=COLORS[0], label="arms (bars: seed sd)")
        for x, y, p in zip(panel["x"], ys, points):
            ax.annotate(f"q{p['quality']}", (x, y), textcoords="offset points", xytext=(6, -12), fontsize=8)
        if panel["line"]:
            a, b = panel["line"]
            top = max(panel["x"]) * 1.05
            ax.plot([0, top], [a, a + b * top], color=COLORS[1], label=f"weighted line (lossless: {a:.2f}%)")
            ax.plot([0], [a], "s", color=COLORS[1])
        if panel["line"] and panel["chord"]:
            a, b, end = panel["chord"]
            ax.plot([0, end], [a, a + b * end], "--", color=COLORS[2],
                    label=f"chord q75 to the next quality (lossless: {a:.2f}%)")
            ax.plot([0], [a], "s", color=COLORS[2])
        if not panel["line"]:
            ax.invert_xaxis()
        ax.set_title(panel["title"], fontsize=10)
        ax.set_xlabel(panel["xlabel"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")  # each panel reads its own lossless values
    axes[0][0].set_ylabel("final validation error (%)")
    fig.tight_layout()
    return fig


def jpeg(points: Sequence[dict], cost: dict | None = None) -> go.Figure:
    panels = jpeg_panels(points, cost)
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True, subplot_titles=[p["title"] for p in panels])
    ys, sds = _ys(points)
    labels = [f"q{p['quality']}" for p in points]
    for col, panel in enumerate(panels, start=1):
        fig.add_trace(go.Scatter(x=panel["x"], y=ys, error_y=dict(array=sds), mode="markers+text", text=labels,
                                 textposition="bottom right", marker=dict(color=COLORS[0], size=8), name="arms",
                                 showlegend=col == 1, hovertemplate="%{text}: %{y:.2f}%<extra></extra>"), row=1, col=col)
        if panel["line"]:
            a, b = panel["line"]
            top = max(panel["x"]) * 1.05
            fig.add_trace(go.Scatter(x=[0, top], y=[a, a + b * top], mode="lines", line=dict(color=COLORS[1]),
                                     name="weighted line", showlegend=col == 1,
                                     hovertemplate="%{y:.2f}%<extra>line</extra>"), row=1, col=col)
            fig.add_trace(go.Scatter(x=[0], y=[a], mode="markers", marker=dict(symbol="square", color=COLORS[1]),
                                     name="lossless (read at 0)", showlegend=col == 1,
                                     hovertemplate="lossless: %{y:.2f}%<extra></extra>"), row=1, col=col)
        if panel["line"] and panel["chord"]:
            a, b, end = panel["chord"]
            fig.add_trace(go.Scatter(x=[0, end], y=[a, a + b * end], mode="lines+markers",
                                     line=dict(color=COLORS[2], dash="dash"), marker=dict(symbol="square", size=[8, 0]),
                                     name="chord q75 to the next quality", showlegend=col == 1,
                                     hovertemplate="%{y:.2f}%<extra>chord</extra>"), row=1, col=col)
        if not panel["line"]:
            fig.update_xaxes(autorange="reversed", row=1, col=col)
        fig.update_xaxes(title_text=panel["xlabel"], row=1, col=col)
    fig.update_yaxes(title_text="final validation error (%)", row=1, col=1)
    return layout(fig, height=380)


def effect_rows(table: Sequence[dict]) -> list[dict]:
    return [r for r in table if r.get("effect on val error") is not None]


def effects_figure(table: Sequence[dict]):
    """Each arm's effect on the validation error against the base, with its 95% interval."""
    rows = effect_rows(table)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.4))
    for i, r in enumerate(rows):
        half, strong = r["effect ci95"], r["effect p"] < 0.05  # Welch's t on the seeds, not +-1.96 se
        ax.errorbar(r["effect on val error"], i, xerr=half, fmt="o", capsize=3,
                    color=COLORS[3] if strong else "0.55")
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_yticks(range(len(rows)), [r["arm"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("effect on final validation error (points; bars: 95% interval)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def effects(table: Sequence[dict]) -> go.Figure:
    rows = effect_rows(table)
    colors = [COLORS[3] if r["effect p"] < 0.05 else "#8c8c8c" for r in rows]
    fig = go.Figure(go.Scatter(
        x=[r["effect on val error"] for r in rows], y=[r["arm"] for r in rows], mode="markers",
        error_x=dict(array=[r["effect ci95"] for r in rows]), marker=dict(color=colors, size=9),
        customdata=[[r["effect ci95"], r["seeds"], r["what differs"], r["effect p"],
                     "-" if r.get("effect p (Dunnett)") is None else f"{r['effect p (Dunnett)']:.3g}"] for r in rows],
        hovertemplate="%{y}: %{x:+.2f} +- %{customdata[0]:.2f} points (95%), Welch p = %{customdata[3]:.3g}, "
                      "Dunnett p = %{customdata[4]}, %{customdata[1]} seeds<br>%{customdata[2]}<extra></extra>"))
    fig.add_vline(x=0, line=dict(color="#555", width=1))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="effect on final validation error (points; bars: 95% interval)")
    return layout(fig, height=int(40 * len(rows) + 120))


def ablation_sections(page: "Page", exp: dict) -> None:
    """The ablation's part of its report: the effects, the JPEG figure, the gap to the paper."""
    if effect_rows(exp.get("table", [])):
        page.h2("Effects")
        page.figure(effects_figure(exp["table"]), "effects", "Each arm's effect on the final validation "
                    "error against the base (mean over seeds), with its 95% interval from Welch's t-test on the "
                    "seeds; coloured where the interval excludes zero.", effects(exp["table"]))
    if exp.get("jpeg"):
        page.h2("Error against JPEG quality")
        page.figure(jpeg_figure(exp["jpeg"], exp.get("jpeg_cost")), "jpeg_quality",
                    "Final validation error (mean; bars: seed standard deviation) at each JPEG quality, against "
                    "JPEG's quantisation noise power, with the line weighted by each arm's standard error read at "
                    "zero (lossless), and the chord from quality 75 to the next quality (dashed), the slope nearest "
                    "the lossless end: no arm sees the curve below quality 75. Re-encoding compresses twice; the two "
                    "panels are the two ways that can go. The JPEG-75 copy's cost is the interval from the lowest "
                    "of the four readings to the highest.",
                    jpeg(exp["jpeg"], exp.get("jpeg_cost")))
    gap = exp.get("gap")
    if gap:
        page.h2("The gap to the paper, split into causes")
        page.p(f"Reference run: {exp.get('reference')}, {gap['reference error %']:.2f}% against He et al.'s "
               f"{gap['paper error %']:.2f}%: a gap of {gap['gap']:.2f} points. Each row is the error the cause adds "
               "to the reference, from the arms' effects.")
        rows = [[c["cause"], c["arm"], c["low"] if c["low"] == c["high"] else f"{c['low']} to {c['high']}", c["se"]]
                for c in gap["causes"]]
        span = lambda pair: pair[0] if pair[0] == pair[1] else f"{pair[0]} to {pair[1]}"  # noqa: E731
        rows += [[u["cause"], f"(no {u['arm']} arm)", "not measured", ""] for u in gap.get("unmeasured", [])]
        rows += [["explained", "", span(gap["explained"]), gap["se"]],
                 ["left unexplained", "", span(gap["unexplained"]), gap["se"]]]
        page.table(["cause", "arm", "points", "se"], rows)
    adds = exp.get("additivity")
    if adds:
        page.p(f"Do the effects add up? The combined arm: {adds['combined']:+.2f} points; its parts one at a time: "
               f"{adds['sum of parts']:+.2f}; difference {adds['difference']:+.2f} (standard error {adds['se']:.2f}).")
