"""One run on 1 process x 2 threads against 2 processes x 1 thread (torchrun, gloo), same global batch.

A sanity ratio on a 2-core CPU, not a scaling claim: both use the same two cores. The two settings run
in alternating rounds (so drift of a shared machine hits both), each a fresh ``reslab train`` of
resnet20 on the embedded sample with a global batch of 128; the figure of a round is the median of
its logged training images/s after the first window (which holds start-up and compilation).

Usage: python benchmarks/processes.py [--steps 60] [--rounds 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def run(nproc: int, steps: int, out: Path, cache: Path) -> float:
    name = f"p{nproc}"
    cmd = [sys.executable, "-m", "reslab", "train", "--quiet", f"--nproc={nproc}", f"--name={name}",
           f"--out_dir={json.dumps(str(out))}", "--data.dataset=sample", "--data.batch_size=128",
           f"--data.cache_dir={json.dumps(str(cache))}", "--model.name=resnet20", f"--train.steps={steps}",
           "--train.log_every=10", f"--train.eval_every={steps}", "--train.tensorboard=false", "--overwrite"]
    env = {**os.environ, "OMP_NUM_THREADS": str(2 // nproc)}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["images_per_sec"] for r in rows if r["kind"] == "train"][1:]
    return statistics.median(speeds) if speeds else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json")
    args = p.parse_args()
    figures: dict[str, list[float]] = {"1 process x 2 threads": [], "2 processes x 1 thread": []}
    with tempfile.TemporaryDirectory() as tmp:
        out, cache = Path(tmp) / "runs", Path(tmp) / "cache"
        run(1, 11, out, cache)  # decode and cache the sample once, outside the timing
        for r in range(args.rounds):
            figures["1 process x 2 threads"].append(run(1, args.steps, out, cache))
            figures["2 processes x 1 thread"].append(run(2, args.steps, out, cache))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f} img/s" for k, v in figures.items()), flush=True)
    medians = {k: statistics.median(v) for k, v in figures.items()}
    ratio = medians["2 processes x 1 thread"] / medians["1 process x 2 threads"]
    print(f"medians: " + ", ".join(f"{k} {v:.0f} img/s" for k, v in medians.items()) + f"; ratio 2x1 / 1x2 = {ratio:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"figures": figures, "medians": medians, "ratio": ratio,
                                               "steps": args.steps, "torch": torch.__version__,
                                               "machine": platform.processor() or platform.machine(),
                                               "capability": torch.backends.cpu.get_cpu_capability()}, indent=2))


if __name__ == "__main__":
    main()
