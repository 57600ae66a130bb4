"""Training images/s of the architectures experiment's networks, each alone on an idle machine.

The experiment's own images/s column is the median over its runs' logged intervals, which anything else
running lowers. This times each network by itself: reslab's training step (``Trainer``, the real loss with
GoogLeNet's auxiliary heads, crop and flip on the shared CIFAR-10 copy), batch 128, after warm-up steps,
the median of the repeats, in the precision the experiment's runs used, with the allocator setting reslab's
command line makes at start-up (``reslab.memory.keep_freed_memory``; without it DenseNet-BC's step maps and
zeroes its gigabytes of activations afresh every step, which the experiment's runs never do).

Usage: python benchmarks/architectures_speed.py [--precision fp32] [--steps 6] [--repeats 2] [--json FILE]
Run it with nothing else busy: pause any background training first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import SHARED, cpu_model, reslab_throughput  # noqa: E402

from reslab.data.folder import load_image_folder  # noqa: E402
from reslab.data.loader import per_channel_stats  # noqa: E402
from reslab.experiments.architectures import ArchitecturesOptions  # noqa: E402
from reslab.memory import keep_freed_memory  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--precision", default="fp32", help="fp32, bf16 or auto (what the experiment's runs used)")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--data", default=str(SHARED), help="image-folder archive (default: the shared CIFAR-10 copy)")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args()
    kept = keep_freed_memory()  # as `reslab experiment architectures` does before its runs
    dataset = load_image_folder(args.data)
    mean, std = per_channel_stats(dataset.images)
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").is_file() else set()
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    results = {"machine": cpu_model(), "isa": isa, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "batch": args.batch,
               "precision": args.precision,
               "allocator": "freed memory kept (reslab.memory)" if kept else "glibc's default",
               "command": " ".join(["python"] + sys.argv), "images/s": {}}
    for entry in ArchitecturesOptions().entries():
        runs = [reslab_throughput(entry.model, dataset, mean, std, steps=args.steps, warmup=args.warmup,
                                  batch=args.batch, precision=args.precision, options=entry.options)
                for _ in range(args.repeats)]
        speed = statistics.median(v for v, _ in runs)
        results["images/s"][entry.name] = round(speed, 1)
        print(f"{entry.name}: {speed:.1f} images/s ({runs[0][1]}; repeats {', '.join(f'{v:.1f}' for v, _ in runs)})",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
