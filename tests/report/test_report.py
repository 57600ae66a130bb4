"""The experiment runner (skip and resume) and the report built from its files."""

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from reslab.config import load_config
from reslab.experiments import Context, run_experiment
from reslab.report.html import build_report
from reslab.rundir import ExperimentDir
from reslab.workflows import sweep


def base_cfg(tmp_path, steps=4, *experiment):
    return load_config(None, [*experiment, f"--train.steps={steps}", "--train.eval_every=2", "--train.log_every=1",
                              "--train.precision=fp32", "--data.dataset=sample", "--data.limit=256",
                              "--data.val_size=64", "--data.batch_size=32", "--data.eval_batch_size=64",
                              f"--data.cache_dir=\"{tmp_path / 'cache'}\""])


def experiment_cfg(tmp_path):
    cfg = base_cfg(tmp_path, 4, '--experiment.models=["plain20", "resnet20"]')  # analysis batch: the training one
    return replace(cfg, train=replace(cfg.train, record_gradients=True))


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exp")
    exp = run_experiment("degradation", experiment_cfg(tmp), tmp / "e")
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
    # by default the median over 5 held-out batches of the size the networks trained with
    assert gradients["batch"] == 32 and gradients["draws"] == 5
    assert all(len(f["ratio_draws_weight"]) == 5 for f in flows.values())
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


def test_finished_runs_copied_into_another_experiment_are_reused_even_without_checkpoints(experiment, tmp_path):
    tmp, _ = experiment
    shutil.copytree(tmp / "e" / "runs", tmp_path / "d" / "runs")  # a new place: out_dir differs from the stored one
    shutil.rmtree(tmp_path / "d" / "runs" / "plain20" / "checkpoints")
    summary = (tmp_path / "d" / "runs" / "resnet20" / "summary.json").read_text()  # holds its training time
    cfg = base_cfg(tmp, 4, "--experiment.depths=[20]", "--experiment.plain=true", "--experiment.analysis_batch=32")
    lines = []
    exp = run_experiment("depth", replace(cfg, train=replace(cfg.train, record_gradients=True)), tmp_path / "d",
                         Context(log=lines.append))
    assert (tmp_path / "d" / "runs" / "resnet20" / "summary.json").read_text() == summary  # not retrained
    assert not (tmp_path / "d" / "runs" / "plain20" / "checkpoints").exists()
    assert "plain20: no checkpoint, left out of the gradient and response analyses" in lines
    assert {r["model"]: r["precision"] for r in exp["table"]} == {"plain20": "fp32", "resnet20": "fp32"}
    flows = json.loads((tmp_path / "d" / "analysis" / "gradients.json").read_text())["flows"]
    assert set(flows) == {"resnet20 init", "resnet20 trained"}


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


def test_rerun_skips_finished_runs(experiment, monkeypatch):
    tmp, _ = experiment
    cfg = experiment_cfg(tmp)
    called = []
    monkeypatch.setattr(sweep, "train_run", lambda *a, **k: called.append(a))
    sweep.train_sweep(cfg, ["plain20", "resnet20"], ExperimentDir(tmp / "e"))
    assert called == []


def test_killed_run_resumes_from_its_checkpoint(tmp_path):
    cfg = base_cfg(tmp_path, steps=6)
    folder = ExperimentDir(tmp_path / "x")
    sweep.train_sweep(cfg, ["resnet20"], folder)
    run = tmp_path / "x" / "runs" / "resnet20"
    (run / "summary.json").unlink()  # as if it died after its last checkpoint
    assert sweep.status(sweep.config_for(cfg, sweep.Entry("resnet20", "resnet20"), folder)) == "resumable"
    sweep.train_sweep(cfg, ["resnet20"], folder)
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 6 and json.loads((run / "summary.json").read_text())["steps"] == 6


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


