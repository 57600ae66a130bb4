"""What :func:`reslab.memory.keep_freed_memory` buys: reslab's training step with glibc's default allocator
settings against the settings reslab makes, same run, as a ratio.

Each measurement is a fresh process (allocator settings are per process and cannot be fully undone), the two
settings alternating, ``--repeats`` times each: it builds the network, trains ``--warmup`` steps through
reslab's ``Trainer`` and ``BatchLoader`` (random CIFAR-sized uint8 images: the step's cost does not depend on
the pixels), then times ``--steps`` steps and counts the page faults and the kernel time they cost.

Usage: python benchmarks/allocator.py [--cases resnet20:1 resnet20:2 resnet56:2] [--steps 30] [--repeats 3]
(a case is network:threads, or network:threads:image size; 32 by default, 16 is the demo's). Run it with nothing else busy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path


def child(model_name: str, threads: int, size: int, keep: bool, steps: int, warmup: int, batch: int) -> dict:
    import torch

    from reslab.memory import keep_freed_memory

    applied = keep_freed_memory() if keep else False
    torch.set_num_threads(threads)
    from reslab.data.arrays import ArrayDataset
    from reslab.data.loader import BatchLoader
    from reslab.device import resolve_precision
    from reslab.models import create_model
    from reslab.schedules import LRController, constant
    from reslab.train import Callback, Trainer

    class Timer(Callback):
        def on_batch_end(self, trainer, metrics) -> None:
            if trainer.step == warmup:
                self.t0, self.r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            self.t1, self.r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)

    g = torch.Generator().manual_seed(0)
    data = ArrayDataset(torch.randint(0, 256, (4096, 3, size, size), dtype=torch.uint8, generator=g),
                        torch.randint(0, 10, (4096,), generator=g), [str(i) for i in range(10)])
    torch.manual_seed(0)
    device, model = torch.device("cpu"), create_model(model_name, num_classes=10)
    precision = resolve_precision("auto", device)
    loader = BatchLoader(data, batch_size=batch, shuffle=True, augment=True, mean=[0.5] * 3, std=[0.25] * 3,
                         seed=0, drop_last=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    timer = Timer()
    Trainer(model, opt, LRController(partial(constant, base_lr=0.1)), device=device, precision=precision,
            channels_last=True, log_every=10**9, callbacks=[timer]).fit(loader, None, total_steps=warmup + steps)
    dt = timer.t1 - timer.t0
    return {"images_per_sec": steps * batch / dt, "faults_per_step": (timer.r1.ru_minflt - timer.r0.ru_minflt) / steps,
            "kernel_share": (timer.r1.ru_stime - timer.r0.ru_stime) / dt / threads,
            "peak_rss_mb": timer.r1.ru_maxrss / 1024, "applied": applied, "precision": precision}


def measure(case: str, keep: bool, args) -> dict:
    model, threads, size = (case + ":32").split(":")[:3]
    env = dict(os.environ, RESLAB_KEEP_FREED_MEMORY="1" if keep else "0")
    env.pop("GLIBC_TUNABLES", None)
    out = subprocess.run([sys.executable, __file__, "--child", model, threads, size, "1" if keep else "0",
                          str(args.steps), str(args.warmup), str(args.batch)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        m, threads, size, keep, steps, warmup, batch = sys.argv[2:9]
        print(json.dumps(child(m, int(threads), int(size), keep == "1", int(steps), int(warmup), int(batch))))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=["resnet20:1", "resnet20:2", "resnet56:2"])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args()
    from throughput import cpu_model  # the same machine line as the other benchmarks

    results = {"machine": cpu_model(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
               "command": " ".join(["python"] + sys.argv), "cases": {}}
    for case in args.cases:
        runs: dict[str, list[dict]] = {"default": [], "keep": []}
        for _ in range(args.repeats):
            for setting in ("default", "keep"):
                runs[setting].append(measure(case, setting == "keep", args))
        assert all(r["applied"] for r in runs["keep"]), "keep_freed_memory() did nothing here (not glibc?)"
        row = {s: {k: statistics.median(r[k] for r in rs) for k in ("images_per_sec", "faults_per_step",
                                                                    "kernel_share", "peak_rss_mb")}
               for s, rs in runs.items()}
        row["ratio"] = row["keep"]["images_per_sec"] / row["default"]["images_per_sec"]
        row["precision"] = runs["keep"][0]["precision"]
        results["cases"][case] = row
        d, k = row["default"], row["keep"]
        print(f"{case} ({row['precision']}): default {d['images_per_sec']:.0f} img/s, {d['faults_per_step']:.0f} "
              f"faults/step, {100 * d['kernel_share']:.0f}% in the kernel, {d['peak_rss_mb']:.0f} MB | kept "
              f"{k['images_per_sec']:.0f} img/s, {k['faults_per_step']:.0f} faults/step, "
              f"{100 * k['kernel_share']:.0f}% in the kernel, {k['peak_rss_mb']:.0f} MB | ratio {row['ratio']:.2f}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
