"""The experiments beside degradation (stochastic depth, optimizers, architectures), the sweep's resume and
its parallel workers, and the verdict and ablation figures read from small hand-made tables."""

import json

import pytest

from reslab.experiments import Context, run_experiment
from reslab.rundir import ExperimentDir
from reslab.workflows import sweep


def test_killed_run_resumes_from_its_checkpoint(tmp_path, base_cfg):
    cfg = base_cfg(tmp_path, steps=6)
    folder = ExperimentDir(tmp_path / "x")
    sweep.train_sweep(cfg, ["resnet20"], folder)
    run = tmp_path / "x" / "runs" / "resnet20"
    (run / "summary.json").unlink()  # as if it died after its last checkpoint
    assert sweep.status(sweep.config_for(cfg, sweep.Entry("resnet20", "resnet20"), folder)) == "resumable"
    sweep.train_sweep(cfg, ["resnet20"], folder)
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 6 and json.loads((run / "summary.json").read_text())["steps"] == 6


def test_verdict_reads_the_table():
    from reslab.experiments.degradation import verdict

    row = lambda m, d, e: {"model": m, "depth": d, "final train error %": e}
    lines = verdict([row("plain20", 20, 5.0), row("plain56", 56, 9.0), row("resnet20", 20, 4.0), row("resnet56", 56, 2.5)])
    assert "the deeper plain network trains worse (degradation)" in lines[0]
    assert "the deeper residual network trains as well or better" in lines[1]
    assert lines[2].startswith("Twins at depth 20") and "lowers" in lines[2]
    lines = verdict([row("plain20", 20, 9.0), row("plain56", 56, 5.0), row("resnet20", 20, 2.0), row("resnet56", 56, 4.0)])
    assert "no degradation" in lines[0] and "trains worse here" in lines[1]
    assert not any("networks at depths" in line for line in lines)  # two depths: the ends say it all
    # runs too short to log a training step have no training error: said, not a crash
    lines = verdict([row("plain20", 20, None), row("plain56", 56, 9.0), row("resnet20", 20, 4.0), row("resnet56", 56, 2.5)])
    assert lines[0] == ("Plain: no training error logged for plain20 (the run ended before its first logged step): "
                        "no comparison.")
    assert "trains as well or better" in lines[1] and not any(line.startswith("Twins at depth 20") for line in lines)


def test_verdict_reads_the_trend_across_every_depth_beside_table_6():
    from reslab.experiments.degradation import verdict

    def row(m, d, t, v, p="-"):
        return {"model": m, "depth": d, "final train error %": t, "final val error %": v, "paper test error %": p}

    lines = verdict([row("resnet20", 20, 10.6, 14.7, 8.75), row("resnet32", 32, 9.0, 14.9, 7.51),
                     row("resnet44", 44, 8.1, 13.9, 7.17), row("plain20", 20, 13.5, 16.4), row("plain32", 32, 18.0, 20.1),
                     row("plain44", 44, 25.0, 26.2)])
    assert lines[1] == ("Plain networks at depths 20, 32, 44: validation 16.40 / 20.10 / 26.20% (rises at every step); "
                        "training 13.50 / 18.00 / 25.00% (rises at every step).")
    assert lines[3] == ("Residual networks at depths 20, 32, 44: validation 14.70 / 14.90 / 13.90% (falls overall, not "
                        "at every step); training 10.60 / 9.00 / 8.10% (falls at every step); He et al.'s test error "
                        "8.75 / 7.51 / 7.17% (falls at every step).")


def test_final_train_error_averages_the_end_of_the_curve():
    from reslab.experiments.common import final_train_error

    rows = [{"kind": "train", "step": s, "train_error": 1.0 if s < 95 else 0.2} for s in range(1, 101)]
    rows.append({"kind": "eval", "step": 100, "val_error": 0.5})
    assert final_train_error(rows) == pytest.approx(0.2)


