"""The live optimizer playground: one self-contained HTML page (no network, no library) in which the
student picks a surface, clicks a start point, moves the sliders and watches every update rule step.

The page's JavaScript holds the surfaces' gradients and reslab.optim's update rules written out in
float64, operation for operation; a test runs it in headless Chromium and compares its trajectories
with :func:`reslab.playground.run.run_optimizer`'s to 1e-9. The page computes on load whatever a
``#selftest=<JSON cases>`` fragment asks and writes the results into ``<pre id="selftest">``.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

from reslab.playground.run import LINEUPS
from reslab.playground.surfaces import SURFACES

# The page's rules and the reslab.optim names they follow (gd and sgd: reslab.optim.SGD; sgd adds noise).
RULE_OPTIMIZER = {"gd": "sgd", "sgd": "sgd", "momentum": "momentum", "nesterov": "nesterov", "adagrad": "adagrad",
                  "rmsprop": "rmsprop", "adam": "adam"}
FALLBACK_LR = {"gd": 0.01, "sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.1, "rmsprop": 0.01,
               "adam": 0.05}


def default_rates(surface: str) -> dict[str, float]:
    """Each rule's starting rate on ``surface``: the playground line-up's, else a rate that moves."""
    first = {}
    for _, optimizer, hyper in LINEUPS.get(surface, []):
        first.setdefault(optimizer, hyper["lr"])
    return {rule: first.get(opt, FALLBACK_LR[rule]) for rule, opt in RULE_OPTIMIZER.items()}


def page_data(report: str | None = None) -> dict:
    return {"report": report, "surfaces": {
        name: {"title": s.title, "lesson": s.lesson, "start": list(s.start), "minimum": list(s.minimum),
               "window": [list(w) for w in s.window], "steps": s.steps, "dims": s.dims, "min_value": s.min_value(),
               "lr": default_rates(name)}
        for name, s in SURFACES.items()}}


def render_page(report: str | None = None) -> str:
    template = files("reslab.playground").joinpath("page.html").read_text(encoding="utf-8")
    data = json.dumps(page_data(report)).replace("</", "<\\/")  # nothing in the data can close the script
    return template.replace("/*RESLAB_DATA*/", data, 1)


def write_page(out: str | Path, *, report: str | None = None) -> Path:
    """Write the playground page to ``out``; ``report``: a link to a training report, relative to the page."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_page(report), encoding="utf-8")
    return out
