"""Making and reading runs: evaluation that agrees with training, starts that fail cleanly, resumes
that hand every callback its own state, and run folders written before format 1."""

import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from reslab.checkpoint import load_checkpoint
from reslab.cli import main
from reslab.config import load_config
from reslab.rundir import ExperimentDir, RunDir
from reslab.workflows import pool, probe, sweep

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "run_format0"


def errors_of(run: Path) -> list[float]:
    return [r["val_error"] for r in RunDir(run).read_metrics() if r["kind"] == "eval"]


@pytest.mark.parametrize("tta", [False, True])
def test_eval_of_a_run_reproduces_the_error_its_training_reported(tmp_path, image_folder, train_args, capsys, tta):
    args = train_args(tmp_path, image_folder, "--train.steps=6", "--train.eval_every=3", f"--train.tta_flip={str(tta).lower()}")
    assert main(args) == 0
    run = tmp_path / "runs" / "t"
    summary = RunDir(run).read_summary()
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0  # best.pt on the run's own held-out images
    best = json.loads(capsys.readouterr().out)
    assert best["images"] == 16 and best["tta_flip"] is tta
    assert best["error"] == summary["best_val_error"]
    assert main(["eval", str(run / "checkpoints" / "last.pt"), "--json"]) == 0
    last = json.loads(capsys.readouterr().out)
    assert last["error"] == summary["final"]["val_error"]
    assert last["loss"] == pytest.approx(summary["final"]["val_loss"], rel=1e-6)
    assert main(["eval", str(run)]) == 0
    assert ("flip TTA" if tta else "no TTA") in capsys.readouterr().out