def test_stochastic_depth_experiment_and_its_test_time_check(tmp_path, base_cfg):
    cfg = base_cfg(tmp_path, 4, '--experiment.model="resnet20"', "--experiment.survival_prob=0.5")
    lines: list[str] = []
    exp = run_experiment("stochastic-depth", cfg, tmp_path / "sd", Context(log=lines.append, jobs=2))
    assert lines[0].startswith("note: --jobs 2 not used: this experiment compares the runs' time per epoch")
    assert [r["run"] for r in exp["table"]] == ["resnet20_constant", "resnet20_sd0.5"]
    scaling = json.loads((tmp_path / "sd" / "analysis" / "test_time_scaling.json").read_text())
    assert scaling["deterministic"] and scaling["max_abs_difference"] < 1e-5
    assert scaling["survival_probs"][-1] == pytest.approx(0.5)
    assert 'id="fig-curves"' in (tmp_path / "sd" / "report.html").read_text()


def test_optimizer_comparison_experiment(tmp_path, base_cfg):
    exp = run_experiment("optimizers", base_cfg(tmp_path, 4, '--experiment.rules=["sgd", "adam"]'), tmp_path / "opt")
    assert [r["optimizer"] for r in exp["table"]] == ["sgd", "adam"]
    assert exp["table"][1]["lr"] == 1e-3
    assert 'id="fig-curves"' in (tmp_path / "opt" / "report.html").read_text()


def test_architectures_experiment_reports_each_network(tmp_path, base_cfg, monkeypatch):
    from reslab.experiments import architectures

    entries = [e for e in architectures.ArchitecturesOptions().entries() if e.name in ("resnet20", "googlenet")]
    monkeypatch.setattr(architectures.ArchitecturesOptions, "entries", lambda self: entries)
    speeds = tmp_path / "speeds.json"
    speeds.write_text(json.dumps({"machine": "test CPU", "date": "2026-01-02", "command": "bench --json speeds.json",
                                  "images/s": {"resnet20": 298.3, "googlenet": 29.64, "plain20": 300.0}}))
    exp = run_experiment("architectures", base_cfg(tmp_path, 2, "--experiment.analysis_batch=8",
                                                   f'--experiment.speeds="{speeds}"'), tmp_path / "arch")
    by_name = {r["network"]: r for r in exp["table"]}
    assert by_name["googlenet"]["params"] > 5_000_000 and by_name["resnet20"]["FLOPs (M)"] == pytest.approx(81.1, abs=0.1)
    assert [r["images/s (idle machine)"] for r in exp["table"]] == [298, 29.6]  # the benchmark's, not the runs'
    assert "bench --json speeds.json (test CPU, 2026-01-02)" in exp["description"]
    flows = json.loads((tmp_path / "arch" / "analysis" / "gradients.json").read_text())["flows"]
    assert {"googlenet init", "googlenet trained", "resnet20 init", "resnet20 trained"} == set(flows)


def test_architectures_images_per_second_come_from_the_runs_or_a_checked_benchmark(tmp_path):
    from reslab.errors import ConfigError
    from reslab.experiments.architectures import ArchitecturesOptions, speed_cell

    rows = [{"kind": "train", "step": s, "images_per_sec": v} for s, v in ((10, 280.0), (20, 310.4), (30, 301.0))]
    rows.append({"kind": "eval", "step": 30, "images_per_sec": 5.0, "val_error": 0.5})  # not a training interval
    assert speed_cell("resnet20", rows, None) == ("images/s (train)", 301)
    assert speed_cell("resnet20", [], None) == ("images/s (train)", None)
    assert speed_cell("densenet", [], {"images/s": {"densenet": 20.14}}) == ("images/s (idle machine)", 20.1)

    def refused(text: str | None, precision: str = "fp32") -> str:
        path = tmp_path / "speeds.json"
        if text is not None:
            path.write_text(text)
        with pytest.raises(ConfigError) as err:
            ArchitecturesOptions(speeds=str(path)).read_speeds(["resnet20", "googlenet"], precision)
        path.unlink(missing_ok=True)
        return str(err.value)

    assert refused(None).endswith("speeds.json: no such file")
    assert "is not a readable JSON file" in refused("{images/s")
    assert 'has no "images/s" table' in refused("[1, 2]")
    assert refused(json.dumps({"images/s": {"resnet20": 300, "googlenet": float("nan")}})).endswith(
        "has no positive images/s for googlenet")
    assert refused(json.dumps({"images/s": {"resnet20": True, "googlenet": -1}})).endswith(
        "has no positive images/s for resnet20, googlenet")
    record = {"precision": "fp32", "images/s": {"resnet20": 300, "googlenet": 30}}
    assert refused(json.dumps(record), "bf16").endswith("was measured in fp32; these runs train in bf16")
    (tmp_path / "ok.json").write_text(json.dumps(record))
    assert ArchitecturesOptions(speeds=str(tmp_path / "ok.json")).read_speeds(["googlenet"], "auto") == record
    assert ArchitecturesOptions().read_speeds(["googlenet"], "fp32") is None