def test_verdict_reads_the_table():
    from reslab.experiments.degradation import verdict

    row = lambda m, d, e: {"model": m, "depth": d, "final train error %": e}
    lines = verdict([row("plain20", 20, 5.0), row("plain56", 56, 9.0), row("resnet20", 20, 4.0), row("resnet56", 56, 2.5)])
    assert "the deeper plain network trains worse (degradation)" in lines[0]
    assert "the deeper residual network trains as well or better" in lines[1]
    assert lines[2].startswith("Twins at depth 20") and "lowers" in lines[2]
    lines = verdict([row("plain20", 20, 9.0), row("plain56", 56, 5.0), row("resnet20", 20, 2.0), row("resnet56", 56, 4.0)])
    assert "no degradation" in lines[0] and "trains worse here" in lines[1]


def test_final_train_error_averages_the_end_of_the_curve():
    from reslab.experiments.common import final_train_error

    rows = [{"kind": "train", "step": s, "train_error": 1.0 if s < 95 else 0.2} for s in range(1, 101)]
    rows.append({"kind": "eval", "step": 100, "val_error": 0.5})
    assert final_train_error(rows) == pytest.approx(0.2)


def test_stochastic_depth_experiment_and_its_test_time_check(tmp_path):
    cfg = base_cfg(tmp_path, 4, '--experiment.model="resnet20"', "--experiment.survival_prob=0.5")
    lines: list[str] = []
    exp = run_experiment("stochastic-depth", cfg, tmp_path / "sd", Context(log=lines.append, jobs=2))
    assert lines[0].startswith("note: --jobs 2 not used: this experiment compares the runs' time per epoch")
    assert [r["run"] for r in exp["table"]] == ["resnet20_constant", "resnet20_sd0.5"]
    scaling = json.loads((tmp_path / "sd" / "analysis" / "test_time_scaling.json").read_text())
    assert scaling["deterministic"] and scaling["max_abs_difference"] < 1e-5
    assert scaling["survival_probs"][-1] == pytest.approx(0.5)
    assert 'id="fig-curves"' in (tmp_path / "sd" / "report.html").read_text()


def test_analyze_commands_write_results_and_the_report_shows_them(experiment, capsys):
    from reslab.cli import main

    tmp, _ = experiment
    run = str(tmp / "e" / "runs" / "resnet20")
    assert main(["analyze", "lesion", run, "--images", "64", "--draws", "2"]) == 0
    assert main(["analyze", "paths", run, "--draws", "2"]) == 0
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
    assert main(["report", run]) == 0
    html = (tmp / "e" / "runs" / "resnet20" / "report.html").read_text()
    for fig in ("lesion", "paths", "landscape", "interpolation", "gradients_weights", "responses"):
        assert f'id="fig-resnet20_{fig}"' in html, fig
    assert main(["analyze", "lesion"]) == 2  # no run folder given
    assert main(["analyze", "landscape", run, "--jobs", "0"]) == 2
    # with the plain twin analysed too, the experiment's report draws them side by side
    plain = str(tmp / "e" / "runs" / "plain20")
    assert main(["analyze", "lesion", plain, "--images", "64", "--draws", "2"]) == 0
    assert main(["analyze", "landscape", plain, "--images", "64", "--resolution", "3"]) == 0
    assert main(["report", str(tmp / "e")]) == 0
    html = (tmp / "e" / "report.html").read_text()
    for fig in ("compare_lesion", "compare_landscape", "compare_interpolation"):
        assert f'id="fig-{fig}"' in html, fig
    assert 'id="fig-compare_paths"' not in html  # only one network has a paths analysis


def test_optimizer_comparison_experiment(tmp_path):
    exp = run_experiment("optimizers", base_cfg(tmp_path, 4, '--experiment.rules=["sgd", "adam"]'), tmp_path / "opt")
    assert [r["optimizer"] for r in exp["table"]] == ["sgd", "adam"]
    assert exp["table"][1]["lr"] == 1e-3
    assert 'id="fig-curves"' in (tmp_path / "opt" / "report.html").read_text()


