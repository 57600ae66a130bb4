"""The command line as a user meets it: tables, runs, resume, and one-line errors with exit code 2."""

import json

import pytest

from reslab.cli import main
from reslab.device import usable_cores


def test_models_prints_the_table(capsys):
    assert main(["models", "resnet2"]) == 0
    out = capsys.readouterr().out
    assert "resnet20" in out and "269,722" in out and "= published" in out


def test_train_writes_a_run_folder_then_refuses_to_overwrite_and_resumes(tmp_path, image_folder, train_args, capsys):
    assert main(train_args(tmp_path, image_folder, "--train.steps=10", "--train.eval_every=5")) == 0
    run = tmp_path / "runs" / "t"
    assert {p.name for p in run.iterdir()} >= {"config.toml", "metrics.jsonl", "summary.json", "checkpoints", "tb"}
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "checkpoints" / "best.pt").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 10 and summary["model"] == "resnet20"
    assert "validation error" in capsys.readouterr().out

    assert main(train_args(tmp_path, image_folder, "--train.steps=10")) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume" in err and len(err.strip().splitlines()) == 1

    # extend the finished run: resume with more steps
    assert main(["train", "--resume", str(run), "--train.steps=14", "--quiet"]) == 0
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 14
    steps = [r["step"] for r in rows if r["kind"] == "train"]
    assert steps == sorted(set(steps))  # no duplicated rows after resuming
    # TensorBoard, read by its own reader: one run, both sessions' scalars, the config, the final hparams
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    board.Reload()
    assert [e.step for e in board.Scalars("val/error")] == [r["step"] for r in rows if r["kind"] == "eval"]
    assert "resnet20" in board.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert [e.step for e in board.Scalars("hparams/val_error")] == [10, 14]
    assert all(p.is_file() for p in (run / "tb").iterdir())  # no sub-run folders


def test_eval_reports_per_class_and_confusion(tmp_path, image_folder, train_args, capsys):
    assert main(train_args(tmp_path, image_folder, "--train.steps=6")) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "runs" / "t")]) == 0
    out = capsys.readouterr().out
    assert "per-class accuracy" in out and "confusion matrix" in out and "bee" in out
    report = json.loads((tmp_path / "runs" / "t" / "eval" / "val.json").read_text())
    assert len(report["confusion"]) == 4 and sum(map(sum, report["confusion"])) == report["images"] == 16


