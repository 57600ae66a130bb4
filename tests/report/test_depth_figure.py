"""The depth experiment's summary figure: final error against depth per family, Table 6 beside it."""

import json

from reslab.report.html import build_report
from reslab.report.depth import depth, depth_figure, depth_series

ROWS = [("plain20", 20, 13.5, 16.4, "-"), ("plain32", 32, 18.0, 20.1, "-"), ("plain56", 56, 31.1, 30.6, "-"),
        ("resnet56", 56, 7.8, 13.5, 6.97), ("resnet20", 20, 10.6, 14.7, 8.75), ("resnet32", 32, 9.0, 14.0, 7.51)]
TABLE = [{"model": m, "depth": d, "final train error %": t, "final val error %": v, "paper test error %": p}
         for m, d, t, v, p in ROWS]


def test_each_family_is_one_line_per_error_in_order_of_depth_with_the_paper_beside():
    series = {s["name"]: (s["x"], s["y"]) for s in depth_series(TABLE)}
    assert series == {"plain validation": ([20, 32, 56], [16.4, 20.1, 30.6]),
                      "plain training": ([20, 32, 56], [13.5, 18.0, 31.1]),
                      "residual validation": ([20, 32, 56], [14.7, 14.0, 13.5]),
                      "residual training": ([20, 32, 56], [10.6, 9.0, 7.8]),
                      "He et al. test error (residual)": ([20, 32, 56], [8.75, 7.51, 6.97])}
    fig = depth(TABLE)
    assert [t.name for t in fig.data] == list(series) and list(fig.data[2].y) == [14.7, 14.0, 13.5]
    assert len(depth_figure(TABLE).axes[0].lines) == 5
    # a family whose runs logged no training step: its validation line alone
    short = [{**r, "final train error %": None} if r["model"].startswith("plain") else r for r in TABLE]
    assert "plain training" not in [s["name"] for s in depth_series(short)] and len(depth_series(short)) == 4
    # one depth per family: nothing to draw a line through
    assert depth_series([r for r in TABLE if r["depth"] == 20]) == []


def test_the_depth_report_shows_error_against_depth(tmp_path):
    record = {"title": "Depth", "kind": "depth", "runs": [], "table": TABLE, "verdict": ["v"]}
    (tmp_path / "experiment.json").write_text(json.dumps(record))
    text = build_report(tmp_path, plotly_js="beside").read_text()
    assert 'id="fig-depth"' in text and "Error against depth" in text
    assert (tmp_path / "figures" / "depth.png").is_file()
    (tmp_path / "experiment.json").write_text(json.dumps({**record, "kind": "degradation"}))
    assert 'id="fig-depth"' not in build_report(tmp_path, plotly_js="beside").read_text()


def test_another_records_errors_set_beside_are_hollow_points_of_each_family():
    beside = {"plain20": 17.0, "plain56": 29.9, "resnet20": 14.1}  # depth 32 and resnet56 have none
    table = [{**r, "val error % beside": beside.get(r["model"])} for r in TABLE]
    series = {s["name"]: (s["x"], s["y"], s["dash"]) for s in depth_series(table)}
    assert series["plain validation, beside"] == ([20, 56], [17.0, 29.9], "points")
    assert series["residual validation, beside"] == ([20], [14.1], "points")
    fig = depth(table)
    points = [t for t in fig.data if t.name.endswith("beside")]
    assert [t.mode for t in points] == ["markers", "markers"] and points[0].marker.symbol == "circle-open"
    assert len(depth_figure(table).axes[0].collections) == 2  # one scatter per family, beside the 5 lines


def test_the_points_set_beside_are_named_by_what_differs_there():
    from reslab.report.depth import beside_label

    assert beside_label(None) == beside_label({}) == "beside"
    one = {"folder": "results/degradation", "differs": ["train.precision: bf16 there, fp32 here"]}
    assert beside_label(one) == "bf16 (results/degradation)"
    two = {**one, "differs": ["train.epochs: 3 there, 30 here", "train.precision: bf16 there, fp32 here"]}
    assert beside_label(two) == "3, bf16 (results/degradation)"
    assert beside_label({**one, "differs": []}) == "results/degradation"
    table = [{**r, "val error % beside": 17.0 if r["model"] == "plain20" else None} for r in TABLE]
    names = [s["name"] for s in depth_series(table, beside_label(one))]
    assert "plain validation, bf16 (results/degradation)" in names


def test_the_depth_report_says_what_the_hollow_points_are(tmp_path):
    table = [{**r, "val error % beside": 17.0 if r["model"] == "plain20" else None} for r in TABLE]
    beside = {"folder": "results/degradation", "differs": ["train.precision: bf16 there, fp32 here"]}
    record = {"title": "Depth", "kind": "depth", "runs": [], "table": table, "verdict": ["v"], "beside": beside}
    (tmp_path / "experiment.json").write_text(json.dumps(record))
    text = build_report(tmp_path, plotly_js="beside").read_text()
    assert "Hollow points: the same networks&#x27; validation error in results/degradation (train.precision: bf16" in text
    assert "plain validation, bf16 (results" in text  # the legend of the page's Plotly figure (its JSON escapes /)