def test_architectures_experiment_reports_each_network(tmp_path, monkeypatch):
    from reslab.experiments import architectures

    entries = [e for e in architectures.ArchitecturesOptions().entries() if e.name in ("resnet20", "googlenet")]
    monkeypatch.setattr(architectures.ArchitecturesOptions, "entries", lambda self: entries)
    exp = run_experiment("architectures", base_cfg(tmp_path, 2, "--experiment.analysis_batch=8"), tmp_path / "arch")
    by_name = {r["network"]: r for r in exp["table"]}
    assert by_name["googlenet"]["params"] > 5_000_000 and by_name["resnet20"]["FLOPs (M)"] == pytest.approx(81.1, abs=0.1)
    flows = json.loads((tmp_path / "arch" / "analysis" / "gradients.json").read_text())["flows"]
    assert {"googlenet init", "googlenet trained", "resnet20 init", "resnet20 trained"} == set(flows)


def test_parallel_runs_match_sequential_ones(tmp_path):
    """Two worker processes train the same runs as one after the other would (fp32, same seeds, and the
    same thread count: the workers get one core each, and thread count changes reduction order)."""
    import os

    import torch

    cfg = base_cfg(tmp_path, steps=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        seq = sweep.train_sweep(cfg, ["plain20", "resnet20"], ExperimentDir(tmp_path / "seq"))
    finally:
        torch.set_num_threads(threads)
    par = sweep.train_sweep(cfg, ["plain20", "resnet20"], ExperimentDir(tmp_path / "par"), jobs=2)
    for a, b in zip(seq, par):
        ra = [r for r in a.read_metrics() if r["kind"] == "eval"]
        rb = [r for r in b.read_metrics() if r["kind"] == "eval"]
        assert [r["val_loss"] for r in ra] == [r["val_loss"] for r in rb]


def test_the_jpeg_figure_draws_each_reencoding_model_read_at_zero_and_falls_back_without_fits():
    from reslab.report.ablation import jpeg, jpeg_figure, jpeg_panels

    points = [{"quality": 75, "val error %": 15.3, "val sd": 0.2}, {"quality": 50, "val error %": 16.0, "val sd": 0.3}]
    fits = {"absorbed": {"intercept": 15.0, "slope": 1.0, "x": {"75": 0.25, "50": 1.0}},
            "added": {"intercept": 14.9, "slope": 0.8, "x": {"75": 0.25, "50": 1.25}}}
    panels = jpeg_panels(points, {"fits": fits})
    assert [p["x"] for p in panels] == [[0.25, 1.0], [0.25, 1.25]] and panels[1]["line"] == (14.9, 0.8)
    fig = jpeg(points, {"fits": fits})
    lossless = [t for t in fig.data if t.name == "lossless (read at 0)"]
    assert [(list(t.x), list(t.y)) for t in lossless] == [([0], [15.0]), ([0], [14.9])]
    assert len(jpeg_figure(points, {"fits": fits}).axes) == 2
    # a record written before the fits were kept: one panel against quality, no line
    assert jpeg_panels(points, None) == [{"title": "", "x": [75, 50], "xlabel": "JPEG quality", "line": None}]
    assert len(jpeg(points, None).data) == 1


def test_the_effects_figure_marks_the_effects_whose_interval_excludes_zero():
    from reslab.experiments.ablation import summarise
    from reslab.report.ablation import effects

    table = summarise({"base": {"val": [10.0, 10.2, 9.9], "train": [1.0] * 3},
                       "decay-bn": {"val": [9.0, 9.1, 8.9], "train": [1.0] * 3},   # clearly lower
                       "bf16": {"val": [10.3, 9.7, 10.5], "train": [1.0] * 3}})   # within the noise
    (trace,) = effects(table).data
    assert list(trace.y) == ["decay-bn", "bf16"]
    assert list(trace.error_x.array) == [table[1]["effect ci95"], table[2]["effect ci95"]]
    assert table[1]["effect p"] < 0.05 <= table[2]["effect p"]
    assert trace.marker.color[0] != trace.marker.color[1]