def test_eval_of_an_outside_folder_counts_every_image(tmp_path, image_folder, train_args, capsys):
    assert main(train_args(tmp_path, image_folder, "--train.steps=2")) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "runs" / "t"), "--data", "folder", "--data-path", str(image_folder)]) == 0
    out = capsys.readouterr().out
    assert "all 96 images" in out and "96 images evaluated" in out
    report = json.loads((tmp_path / "runs" / "t" / "eval" / "folder.json").read_text())
    assert sum(map(sum, report["confusion"])) == report["images"] == 96
    # a bare checkpoint file with a dataset: evaluated whole, never split
    bare = tmp_path / "bare.pt"
    shutil.copy(tmp_path / "runs" / "t" / "checkpoints" / "best.pt", bare)
    assert main(["eval", str(bare), "--data", "folder", "--data-path", str(image_folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 96


@pytest.mark.parametrize("bad, fix, message", [
    ("--model.options.survival_prb=0.5", "--model.options.survival_prob=0.5", "has no option"),
    ("--model.options.survival_prob=1.5", "--model.options.survival_prob=0.5", "survival_prob must be in"),
    ("--data.val_size=96", "--data.val_size=16", "leaves no training images"),
    ("--data.path=\"/nowhere/at/all\"", None, "/nowhere/at/all"),
])
def test_a_failed_start_leaves_no_run_folder_and_the_corrected_command_runs(tmp_path, image_folder, train_args,
                                                                              capsys, bad, fix, message):
    assert main(train_args(tmp_path, image_folder, "--train.steps=2", bad)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert main(train_args(tmp_path, image_folder, "--train.steps=2", *([fix] if fix else []))) == 0


def test_val_size_auto_fits_the_dataset(tmp_path, capsys):
    common = ["train", "--name", "s", f"--out_dir={json.dumps(str(tmp_path / 'runs'))}", "--data.dataset=sample",
              "--data.cache_dir=" + json.dumps(str(tmp_path / "cache")), "--model.name=lenet5", "--train.steps=1",
              "--train.precision=fp32", "--quiet"]
    assert main(common) == 0
    assert "4,500 train / 500 val" in RunDir(tmp_path / "runs" / "s").read_summary()["dataset"]
    assert main(common + ["--overwrite", "--data.val_size=5000"]) == 2
    assert "leaves no training images" in capsys.readouterr().err


@pytest.mark.parametrize("first, second", [([], ["--quiet"]), (["--quiet"], [])])
def test_resume_with_other_callbacks_keeps_every_state(tmp_path, image_folder, train_args, first, second, capsys):
    """Progress on then off (and the reverse), early stopping added on resume: the best error survives,
    and a far worse second half (lr 50) does not overwrite best.pt."""
    args = [a for a in train_args(tmp_path, image_folder, "--train.steps=6", "--train.eval_every=3") if a != "--quiet"]
    assert main(args + first) == 0
    run = tmp_path / "runs" / "t"
    best_before = load_checkpoint(run / "checkpoints" / "best.pt")["metrics"]
    assert main(["train", "--resume", str(run), "--train.steps=12", "--optim.lr=50",
                 "--train.early_stopping_patience=9", *second]) == 0
    errors = errors_of(run)
    assert len(errors) == 4
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["callbacks"]["checkpointer"]["best_error"] == min(errors)
    assert set(last["callbacks"]) >= {"checkpointer", "early_stopping", "metrics"}
    assert main(["train", "--resume", str(run), "--train.steps=14", "--optim.name=adam", "--quiet"]) == 2
    assert "resume with --optim.name=momentum" in capsys.readouterr().err
    if min(errors[2:]) >= min(errors[:2]):  # the second half did no better: best.pt is the first half's
        assert load_checkpoint(run / "checkpoints" / "best.pt")["metrics"]["step"] == best_before["step"]
    assert RunDir(run).read_summary()["best_val_error"] == min(errors)


def test_a_sweep_says_how_long_the_rest_will_take_at_its_pace():
    from reslab.progress import duration

    assert [duration(s) for s in (44.6, 60, 719, 3600, 56_400)] == ["45 s", "1 min", "12 min", "1 h 00 min", "15 h 40 min"]
    now = [0.0]
    pace = sweep.Pace(4, clock=lambda: now[0])
    now[0] = 600.0  # the first run took ten minutes: three more like it
    assert pace.finished() == "1 of 4; about 30 min to go at this pace"
    now[0] = 1500.0  # 750 s a run so far, two left
    assert pace.finished() == "2 of 4; about 25 min to go at this pace"
    pace.finished()
    assert pace.finished() == "4 of 4, the last"


def test_sweep_resumed_with_two_jobs_after_one(tmp_path):
    """A sweep started with one job, resumed in two worker processes, whose one progress bar counts the
    steps of both workers, the resumed run's earlier steps included."""
    base = load_config(None, ["--train.steps=4", "--train.eval_every=2", "--train.log_every=1", "--train.precision=fp32",
                              "--data.dataset=sample", "--data.limit=256", "--data.val_size=64", "--data.batch_size=32",
                              f"--data.cache_dir=\"{tmp_path / 'cache'}\"", "--model.name=lenet5"])
    folder = ExperimentDir(tmp_path / "x")
    sweep.train_sweep(base, ["lenet5"], folder, progress=io.StringIO())
    run = folder.run("lenet5")
    run.summary_file.unlink()  # as if killed after its last checkpoint
    more = load_config(None, ["--train.steps=8", "--train.eval_every=2", "--train.log_every=1",
                              "--train.precision=fp32", "--data.dataset=sample", "--data.limit=256",
                              "--data.val_size=64", "--data.batch_size=32",
                              f"--data.cache_dir=\"{tmp_path / 'cache'}\"", "--model.name=lenet5"])
    lines: list[str] = []
    bar = io.StringIO()
    sweep.train_sweep(more, ["lenet5", "plain20"], folder, jobs=2, log=lines.append, progress=bar)
    assert bar.getvalue().splitlines()[-1] == "training 2 runs, 2 at once: 16/16 step (100%)", bar.getvalue()
    done = sorted(line for line in lines if ": done (" in line)
    assert len(done) == 2 and any(line.endswith("(2 of 2, the last)") for line in done)
    # the first to end says the time left once the pool has seen training twice (PoolPace's own test checks
    # the figure); these runs of a few steps may end before that
    assert any(line.endswith("(1 of 2)") or ("(1 of 2; about " in line and line.endswith(" to go at this pace)"))
               for line in done), done
    errors = errors_of(run.path)
    assert [r["step"] for r in run.read_metrics() if r["kind"] == "eval"] == [2, 4, 6, 8]
    assert load_checkpoint(run.last_checkpoint)["callbacks"]["checkpointer"]["best_error"] == min(errors)


def test_a_pool_starts_the_deepest_networks_first():
    names = ["plain20", "resnet56", "lenet5", "plain56", "no-such-net"]
    configs = [load_config(None, [f"--model.name={n}", "--train.steps=1"]) for n in names]
    assert [names[i] for i in sweep.longest_first(configs)] == ["resnet56", "plain56", "plain20", "lenet5",
                                                                 "no-such-net"]


def test_a_run_written_before_format_1_resumes(tmp_path, capsys):
    run = tmp_path / "v0run"
    shutil.copytree(FIXTURE, run)
    old = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert isinstance(old["callbacks"], list) and "format" not in old  # what the old code wrote
    assert main(["train", "--resume", str(run), "--train.steps=9", "--quiet",
                 "--data.cache_dir=" + json.dumps(str(tmp_path / "cache"))]) == 0
    new = load_checkpoint(run / "checkpoints" / "last.pt")
    assert new["format"] == 1 and new["step"] == 9
    assert new["callbacks"]["early_stopping"]["best_step"] >= 3  # carried over, then updated
    errors = errors_of(run)
    assert new["callbacks"]["checkpointer"]["best_error"] == min(errors) and len(errors) == 3
    assert RunDir(run).read_summary()["format"] == 1
    assert (run / "config.toml").read_text().startswith("reslab_format") is False  # resume keeps the old file
    assert RunDir(run).read_config().model.name == "lenet5"


def test_analyses_refuse_a_network_without_shortcut_blocks(tmp_path, capsys):
    assert main(["train", "--name", "l", f"--out_dir={json.dumps(str(tmp_path / 'runs'))}", "--data.dataset=sample",
                 "--data.cache_dir=" + json.dumps(str(tmp_path / "cache")), "--model.name=lenet5",
                 "--train.steps=1", "--train.precision=fp32", "--quiet"]) == 0
    capsys.readouterr()
    for what in ("lesion", "paths"):
        assert main(["analyze", what, str(tmp_path / "runs" / "l"), "--images", "32", "--draws", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert "needs a network of residual or plain blocks" in err or "needs blocks with a residual branch" in err
        assert len(err.splitlines()) == 1


def test_linear_scaling_is_explicit_and_warms_up_over_five_epochs():
    from reslab.workflows.train import scaled_schedule

    cfg = load_config(None, ["--train.epochs=1", "--data.batch_size=512", "--optim.lr=0.1"])
    assert scaled_schedule(cfg, 100) == (cfg.schedule, 0.1)  # off: the rate as written
    on = load_config(None, ["--train.epochs=1", "--data.batch_size=512", "--optim.lr=0.1", "--optim.linear_scaling=true"])
    schedule, lr = scaled_schedule(on, 100)
    assert lr == pytest.approx(0.2) and schedule.warmup_steps == 500 and schedule.warmup_lr == 0.1


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_it_says_it_is_emulated(tmp_path, image_folder, train_args, capsys, monkeypatch, native):
    from reslab.workflows import train

    monkeypatch.setattr(train, "cpu_supports_bf16", lambda: native)
    args = [a for a in train_args(tmp_path, image_folder, "--train.steps=1", "--train.precision=bf16") if a != "--quiet"]
    assert main(args) == 0
    said = "bf16 on a CPU without bf16 instructions" in capsys.readouterr().err
    assert said is not native


def test_a_run_finished_before_a_setting_existed_is_still_finished_and_a_changed_recipe_is_not(tmp_path):
    from reslab.config import as_dict

    cfg = sweep.run_config(load_config(None, ["--train.steps=5", f"--out_dir={json.dumps(str(tmp_path))}",
                                              "--name=r"]))
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    now = as_dict(cfg)
    older = json.loads(json.dumps(now))
    del older["data"]["jpeg_quality"], older["train"]["accumulate"]  # settings added after that run
    run.write_summary({"config": older})
    assert sweep.status(cfg) == "finished"
    assert run.status(now) == "finished"
    changed = json.loads(json.dumps(older))
    changed["train"]["steps"] = 6
    run.write_summary({"config": changed})
    assert sweep.status(cfg) == "new"
    unknown = json.loads(json.dumps(now))
    unknown["train"]["no_such_setting"] = 1
    run.write_summary({"config": unknown})
    assert sweep.status(cfg) == "new"
    run.write_summary({"config": {**older, "train": {**older["train"], "accumulate": 2}}})
    assert sweep.status(cfg) == "new"  # a stored value that differs from today's default is a different recipe


def test_a_pools_time_left_weighs_each_step_by_its_networks_depth():
    """A resnet56 step (weight 56) costs 2.8 resnet20 steps (weight 20). The rate counts from the first sight of
    a trained step (not the workers' start) and leaves out a resumed run's earlier steps. The shared array holds
    (planned, first, done) steps per run."""
    now = [0.0]
    pace = pool.PoolPace([56, 20], clock=lambda: now[0])
    assert pace.read([0] * 6) == (0, 0, None)  # the workers start
    now[0] = 10.0
    assert pace.read([100, 0, 50, 0, 0, 0]) == (200, 50, None)  # resnet20 not started: as long as the mean
    now[0] = 20.0  # 56 x 50 units in 10 s; left: resnet20's 20 x 100 units
    assert pace.read([100, 0, 100, 100, 0, 0])[2] == pytest.approx(20 * 100 * 10 / (56 * 50))
    now[0] = 10.0
    resumed = pool.PoolPace([56, 0], clock=lambda: now[0])  # 0: depth not known, weighted as the mean (56)
    assert resumed.read([100, 40, 40, 0, 0, 0])[2] is None  # resumed at step 40, nothing trained yet
    now[0] = 20.0
    assert resumed.read([100, 40, 60, 100, 0, 0])[2] is None  # first sight of training
    now[0] = 30.0  # 56 x 30 units trained in 10 s; 56 x 110 steps left
    assert resumed.read([100, 40, 80, 100, 0, 10])[2] == pytest.approx(56 * 110 * 10 / (56 * 30))


def test_the_probe_adds_up_a_pools_time_as_the_pool_runs(monkeypatch):
    """Seconds a step 3 for the 56-layer nets, 1 for the 20-layer ones, 10 steps each: one after another 80 s;
    two workers, deepest first, 40 s each (plus the workers' start); each step timed on half of the cores."""
    seen = []

    def fake(cfg, name, *, image_size, steps=3):
        seen.append(torch.get_num_threads())
        return 3.0 if name.endswith("56") else 1.0

    monkeypatch.setattr(probe, "seconds_per_step", fake)
    monkeypatch.setattr(probe, "usable_cores", lambda: 4)
    cfg = load_config(None, ["--train.steps=10"])
    models = ["plain20", "plain56", "resnet20", "resnet56"]
    threads = torch.get_num_threads()
    assert probe.estimate_seconds(cfg, models, steps_per_run=10, overhead_s=15)[0] == 15 + 80
    assert probe.estimate_seconds(cfg, models, steps_per_run=10, overhead_s=15, jobs=2)[0] == 15 + probe.WORKER_START_S + 40
    assert seen == [threads] * 4 + [2] * 4 and torch.get_num_threads() == threads
    # the analyses after training: 6 passes of each network (8 s of steps) on all 4 cores, half a share's time
    assert probe.estimate_seconds(cfg, models, steps_per_run=10, overhead_s=15, analysis_steps=6)[0] == 15 + 80 + 48
    assert (probe.estimate_seconds(cfg, models, steps_per_run=10, overhead_s=15, jobs=2, analysis_steps=6)[0]
            == 15 + probe.WORKER_START_S + 40 + 24)
