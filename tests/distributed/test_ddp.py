"""One run on 1 or 2 processes (gloo on the CPU): the same optimisation, one writer, sharded evaluation,
resume across world sizes, restarts after a killed rank, and two "nodes" on localhost.

Every process here runs with one thread, and the tests spawn their own processes: through
``torch.multiprocessing`` (so a test can tamper with the reduction) or through torch's launcher.
Each new process would compile the optimizer step anew (most of a short run's time); the processes
here, the single-process runs they are compared with included, take the eager flat path instead
(TORCH_COMPILE_DISABLE), which computes the same rule; the two-node test keeps the compiled step.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from reslab.checkpoint import load_checkpoint
from reslab.config import load_config
from reslab.rundir import RunDir
from reslab.workflows.evaluate import evaluate_checkpoint
from reslab.workflows.train import train_run

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recipe(out: Path, cache: Path, *extra: str, name: str = "r"):
    return [f"--name={name}", f"--out_dir={json.dumps(str(out))}", "--data.dataset=sample", "--data.limit=512",
            "--data.val_size=101", "--data.batch_size=64", "--data.eval_batch_size=40",
            f"--data.cache_dir={json.dumps(str(cache))}", "--train.precision=fp32", "--train.log_every=5",
            "--train.tensorboard=false", *extra]


def _worker(rank: int, world: int, port: int, overrides: list[str], wrong_reduction: bool, resume: bool) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    if wrong_reduction:  # sum the ranks' gradients instead of averaging them
        from torch.nn import parallel

        real = parallel.DistributedDataParallel

        def summing(state, bucket):
            work = torch.distributed.all_reduce(bucket.buffer(), async_op=True)
            return work.get_future().then(lambda fut: fut.value()[0])

        class Summing(real):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                self.register_comm_hook(None, summing)

        parallel.DistributedDataParallel = Summing
    from reslab.dist import shutdown
    try:
        train_run(load_config(None, overrides), resume=resume)
    finally:
        shutdown()


def _alone(rank: int, overrides: list[str], resume: bool) -> None:
    torch.set_num_threads(1)
    train_run(load_config(None, overrides), resume=resume)


def eager(start, *args, nprocs: int) -> None:
    """Start the processes with the optimizer step uncompiled. They inherit the variable; this process, which
    may compile later (in other tests), must not import torch's compiler while it is set, and does not: it
    only waits for them."""
    before = os.environ.get("TORCH_COMPILE_DISABLE")
    os.environ["TORCH_COMPILE_DISABLE"] = "1"
    try:
        mp.start_processes(start, args=args, nprocs=nprocs, start_method="spawn")
    finally:
        if before is None:
            del os.environ["TORCH_COMPILE_DISABLE"]
        else:
            os.environ["TORCH_COMPILE_DISABLE"] = before


def spawn(world: int, overrides: list[str], *, wrong_reduction: bool = False, resume: bool = False) -> None:
    eager(_worker, world, free_port(), overrides, wrong_reduction, resume, nprocs=world)


def single(overrides: list[str], *, resume: bool = False) -> None:
    """One process, no process group: in a process of its own, so that it takes the ranks' optimizer path."""
    eager(_alone, overrides, resume, nprocs=1)


def max_relative_difference(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).norm() / b[k].norm().clamp(min=1e-12)) for k in b if b[k].is_floating_point())


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    """BatchNorm-free resnet20, reslab's optimizer, fp32, 20 steps; a summing reduction must fail this.

    The residual branches start at zero: a resnet20 without normalisation and with He-initialised
    branches doubles its activations' variance at every block and trains chaotically, so that float
    rounding alone (1e-7 after the first step, identical for 1 and 2 processes) grows 1.6x a step."""
    common = ("--train.steps=20", "--model.options.norm=\"none\"", "--model.options.zero_init_residual=true",
              "--optim.lr=0.02", "--train.eval_every=10")
    single(recipe(tmp_path / "one", tmp_path / "cache", *common))
    spawn(2, recipe(tmp_path / "two", tmp_path / "cache", *common))
    spawn(2, recipe(tmp_path / "wrong", tmp_path / "cache", *common), wrong_reduction=True)
    one = load_checkpoint(tmp_path / "one" / "r" / "checkpoints" / "last.pt")["model"]
    two = load_checkpoint(tmp_path / "two" / "r" / "checkpoints" / "last.pt")["model"]
    wrong = load_checkpoint(tmp_path / "wrong" / "r" / "checkpoints" / "last.pt")["model"]
    assert max_relative_difference(two, one) <= 1e-5
    assert max_relative_difference(wrong, one) > 1e-3
    assert not any(k.startswith("module.") for k in two)  # saved unwrapped


