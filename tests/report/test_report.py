"""The experiment runner (skip and resume) and the report built from its files."""

import json
import shutil
import subprocess
from dataclasses import replace

import pytest

from reslab.experiments import Context, run_experiment
from reslab.report.html import build_report
from reslab.rundir import ExperimentDir
from reslab.workflows import sweep


def experiment_cfg(base_cfg, tmp_path):
    # the analysis batch left at its default (the training one); two draws, not the default five, to save time
    cfg = base_cfg(tmp_path, 4, '--experiment.models=["plain20", "resnet20"]', "--experiment.analysis_draws=2")
    return replace(cfg, train=replace(cfg.train, record_gradients=True))


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, base_cfg):
    tmp = tmp_path_factory.mktemp("exp")
    exp = run_experiment("degradation", experiment_cfg(base_cfg, tmp), tmp / "e")
    return tmp, exp


def test_experiment_writes_table_verdict_and_report(experiment):
    tmp, exp = experiment
    root = tmp / "e"
    assert {r["model"] for r in exp["table"]} == {"plain20", "resnet20"}
    assert any(line.startswith("Twins at depth 20") for line in exp["verdict"])
    assert any("First/last layer gradient ratio" in line for line in exp["verdict"])
    assert (root / "analysis" / "gradients.json").is_file() and (root / "analysis" / "responses.json").is_file()
    gradients = json.loads((root / "analysis" / "gradients.json").read_text())
    flows = gradients["flows"]
    assert set(flows) == {"plain20 init", "plain20 trained", "resnet20 init", "resnet20 trained"}
    # by default on held-out batches of the size the networks trained with; the median over each draw
    assert gradients["batch"] == 32 and gradients["draws"] == 2
    assert all(len(f["ratio_draws_weight"]) == 2 for f in flows.values())
    html = (root / "report.html").read_text()
    for fig in ("degradation", "experiment_gradients_weights", "experiment_gradients_outputs",
                "experiment_responses", "plain20_curves", "resnet20_curves", "resnet20_gradient_history"):
        assert f'id="fig-{fig}"' in html, fig
        assert (root / "figures" / f"{fig}.png").is_file() and (root / "figures" / f"{fig}.svg").is_file()
    page = outside_library(html)
    assert "http://" not in page and "https://" not in page  # self-contained: no address outside Plotly's code
    from plotly.offline import get_plotlyjs

    assert '<script src="' not in html and html.count(get_plotlyjs()[:2000]) == 1  # the library inlined, once
    assert (root / "playground.html").is_file() and 'href="playground.html"' in html


def test_finished_runs_copied_into_another_experiment_are_reused_even_without_checkpoints(experiment, base_cfg,
                                                                                          tmp_path):
    tmp, _ = experiment
    shutil.copytree(tmp / "e" / "runs", tmp_path / "d" / "runs")  # a new place: out_dir differs from the stored one
    shutil.rmtree(tmp_path / "d" / "runs" / "plain20" / "checkpoints")
    summary = (tmp_path / "d" / "runs" / "resnet20" / "summary.json").read_text()  # holds its training time
    cfg = base_cfg(tmp, 4, "--experiment.depths=[20]", "--experiment.plain=true", "--experiment.analysis_batch=32",
                   f'--experiment.beside="{tmp / "e"}"')  # the same runs, where they were first trained
    lines = []
    exp = run_experiment("depth", replace(cfg, train=replace(cfg.train, record_gradients=True)), tmp_path / "d",
                         Context(log=lines.append))
    assert (tmp_path / "d" / "runs" / "resnet20" / "summary.json").read_text() == summary  # not retrained
    assert not (tmp_path / "d" / "runs" / "plain20" / "checkpoints").exists()
    for what in ("gradient flow", "layer responses"):  # this folder measured none before
        assert f"plain20: no checkpoint and no earlier {what} on the same held-out images; left out of it" in lines
    assert {r["model"]: r["precision"] for r in exp["table"]} == {"plain20": "fp32", "resnet20": "fp32"}
    assert [r["difference"] for r in exp["table"]] == [0.0, 0.0] and exp["beside"]["differs"] == []
    assert exp["verdict"][-1].startswith(f"Beside {tmp / 'e'} (the same settings; code and random draws may differ): ")
    flows = json.loads((tmp_path / "d" / "analysis" / "gradients.json").read_text())["flows"]
    assert set(flows) == {"resnet20 init", "resnet20 trained"}