@pytest.mark.parametrize("args, message", [
    (["train", "missing.toml"], "config file not found"),
    (["train", "--resume", "nowhere"], "not a run folder"),
    (["eval", "nowhere.pt"], "checkpoint not found"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("override, message", [
    ("--model.name=resnet21", "unknown model 'resnet21'"),
    ("--optim.name=adamax", "unknown optimizer 'adamax'"),
    ("--optim.lr=-1", "optim.lr must be positive"),
    ("--data.batch_size=0", "data.batch_size must be positive"),
    ("--train.bogus=1", "unknown config key 'train.bogus'"),
])
def test_bad_config_values(tmp_path, image_folder, train_args, override, message, capsys):
    assert main(train_args(tmp_path, image_folder, "--train.steps=2", override)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_an_unknown_network_is_refused_before_the_training_line(tmp_path, image_folder, train_args, capsys):
    args = [a for a in train_args(tmp_path, image_folder, "--train.steps=2", "--model.name=resnet21") if a != "--quiet"]
    assert main(args) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "reslab: error: unknown model 'resnet21'; did you mean resnet32, resnet20, resnet18?"]


def test_missing_dataset_and_empty_class(tmp_path, image_folder, train_args, capsys):
    args = train_args(tmp_path, image_folder, "--train.steps=2", "--data.path=" + json.dumps(str(tmp_path / "no")))
    assert main(args) == 2
    assert "no" in capsys.readouterr().err
    (image_folder / "eel").mkdir()
    assert main(train_args(tmp_path, image_folder, "--train.steps=2", "--overwrite")) == 2
    err = capsys.readouterr().err
    assert "eel" in err and len(err.strip().splitlines()) == 1


def test_checkpoint_of_another_model_is_refused(tmp_path, image_folder, train_args, capsys):
    assert main(train_args(tmp_path, image_folder, "--train.steps=4")) == 0
    run = tmp_path / "runs" / "t"
    cfg = (run / "config.toml").read_text().replace('name = "resnet20"', 'name = "resnet32"')
    (run / "config.toml").write_text(cfg)
    assert main(["train", "--resume", str(run), "--train.steps=8", "--quiet"]) == 2
    assert "holds a resnet20 model, not resnet32" in capsys.readouterr().err


def test_nan_loss_stops_keeps_checkpoint_and_names_the_step(tmp_path, image_folder, train_args, capsys):
    args = train_args(tmp_path, image_folder, "--train.steps=40", "--train.checkpoint_every=2",
                      "--optim.lr=1e6", "--optim.name=sgd", "--train.log_every=1")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert ("loss became" in err or "holds NaN or infinite values" in err) and "at step" in err
    assert "last good checkpoint" in err and len(err.splitlines()) == 1
    # the checkpoint it names is good: every floating tensor in it is finite
    import re
    import torch
    from reslab.checkpoint import load_checkpoint

    named = re.search(r"last good checkpoint is (\S+) \(step (\d+)\)", err)
    state = load_checkpoint(named.group(1))
    assert state["step"] == int(named.group(2))

    def tensors(x):
        if isinstance(x, torch.Tensor):
            yield x
        elif isinstance(x, dict):
            for v in x.values():
                yield from tensors(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                yield from tensors(v)
    assert all(bool(torch.isfinite(t).all()) for t in tensors(state) if t.is_floating_point())


@pytest.mark.parametrize("args, message", [
    (["experiment", "degradation"], "needs a recipe: a CONFIG such as configs/cifar10_degradation.toml"),
    (["experiment", "ablation"], "needs a recipe: a CONFIG such as configs/cifar10_ablation.toml"),
    (["experiment", "degradation", "--train.epochs=1", "--models", "resnet21"], "unknown model 'resnet21'"),
    (["experiment", "optimizers", "--train.epochs=1", '--experiment.rules=["lbfgs"]'], "unknown optimizer 'lbfgs'"),
    # an old flag an experiment does not take points at the experiment's own options
    (["experiment", "optimizers", "--train.epochs=1", "--models", "adam"], "known: rules"),
    (["experiment", "depth", "--train.epochs=1", "--experiment.depths=[21]"], "no CIFAR network 'resnet21'"),
    (["experiment", "depth", "--train.epochs=1", "--experiment.bogus=1"], "unknown config key 'experiment.bogus'"),
    (["experiment", "depth", "--train.epochs=1", "--experiment.analysis_draws=0"], "analysis_draws must be a whole"),
    (["experiment", "depth", "--train.epochs=1", '--experiment.beside="no/such"'], "experiment.beside: no such folder"),
    (["experiment", "architectures", "--train.epochs=1", "--experiment.analysis_draws=0"], "at least 1, got 0"),
    (["experiment", "architectures", "--train.epochs=1", '--experiment.speeds="no/such.json"'],
     "experiment.speeds: no/such.json: no such file"),
    (["experiment", "degradation", "--train.epochs=1", "--experiment.analysis_batch=-1"], "analysis_batch must be 0"),
    (["analyze", "gradients", "no_such_thing"], "neither a run folder nor a model name"),
    (["analyze", "gradients", "resnet20", "--draws", "0"], "--draws must be at least 1, got 0"),
    (["report", "no_such_folder"], "no such folder"),
    (["playground", "moon"], "unknown surface"),
])
def test_experiment_and_analysis_bad_input(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_each_experiment_names_a_recipe_that_exists_and_runs_it():
    from pathlib import Path

    from reslab.config import load_config
    from reslab.experiments import experiment, experiment_names, experiment_options

    root = Path(__file__).resolve().parents[1]
    for name in experiment_names():
        spec = experiment(name)
        if spec.needs_recipe:
            assert spec.recipe and (root / spec.recipe).is_file(), name
            experiment_options(name, load_config(root / spec.recipe, []))  # its [experiment] table fits


def test_demo_prints_its_plan_and_expected_time_and_takes_overrides(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--train.steps=2", "--train.epochs=0", "--train.log_every=1",
                 '--experiment.models=["plain20", "resnet20"]', "--experiment.analysis_batch=32",
                 f"--data.cache_dir={json.dumps(str(tmp_path / 'cache'))}", "--train.precision=fp32"]) == 0
    captured = capsys.readouterr()
    plan = captured.err.splitlines()
    assert plan[0].startswith("reslab demo: plain20, resnet20 on 4,500 images of the embedded CIFAR-10 sample at "
                              "16x16 (2 steps of 128 each, fp32 on cpu")
    assert ("; 2 runs at once, " in plan[0]) == (usable_cores() >= 2)  # two workers on two cores or more
    assert plan[1].startswith("expected time on this machine: about ") and "--full" in plan[1]
    assert (out / "report.html").is_file() and "verdict" in captured.out
    runs = sorted(p.name for p in (out / "runs").iterdir() if not p.name.startswith("."))  # not the lock files
    assert runs == ["plain20", "resnet20"]
    summary = json.loads((out / "runs" / "resnet20" / "summary.json").read_text())
    assert summary["steps"] == 2 and "16x16" in summary["dataset"]


def test_a_corrupt_record_in_a_folder_is_named_in_one_line(tmp_path, capsys):
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "experiment.json").write_text('{"title": "cut off')
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert "experiment.json is not valid JSON" in err and len(err.splitlines()) == 1
    (folder / "experiment.json").write_bytes(b"\xff\xfe{}")
    assert main(["report", str(folder)]) == 2
    assert "not UTF-8 text" in capsys.readouterr().err


def test_counts_below_one_are_refused_in_one_line_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "exp"
    for argv, flag in ((["experiment", "degradation", "--train.epochs=1", "--out", str(out), "--jobs", "0"], "jobs"),
                       (["train", "--train.steps=1", "--nproc", "0"], "nproc")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith(f"--{flag} must be at least 1, got 0") and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_train_nproc_runs_the_same_command_through_torchs_launcher(monkeypatch):
    from torch.distributed import run as torchrun

    seen = []
    monkeypatch.setattr(torchrun, "main", seen.append)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    argv = ["train", "cfg.toml", "--nproc", "2", "--train.steps=5", "--nproc=2", "--quiet"]
    assert main(argv) == 0
    assert seen == [["--standalone", "--nproc_per_node=2", "-m", "reslab", "train", "cfg.toml", "--train.steps=5",
                     "--quiet"]]  # every --nproc taken out: the processes train, they do not launch again
    import os

    assert os.environ["OMP_NUM_THREADS"] == "4"  # the cores shared between the processes
