"""The live playground page: its JavaScript takes the same steps as reslab.optim, in float64, to 1e-9,
for every rule on two surfaces (and SGD's noise, handed to both); the page needs no network."""

import html
import json
from urllib.parse import quote

import numpy as np
import pytest

from reslab.playground.page import render_page, write_page
from reslab.playground.run import run_optimizer
from reslab.playground.surfaces import SURFACES

# page rule -> (reslab.optim name, its hyper-parameters from the page's); settings that do not diverge
RULES = {
    "gd": lambda h: ("sgd", {"lr": h["lr"]}),
    "sgd": lambda h: ("sgd", {"lr": h["lr"]}),
    "momentum": lambda h: ("momentum", {"lr": h["lr"], "momentum": h["momentum"]}),
    "nesterov": lambda h: ("nesterov", {"lr": h["lr"], "momentum": h["momentum"]}),
    "adagrad": lambda h: ("adagrad", {"lr": h["lr"]}),
    "rmsprop": lambda h: ("rmsprop", {"lr": h["lr"], "rho": h["rho"]}),
    "adam": lambda h: ("adam", {"lr": h["lr"], "betas": (h["beta1"], h["beta2"])}),
}
CASES = {  # surface: (start, steps, each rule's rate)
    "ravine": ((-4.0, 0.7), 150, {"gd": 0.02, "sgd": 0.01, "momentum": 0.004, "nesterov": 0.004, "adagrad": 0.4,
                                  "rmsprop": 0.03, "adam": 0.08}),
    "beale": ((1.2, 1.4), 200, {"gd": 0.01, "sgd": 0.005, "momentum": 0.004, "nesterov": 0.004, "adagrad": 0.3,
                                "rmsprop": 0.01, "adam": 0.04}),
}
SHARED = {"momentum": 0.85, "rho": 0.93, "beta1": 0.88, "beta2": 0.995, "sigma": 0.3}


def test_the_page_is_one_file_with_no_external_address(tmp_path):
    text = render_page(report="report.html")
    assert "http://" not in text and "https://" not in text and "<script src" not in text
    assert "/*RESLAB_DATA*/" not in text and '"report": "report.html"' in text
    path = write_page(tmp_path / "sub" / "p.html")
    assert path.read_text() == render_page()


def test_javascript_trajectories_equal_reslab_optim_to_1e9(tmp_path, chromium_dom):
    page = write_page(tmp_path / "playground.html")
    rng = np.random.default_rng(0)
    cases, expected = [], []
    for surface, (start, steps, rates) in CASES.items():
        for rule, to_optim in RULES.items():
            hyper = {"lr": rates[rule], **SHARED}
            noise = rng.standard_normal((steps, 2)).tolist() if rule == "sgd" else None
            cases.append({"surface": surface, "rule": rule, "hyper": hyper, "start": list(start), "steps": steps,
                          "noise": noise})
            name, optim_hyper = to_optim(hyper)
            expected.append(run_optimizer(SURFACES[surface], rule, name, optim_hyper, steps=steps, tol=0.0,
                                          start=start, noise=noise, sigma=SHARED["sigma"] if noise else 0.0))
    dom = chromium_dom(page.as_uri() + "#selftest=" + quote(json.dumps(cases)))
    assert '<pre id="selftest">' in dom, dom[-2000:]
    results = json.loads(html.unescape(dom.split('<pre id="selftest">')[1].split("</pre>")[0]))
    assert len(results) == len(cases) == 14
    for case, got, want in zip(cases, results, expected):
        where = f"{case['rule']} on {case['surface']}"
        assert not got["diverged"] and not want.diverged, where
        assert len(got["points"]) == len(want.points) == case["steps"] + 1, where
        js, py = np.array(got["points"]), np.array(want.points)
        scale = np.maximum(np.abs(py), 1e-3)  # relative, with a floor where a coordinate passes through zero
        assert np.max(np.abs(js - py) / scale) < 1e-9, where
        assert np.allclose(got["losses"], want.losses, rtol=1e-9, atol=1e-12), where
        assert np.abs(js[-1] - js[0]).max() > 0.05, where  # it moved: the comparison is not of two standing points


def test_the_command_writes_the_page_with_a_link_to_a_report(tmp_path, capsys):
    from reslab.cli import main

    assert main(["playground", "--html", str(tmp_path / "p.html"), "--report-link", "../runs/demo/report.html"]) == 0
    assert "playground: " in capsys.readouterr().out
    text = (tmp_path / "p.html").read_text()
    assert '"report": "../runs/demo/report.html"' in text and '"rosenbrock"' in text