def test_batchnorm_run_one_writer_and_sharded_evaluation(tmp_path):
    spawn(2, recipe(tmp_path, tmp_path / "cache", "--train.steps=8", "--train.eval_every=4"))
    run = RunDir(tmp_path / "r")
    rows = run.read_metrics()
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [4, 8]  # written once, by rank 0
    assert [r["step"] for r in rows if r["kind"] == "train"] == [5]
    summary = run.read_summary()
    assert summary["processes"] == 2 and summary["backend"] == "gloo" and summary["batchnorm"].startswith("per rank")
    assert sorted(p.name for p in run.path.iterdir()) == ["checkpoints", "config.toml", "metrics.jsonl", "summary.json"]
    # the two ranks' shares of the 101 held-out images, summed, give what one process counts on all of them
    alone = evaluate_checkpoint(run.last_checkpoint)
    assert alone["images"] == 101
    assert alone["errors"] == round(summary["final"]["val_error"] * 101)
    assert alone["loss"] == pytest.approx(summary["final"]["val_loss"], rel=1e-5)


def test_resume_across_world_sizes(tmp_path):
    base = recipe(tmp_path, tmp_path / "cache", "--train.eval_every=4")
    spawn(2, base + ["--train.steps=4"])
    state = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")
    assert state["step"] == 4 and state["train_loader"]["position"] == 4  # global batches
    single(base + ["--train.steps=8"], resume=True)  # 2 processes -> 1
    spawn(2, base + ["--train.steps=12"], resume=True)  # 1 -> 2
    rows = RunDir(tmp_path / "r").read_metrics()
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [4, 8, 12]
    assert load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")["train_loader"]["position"] == 4  # 12 of 8/epoch


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def reslab_train(tmp_path, *extra) -> list[str]:
    return ["-m", "reslab", "train", "--quiet", *recipe(tmp_path, tmp_path / "cache", *extra)]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "TORCH_COMPILE_DISABLE": "1"}
COMPILED = {k: v for k, v in ENV.items() if k != "TORCH_COMPILE_DISABLE"}


def kill_group(proc: subprocess.Popen) -> None:
    """End a launcher and every worker it started, whatever state they are in."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def test_a_rank_killed_by_sigkill_is_restarted_and_the_run_finishes(tmp_path):
    cmd = torchrun("--standalone", "--nproc_per_node=2", "--max-restarts=1", "--monitor-interval=0.5",
                   *reslab_train(tmp_path, "--train.steps=40", "--train.eval_every=20", "--train.checkpoint_every=5",
                                 "--resume-if-exists"))
    log = open(tmp_path / "torchrun.log", "w+")
    launcher = subprocess.Popen(cmd, env=ENV, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    run = RunDir(tmp_path / "r")
    try:
        deadline = time.time() + 120
        while time.time() < deadline and max([r["step"] for r in run.read_metrics()] or [0]) < 15:
            time.sleep(0.1)
        workers = subprocess.run(["pgrep", "-P", str(launcher.pid), "-f", "reslab"], capture_output=True,
                                 text=True).stdout.split()
        assert len(workers) == 2, workers
        os.kill(int(workers[-1]), signal.SIGKILL)
        launcher.wait(timeout=180)
    finally:
        kill_group(launcher)
        log.seek(0)
        out = log.read()
        log.close()
    assert launcher.returncode == 0, "\n".join(l for l in out.splitlines() if "rror" in l)[-3000:]
    assert "rank 1: another process of the run stopped" in out or "rank 0: another process" in out
    summary = run.read_summary()
    assert summary["steps"] == 40
    steps = [r["step"] for r in run.read_metrics() if r["kind"] == "train"]
    assert steps == list(range(5, 41, 5))  # complete, none twice
    assert load_checkpoint(run.last_checkpoint)["step"] == 40


def test_two_nodes_on_localhost(tmp_path):
    port = free_port()
    nodes = [subprocess.Popen(torchrun("--nnodes=2", "--nproc_per_node=1", f"--node_rank={rank}",
                                       "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=t",
                                       *reslab_train(tmp_path, "--train.steps=6", "--train.eval_every=3",
                                                     "--model.name=lenet5")),
                              env=COMPILED, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
             for rank in (0, 1)]
    try:
        outs = [n.communicate(timeout=180)[0] for n in nodes]
    finally:
        for n in nodes:
            kill_group(n)
    assert [n.returncode for n in nodes] == [0, 0], outs[0][-1500:] + outs[1][-1500:]
    summary = RunDir(tmp_path / "r").read_summary()
    assert summary["steps"] == 6 and summary["processes"] == 2


def test_accumulation_keeps_the_global_batch_with_fewer_processes(tmp_path):
    """1 process with train.accumulate=2 takes the steps 2 processes take, BatchNorm included (each part
    normalised by its own statistics, as each rank's half is): the same weights after 10 steps."""
    common = ("--train.steps=10", "--train.eval_every=10")
    spawn(2, recipe(tmp_path / "two", tmp_path / "cache", *common))
    single(recipe(tmp_path / "acc", tmp_path / "cache", *common, "--train.accumulate=2"))
    two = load_checkpoint(tmp_path / "two" / "r" / "checkpoints" / "last.pt")["model"]
    acc = load_checkpoint(tmp_path / "acc" / "r" / "checkpoints" / "last.pt")["model"]
    weights = {k: v for k, v in acc.items() if "running" not in k and "num_batches" not in k}
    assert max_relative_difference({k: two[k] for k in weights}, weights) <= 1e-5