def test_a_run_kept_without_weights_keeps_the_analyses_measured_from_them(experiment, base_cfg, tmp_path):
    """As a record is committed: runs without checkpoints, and the analyses measured while they had them."""
    tmp, _ = experiment
    shutil.copytree(tmp / "e", tmp_path / "f")
    shutil.rmtree(tmp_path / "f" / "runs" / "plain20" / "checkpoints")
    lines = []
    run_experiment("degradation", experiment_cfg(base_cfg, tmp), tmp_path / "f", Context(log=lines.append))
    for kind in ("gradients", "responses"):
        before, after = (json.loads((root / "analysis" / f"{kind}.json").read_text()) for root in (tmp / "e", tmp_path / "f"))
        assert after == before, kind  # resnet20's measured again, plain20's kept
    for what in ("gradient flow", "layer responses"):
        assert f"plain20: no checkpoint; its {what} as measured earlier from its weights" in lines
    # a tampered earlier result is not taken: the run is left out of that analysis, in one log line
    flows = tmp_path / "f" / "analysis" / "gradients.json"
    record = json.loads(flows.read_text())
    record["flows"]["plain20 trained"]["ratio_first_last_weight"] = "1e9"
    flows.write_text(json.dumps(record))
    lines.clear()
    run_experiment("degradation", experiment_cfg(base_cfg, tmp), tmp_path / "f", Context(log=lines.append))
    assert set(json.loads(flows.read_text())["flows"]) == {"resnet20 init", "resnet20 trained"}
    assert "plain20: no checkpoint and no earlier gradient flow on the same held-out images; left out of it" in lines


def test_reports_can_share_one_copy_of_plotly_beside_them(experiment, tmp_path):
    tmp, _ = experiment
    shared = tmp_path / "shared"
    shutil.copytree(tmp / "e", shared)
    report = build_report(shared, plotly_js="beside")
    text = report.read_text()
    assert '<script src="plotly.min.js"></script>' in text and len(text) < 1_000_000
    assert (shared / "plotly.min.js").stat().st_size > 1_000_000
    inline = (tmp / "e" / "report.html").read_text()
    assert len(inline) - len(text) > 4_000_000  # the library, once


def outside_library(html: str) -> str:
    """The report without the inlined Plotly library (whose code holds URL strings it never fetches)."""
    start = html.index("<script>")
    return html[:start] + html[html.index("</script>", start) + len("</script>"):]


def test_rerun_skips_finished_runs(experiment, base_cfg, monkeypatch):
    tmp, _ = experiment
    cfg = experiment_cfg(base_cfg, tmp)
    called = []
    monkeypatch.setattr(sweep, "train_run", lambda *a, **k: called.append(a))
    sweep.train_sweep(cfg, ["plain20", "resnet20"], ExperimentDir(tmp / "e"))
    assert called == []


def test_report_of_a_single_run_and_bad_folders(experiment, tmp_path):
    tmp, _ = experiment
    run = tmp / "e" / "runs" / "resnet20"
    out = build_report(run)
    assert 'id="fig-resnet20_curves"' in out.read_text()
    from reslab.errors import ReslabError
    with pytest.raises(ReslabError):
        build_report(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReslabError, match="neither a run nor an experiment"):
        build_report(tmp_path / "empty")


