"""The report's page: sections of text, tables and figures, written as one HTML file.

:class:`Page` saves each matplotlib figure beside the report (PNG and SVG) and puts in the page either its
interactive Plotly twin or the PNG inlined as a data URI; Plotly's library goes in once, inlined or shared
beside the report. What goes on a page is :mod:`reslab.report.html`'s business (and, for the ablation,
:mod:`reslab.report.ablation`'s).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from reslab.report import plots
from reslab.rundir import Folder

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; } td, th { border: 1px solid #ccc; padding: 4px 10px; }
th { background: #f4f4f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; } figcaption a.static { font-size: 0.85em; } .nav { color: #444; } .verdict { background: #f3f8ff; border-left: 4px solid #3a7bd5;
padding: 0.6em 1em; } pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


class Page:
    """Accumulates sections; figures are saved beside the report and inlined."""

    def __init__(self, root: Path, title: str) -> None:
        self.folder = Folder(root)
        self.fig_dir = self.folder.figures_dir
        self.title = title
        self.parts: list[str] = []
        self.figures: list[str] = []
        self.interactive = 0  # Plotly figures on the page

    def h2(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def p(self, text: str, cls: str = "") -> None:
        c = f' class="{cls}"' if cls else ""
        self.parts.append(f"<p{c}>{html.escape(text)}</p>")

    def pre(self, text: str) -> None:
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        def cell(v: Any) -> str:
            if isinstance(v, float):
                return f'<td class="num">{v:.4g}</td>'
            if isinstance(v, int):
                return f'<td class="num">{v:,}</td>'
            return f"<td>{html.escape(str(v))}</td>"
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def figure(self, fig, name: str, caption: str, interactive=None) -> None:
        """A matplotlib figure, saved as PNG and SVG beside the report; in the page, its interactive Plotly
        twin where one is given (the PNG linked for printing), else the PNG itself, inlined."""
        png, _ = plots.save_figure(fig, self.fig_dir / name)
        self.figures.append(name)
        if interactive is not None:
            import plotly.io as pio

            div = pio.to_html(interactive, include_plotlyjs=False, full_html=False, div_id=f"plot-{name}",
                              config={"displaylogo": False, "responsive": True})
            link = f"{self.fig_dir.name}/{png.name}"
            self.parts.append(f'<figure id="fig-{html.escape(name)}">{div}<figcaption>{html.escape(caption)} '
                              f'<a class="static" href="{html.escape(link)}">PNG</a></figcaption></figure>')
            self.interactive += 1
            return
        data = base64.b64encode(png.read_bytes()).decode()
        self.parts.append(f'<figure id="fig-{html.escape(name)}"><img alt="{html.escape(caption)}" '
                          f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>')

    def _library(self, plotly_js: str) -> str:
        """Plotly's JavaScript: inlined once (the page stays one file that opens offline), or, with
        ``plotly_js="beside"``, one copy beside the report that several reports share."""
        if not self.interactive:
            return ""
        from plotly.offline import get_plotlyjs

        if plotly_js == "beside":
            shared = self.folder.plotly_js
            code = get_plotlyjs()
            if not shared.is_file() or shared.read_text(encoding="utf-8") != code:
                shared.write_text(code, encoding="utf-8")
            return f'<script src="{shared.name}"></script>'
        return f"<script>{get_plotlyjs()}</script>"

    def write(self, plotly_js: str = "inline") -> Path:
        from reslab.playground.page import write_page

        out = self.folder.report
        body = "\n".join(self.parts)
        playground = write_page(self.folder.playground, report=out.name)
        out.write_text(f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                       f"<title>{html.escape(self.title)}</title><style>{STYLE}</style>{self._library(plotly_js)}"
                       f"</head><body><h1>{html.escape(self.title)}</h1>\n"
                       f'<p class="nav">Hover a curve to read it, click a legend entry to hide a run, drag the loss '
                       f'surface to turn it. The <a href="{playground.name}">optimizer playground</a> beside this '
                       f"report lets you step the lecture's optimizers on test surfaces.</p>\n{body}\n"
                       f"<p style=\"color:#888;font-size:0.8em\">Built by reslab from the files in this folder.</p>"
                       f"</body></html>\n")
        return out