def test_parallel_runs_match_sequential_ones(tmp_path, base_cfg):
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
    assert [p["chord"] for p in panels] == [None, None]  # a record from before the chord was read: none drawn
    assert all(fig.layout[f"xaxis{i}"].autorange != "reversed" for i in ("", "2"))  # noise power runs forward
    assert not any(ax.xaxis_inverted() for ax in jpeg_figure(points, {"fits": fits}).axes)
    assert jpeg(points, None).layout.xaxis.autorange == "reversed"  # quality runs from best to worst
    # with a chord (three qualities): drawn dashed from zero to the second-lowest noise power
    chorded = {m: {**f, "chord": {"intercept": 14.5, "slope": 2.0}} for m, f in fits.items()}
    assert jpeg_panels(points, {"fits": chorded})[0]["chord"] == (14.5, 2.0, 1.0)
    chords = [t for t in jpeg(points, {"fits": chorded}).data if t.name == "chord q75 to the next quality"]
    assert [(list(t.x), list(t.y)) for t in chords] == [([0, 1.0], [14.5, 16.5]), ([0, 1.25], [14.5, 17.0])]
    legends = [[t.get_text() for t in ax.get_legend().get_texts()]
               for ax in jpeg_figure(points, {"fits": chorded}).axes]  # each panel names its own readings
    assert [[t for t in texts if "lossless" in t] for texts in legends] == [
        ["weighted line (lossless: 15.00%)", "chord q75 to the next quality (lossless: 14.50%)"],
        ["weighted line (lossless: 14.90%)", "chord q75 to the next quality (lossless: 14.50%)"]]
    # a record written before the fits were kept: one panel against quality, no line
    assert jpeg_panels(points, None) == [{"title": "", "x": [75, 50], "xlabel": "JPEG quality", "line": None,
                                          "chord": None}]
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


def test_architectures_keep_a_run_without_weights_and_its_earlier_gradient_flow(tmp_path, base_cfg, monkeypatch):
    from reslab.experiments import architectures

    entries = [e for e in architectures.ArchitecturesOptions().entries() if e.name in ("plain20", "resnet20")]
    monkeypatch.setattr(architectures.ArchitecturesOptions, "entries", lambda self: entries)
    cfg = lambda batch: base_cfg(tmp_path, 2, f"--experiment.analysis_batch={batch}")
    first = run_experiment("architectures", cfg(8), tmp_path / "arch")
    gradients = tmp_path / "arch" / "analysis" / "gradients.json"
    before = json.loads(gradients.read_text())
    assert (before["batch"], before["draws"]) == (8, 3)
    for f in (tmp_path / "arch" / "runs" / "resnet20" / "checkpoints").iterdir():
        f.unlink()  # as a record keeps it: config, metrics and summary, no weights
    lines: list[str] = []
    again = run_experiment("architectures", cfg(8), tmp_path / "arch", ctx=Context(log=lines.append))
    assert again["table"] == first["table"]
    after = json.loads(gradients.read_text())
    assert after["flows"] == before["flows"]  # plain20 measured again, the same; resnet20's kept from before
    assert any(l.startswith("resnet20: no checkpoint; its gradient flow as measured earlier") for l in lines)
    # on other held-out batches the earlier flow would not compare: left out, and said so; the row stays
    lines.clear()
    other = run_experiment("architectures", cfg(4), tmp_path / "arch", ctx=Context(log=lines.append))
    assert [r["network"] for r in other["table"]] == ["plain20", "resnet20"]
    assert set(json.loads(gradients.read_text())["flows"]) == {"plain20 init", "plain20 trained"}
    assert any("resnet20: no checkpoint and no earlier gradient flow" in l for l in lines)