def test_report_renders_every_plotly_figure_offline_in_headless_chromium(experiment, tmp_path, chromium):
    """The report opens with the network cut off; every figure is a Plotly graph with data (the loss
    surfaces included), and its PNG is kept beside it."""
    from reslab.cli import main

    tmp, _ = experiment
    run = tmp / "e" / "runs" / "resnet20"
    for what in ("landscape", "lesion", "paths"):
        assert main(["analyze", what, str(run), "--resolution", "5", "--images", "32", "--draws", "2",
                     "--batch", "16"]) == 0
    report = build_report(run)
    text = report.read_text()
    expected = text.count('class="plotly-graph-div"')
    assert expected == 5 and len(text) < 6_000_000  # curves, lesion, paths, landscape, interpolation
    probe = tmp_path / "probe.html"
    check = ("<script>window.addEventListener('load', () => setTimeout(() => {"
             "const divs = [...document.querySelectorAll('.plotly-graph-div')];"
             "document.body.setAttribute('data-plots', divs.map(d => (d.data || []).length > 0 && "
             "(d._fullData || []).length > 0 && d.querySelector('.main-svg') !== null).join(','));"
             "document.body.setAttribute('data-count', divs.length); }, 500));</script></body>")
    probe.write_text(text.replace("</body>", check))
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
             "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "--enable-unsafe-swiftshader",
             f"--user-data-dir={tmp_path / 'profile'}"]  # its own profile: browsers in parallel workers
    dom = subprocess.run(flags + ["--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180).stdout
    assert 'data-count="' in dom, dom[-1500:]
    assert int(dom.split('data-count="')[1].split('"')[0]) == expected
    assert dom.split('data-plots="')[1].split('"')[0].split(",") == ["true"] * expected
    assert "fig-resnet20_landscape" in text and (run / "figures" / "resnet20_landscape.png").is_file()
    shot = tmp_path / "report.png"
    subprocess.run(flags + ["--window-size=1200,2400", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=180)
    assert shot.stat().st_size > 20_000  # a page with figures, not a blank one


def test_analyze_commands_write_results_and_the_report_shows_them(experiment, capsys):
    from reslab.cli import main

    tmp, _ = experiment
    run = str(tmp / "e" / "runs" / "resnet20")
    assert main(["analyze", "lesion", run, "--images", "64", "--draws", "2"]) == 0
    assert main(["analyze", "paths", run, "--images", "8", "--draws", "2"]) == 0  # of the 16 held out
    assert main(["analyze", "landscape", run, "--images", "64", "--resolution", "3"]) == 0
    assert main(["analyze", "gradients", run, "--draws", "2"]) == 0
    assert main(["analyze", "responses", run]) == 0
    out = capsys.readouterr().out
    assert "(median of 2 batches, " in out and "median over 2 held-out batches" in out
    gradients = json.loads((tmp / "e" / "runs" / "resnet20" / "analysis" / "gradients.json").read_text())
    assert gradients["draws"] == 2 and len(gradients["flows"]["resnet20 trained"]["ratio_draws_weight"]) == 2
    assert "deleting one block that keeps its shape" in out and "90% from lengths" in out and "3x3 grid" in out
    lesion = json.loads((tmp / "e" / "runs" / "resnet20" / "analysis" / "lesion.json").read_text())
    assert len(lesion["single"]) == 9 and sum(b["downsampling"] for b in lesion["single"]) == 2
    assert json.loads((tmp / "e" / "runs" / "resnet20" / "analysis" / "paths.json").read_text())["images"] == 8
    assert main(["report", run]) == 0
    html = (tmp / "e" / "runs" / "resnet20" / "report.html").read_text()
    for fig in ("lesion", "paths", "landscape", "interpolation", "gradients_weights", "responses"):
        assert f'id="fig-resnet20_{fig}"' in html, fig
    assert main(["analyze", "lesion"]) == 2  # no run folder given
    assert main(["analyze", "landscape", run, "--jobs", "0"]) == 2
    assert main(["analyze", "paths", run, "--images", "0"]) == 2
    assert main(["analyze", "lesion", run, "--draws", "-1"]) == 2
    # with the plain twin analysed too, the experiment's report draws them side by side
    plain = str(tmp / "e" / "runs" / "plain20")
    assert main(["analyze", "lesion", plain, "--images", "64", "--draws", "2"]) == 0
    assert main(["analyze", "landscape", plain, "--images", "64", "--resolution", "3"]) == 0
    assert main(["report", str(tmp / "e")]) == 0
    html = (tmp / "e" / "report.html").read_text()
    for fig in ("compare_lesion", "compare_landscape", "compare_interpolation"):
        assert f'id="fig-{fig}"' in html, fig
    assert 'id="fig-compare_paths"' not in html  # only one network has a paths analysis
