"""What reslab guarantees under hostile and clumsy use: one line and exit 2 for every failure, nothing
lost, one writer per run folder, signals that checkpoint, evaluations that a crash cannot skip."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reslab.checkpoint import load_checkpoint, save_checkpoint
from reslab.cli import main
from reslab.rundir import RunDir
from reslab.train import Callback
from reslab.workflows import train as train_workflow


def sample_args(tmp_path, *extra, name="s"):
    return ["train", "--name", name, f"--out_dir={json.dumps(str(tmp_path / 'runs'))}", "--data.dataset=sample",
            "--data.limit=512", "--data.val_size=100", "--data.batch_size=64",
            "--data.cache_dir=" + json.dumps(str(tmp_path / "cache")), "--model.name=lenet5",
            "--train.precision=fp32", "--train.log_every=1", "--quiet", *extra]


def signal_once_training(cmd, runs, sig, *, lines=2, group=False, env=None) -> tuple[int, str]:
    """Start ``cmd``, wait until every run folder in ``runs`` has ``lines`` metrics lines, send ``sig`` (to the
    whole process group with ``group``, as Ctrl-C does), and return the exit code and stderr. The optimizer step
    is left uncompiled (the same rule, eager): compiling it anew in every process was most of the wait."""
    env = {**(os.environ if env is None else env), "TORCH_COMPILE_DISABLE": "1"}
    child = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, start_new_session=group)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not all(len(RunDir(r).read_metrics()) >= lines for r in runs):
            time.sleep(0.2)
        assert all(RunDir(r).read_metrics() for r in runs), "training never started"
        os.killpg(child.pid, sig) if group else child.send_signal(sig)
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
    return child.returncode, err


def experiment_args(tmp_path, models, *extra):
    return [sys.executable, "-m", "reslab", "experiment", "degradation", "--out", str(tmp_path / "exp"), *extra,
            "--data.dataset=sample", "--data.limit=512", "--data.val_size=100", "--data.batch_size=64",
            "--data.cache_dir=" + json.dumps(str(tmp_path / "cache")), "--train.precision=fp32",
            "--train.steps=100000", "--train.eval_every=1000", "--train.log_every=1",
            f"--experiment.models={json.dumps(models)}"]


def one_line_error(capsys, *fragments):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err
    return err


class Crash(Callback):
    """Raises in on_evaluate at one step: a process killed at that point."""

    state_key = "crash"

    def __init__(self, at):
        self.at = at

    def on_evaluate(self, trainer, metrics):
        if trainer.step == self.at:
            raise KeyboardInterrupt(f"killed at step {trainer.step}")


@pytest.mark.parametrize("where", ["before the checkpoint", "after the last checkpoint"])
def test_a_crash_around_an_evaluation_never_skips_it(tmp_path, monkeypatch, where):
    real = train_workflow.callbacks_for

    def with_crash(cfg, run, model, checkpointer, total, progress, **kwargs):
        callbacks = real(cfg, run, model, checkpointer, total, progress, **kwargs)
        at = 4 if where == "before the checkpoint" else 6
        return callbacks[:-1] + [Crash(at), callbacks[-1]] if at == 4 else callbacks + [Crash(at)]

    args = sample_args(tmp_path, "--train.steps=6", "--train.eval_every=2", "--train.checkpoint_every=2")
    monkeypatch.setattr(train_workflow, "callbacks_for", with_crash)
    assert main(args) == 130  # the command line's answer to an interrupt
    monkeypatch.setattr(train_workflow, "callbacks_for", real)
    run = RunDir(tmp_path / "runs" / "s")
    assert main(["train", "--resume", str(run.path), "--quiet"]) == 0
    evals = [r["step"] for r in run.read_metrics() if r["kind"] == "eval"]
    assert evals == [2, 4, 6]  # each evaluation once, none skipped
    summary = run.read_summary()
    assert summary["final"]["step"] == 6 and "val_error" in summary["final"]
    errors = [r["val_error"] for r in run.read_metrics() if r["kind"] == "eval"]
    assert summary["best_val_error"] == min(errors)


def test_two_writers_of_one_run_folder(tmp_path, capsys):
    assert main(sample_args(tmp_path, "--train.steps=2")) == 0
    run = RunDir(tmp_path / "runs" / "s")
    with run.lock():  # another process writing it (flock conflicts across open files, even in one process)
        assert main(sample_args(tmp_path, "--train.steps=2", "--overwrite")) == 2
        one_line_error(capsys, "is being written by reslab process")
        assert main(["train", "--resume", str(run.path), "--train.steps=4", "--quiet"]) == 2
        one_line_error(capsys, "is being written by")
    assert main(["train", "--resume", str(run.path), "--train.steps=4", "--quiet"]) == 0  # released


def test_the_lock_dies_with_its_process(tmp_path):
    folder = tmp_path / "runs" / "s"
    code = ("import sys, time; from reslab.rundir import RunDir\n"
            f"with RunDir({str(folder)!r}).lock():\n    print('locked', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        from reslab.rundir import RunLocked
        with pytest.raises(RunLocked):
            with RunDir(folder).lock():
                pass
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        with RunDir(folder).lock():  # the kernel released it
            pass
    finally:
        child.kill()


def test_sigterm_checkpoints_and_says_how_to_resume(tmp_path):
    run = tmp_path / "runs" / "s"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    code, err = signal_once_training([sys.executable, "-m", "reslab", *sample_args(
        tmp_path, "--train.steps=100000", "--train.eval_every=1000")], [run], signal.SIGTERM, lines=3, env=env)
    assert code == 143
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "stopped by SIGTERM after step" in lines[0]
    assert f"reslab train --resume {run}" in lines[0]
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] >= 3 and state["step"] == max(r["step"] for r in RunDir(run).read_metrics())
    assert RunDir(run).read_summary() is None  # not finished: resumable
    assert main(["train", "--resume", str(run), f"--train.steps={state['step'] + 2}", "--quiet"]) == 0


def test_checkpoints_that_cannot_be_resumed_from(tmp_path, capsys):
    assert main(sample_args(tmp_path, "--train.steps=2")) == 0
    run = RunDir(tmp_path / "runs" / "s")
    shutil.copy(run.best_checkpoint, run.last_checkpoint)  # weights only
    assert main(["train", "--resume", str(run.path), "--train.steps=4", "--quiet"]) == 2
    one_line_error(capsys, "cannot be resumed from: it has no optimizer", "holds weights only")
    state = load_checkpoint(run.best_checkpoint)
    save_checkpoint(run.last_checkpoint, {**state, "model": [1, 2, 3], "optimizer": {}, "lr_controller": {},
                                          "step": 2, "epoch": 0, "rng": {}})
    assert main(["train", "--resume", str(run.path), "--train.steps=4", "--quiet"]) == 2
    one_line_error(capsys, "'model' entry is a list, not a state dict")


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    real_replace = os.replace
    writes = []

    def replace(src, dst):
        if str(dst).endswith("last.pt"):
            writes.append(dst)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert main(sample_args(tmp_path, "--train.steps=6", "--train.checkpoint_every=2")) == 2
    one_line_error(capsys, "cannot write", "last.pt: No space left on device; the previous last.pt is intact")
    monkeypatch.setattr(os, "replace", real_replace)
    ckpt = tmp_path / "runs" / "s" / "checkpoints"
    assert load_checkpoint(ckpt / "last.pt")["step"] == 2
    assert not list(ckpt.glob(".*.tmp"))  # the failed write cleaned up after itself


def test_read_only_file_system_and_out_dir_that_is_a_file(tmp_path, monkeypatch, capsys):
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith("summary.json"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert main(sample_args(tmp_path, "--train.steps=2")) == 2
    one_line_error(capsys, "summary.json: Read-only file system", "last.pt is intact")
    monkeypatch.setattr(os, "replace", real_replace)
    (tmp_path / "afile").write_text("x")
    args = [a if not a.startswith("--out_dir=") else f"--out_dir={json.dumps(str(tmp_path / 'afile'))}"
            for a in sample_args(tmp_path, "--train.steps=2")]
    assert main(args) == 2
    one_line_error(capsys, "afile is a file, not a folder")


def test_a_cut_off_metrics_line_and_stale_temporaries_are_repaired_on_resume(tmp_path):
    assert main(sample_args(tmp_path, "--train.steps=4", "--train.eval_every=2")) == 0
    run = RunDir(tmp_path / "runs" / "s")
    with open(run.metrics_file, "a") as f:
        f.write('{"kind": "train", "st')  # a kill in the middle of a line
    stale = run.checkpoint_dir / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert main(["train", "--resume", str(run.path), "--train.steps=6", "--quiet"]) == 0
    lines = run.metrics_file.read_text().splitlines()
    assert all(json.loads(line) for line in lines) and json.loads(lines[-1])["step"] == 6
    assert not stale.exists()


def test_config_that_is_a_folder_and_bare_checkpoint_on_the_sample(tmp_path, capsys):
    assert main(["train", str(tmp_path)]) == 2
    one_line_error(capsys, "is a folder, not a config file")
    assert main(sample_args(tmp_path, "--train.steps=2")) == 0
    bare = tmp_path / "model.pt"
    shutil.copy(tmp_path / "runs" / "s" / "checkpoints" / "best.pt", bare)
    capsys.readouterr()
    assert main(["eval", str(bare), "--data", "sample", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 5000 and Path(report["written_to"]).parent == tmp_path / "eval"



def test_sigterm_in_an_experiment_says_that_the_same_command_continues(tmp_path):
    out, run = tmp_path / "exp", tmp_path / "exp" / "runs" / "lenet5"
    code, err = signal_once_training(experiment_args(tmp_path, ["lenet5", "plain20"], "--quiet"), [run],
                                     signal.SIGTERM, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert code == 143
    line = err.strip().splitlines()[-1]
    assert "stopped by SIGTERM after step" in line and f"reslab train --resume {run}" in line
    assert line.endswith("or run the same reslab experiment command again: finished runs are skipped and "
                         "stopped ones resume from their checkpoints")
    assert not (out / "runs" / "plain20").exists()  # the next run never started


def test_ctrl_c_stops_a_parallel_experiment_and_says_how_to_continue(tmp_path):
    """Ctrl-C (SIGINT to the whole process group) in ``reslab experiment --jobs 2``: each worker checkpoints
    its run, the queued run never starts, one line says that the same command continues, exit 130. (It used
    to hang: a worker killed outside training could leave the pool's result queue locked.) The pool starts
    the deepest networks first, so the shallow lenet5 is the one queued."""
    out = tmp_path / "exp"
    runs = [out / "runs" / name for name in ("plain20", "resnet20")]
    code, err = signal_once_training(experiment_args(tmp_path, ["lenet5", "plain20", "resnet20"], "--jobs", "2"),
                                     runs, signal.SIGINT, group=True)
    assert code == 130
    assert "interrupted; run the same reslab experiment command again: finished runs are skipped" in err
    assert_checkpointed(runs)
    assert not (out / "runs" / "lenet5").exists()  # the queued run never started


def test_sigterm_to_the_parent_alone_stops_a_parallel_experiment_the_same_way(tmp_path):
    """``kill PID`` (or ``docker stop``) reaches the parent only, not its workers: the parent asks them to
    checkpoint and stop, says how to continue in one line and exits 143, instead of dying and leaving them."""
    out = tmp_path / "exp"
    runs = [out / "runs" / name for name in ("plain20", "resnet20")]
    code, err = signal_once_training(experiment_args(tmp_path, ["lenet5", "plain20", "resnet20"], "--jobs", "2"),
                                     runs, signal.SIGTERM)
    assert code == 143, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("reslab: error: stopped by SIGTERM: the runs in training saved checkpoints"), line
    assert line.endswith("run the same reslab experiment command again: finished runs are skipped and "
                         "stopped ones resume from their checkpoints"), line
    assert "Traceback" not in err
    assert_checkpointed(runs)
    assert not (out / "runs" / "lenet5").exists()


def assert_checkpointed(runs):
    for r in runs:
        state = load_checkpoint(r / "checkpoints" / "last.pt")
        assert state["step"] == max(m["step"] for m in RunDir(r).read_metrics()) >= 2
