"""Training throughput: reslab's default fast path against a typical CIFAR training loop, same run.

(a) reslab: the whole uint8 dataset in memory, crop+flip on whole batches, bf16 autocast and
    channels_last on CPUs that support bf16 (the `auto` precision), through ``Trainer.fit``.
(b) reference: what a typical CIFAR repository does: a ``torch.utils.data.DataLoader`` over a dataset
    that augments one image at a time (PIL pad, crop, flip, to-tensor, normalise), fp32, NCHW, eager,
    torch.optim.SGD with momentum. It gets its best setting: 0 or 2 workers, whichever is faster.
(c) the bound set by the convolutions alone: every convolution of the model, forward and backward,
    timed in isolation at the shapes and precision of (a).

Usage: python benchmarks/throughput.py [--models resnet20 resnet56] [--steps 40] [--repeats 3]
Prints images/s (median of the repeats) and the ratios; run it with nothing else busy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from reslab.data.folder import load_image_folder
from reslab.data.loader import BatchLoader, per_channel_stats
from reslab.models import create_model
from reslab.schedules import LRController, constant
from reslab.train import Callback, Trainer
from reslab.device import autocast, resolve_precision

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cifar10-train-jpeg.tar.gz"


# -- (b) the reference loop ---------------------------------------------------------------------------
class PerImageCIFAR(torch.utils.data.Dataset):
    """Per-image augmentation as torchvision's RandomCrop(32, 4) + RandomHorizontalFlip + ToTensor + Normalize."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, mean, std) -> None:
        self.images, self.labels = images_hwc, labels
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i])
        padded = Image.new("RGB", (40, 40))
        padded.paste(img, (4, 4))
        x, y = random.randint(0, 8), random.randint(0, 8)
        img = padded.crop((x, y, x + 32, y + 32))
        if random.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        t = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (t - self.mean) / self.std, int(self.labels[i])


def reference_throughput(model_name: str, images_hwc, labels, mean, std, *, workers: int, steps: int,
                         warmup: int, batch: int) -> float:
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(PerImageCIFAR(images_hwc, labels, mean, std), batch_size=batch,
                                         shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)
    model.train()
    done, start = 0, None
    while done < warmup + steps:
        for x, y in loader:
            if done == warmup:
                start = time.perf_counter()
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            done += 1
            if done == warmup + steps:
                break
    return steps * batch / (time.perf_counter() - start)


# -- (a) reslab's path --------------------------------------------------------------------------------
class StepTimer(Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, None, None

    def on_batch_end(self, trainer, metrics) -> None:
        if trainer.step == self.warmup:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def reslab_throughput(model_name: str, dataset, mean, std, *, steps: int, warmup: int, batch: int,
                      compile: bool = False, precision: str = "auto",
                      options: dict | None = None) -> tuple[float, str]:
    torch.manual_seed(0)
    device = torch.device("cpu")
    precision = resolve_precision(precision, device)
    model = create_model(model_name, num_classes=10, **(options or {}))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loader = BatchLoader(dataset, batch_size=batch, shuffle=True, augment=True, mean=mean, std=std, seed=0,
                         drop_last=True, channels_last=True)
    timer = StepTimer(warmup)
    trainer = Trainer(model, opt, LRController(partial(constant, base_lr=0.1)), device=device,
                      precision=precision, channels_last=True, compile=compile, log_every=10**9,
                      callbacks=[timer])
    trainer.fit(loader, None, total_steps=warmup + steps)
    return steps * batch / (timer.end - timer.start), precision


# -- (c) the convolutions alone ----------------------------------------------------------------------
def conv_bound_throughput(model_name: str, *, batch: int, precision: str, repeats: int = 10) -> float:
    model = create_model(model_name, num_classes=10).to(memory_format=torch.channels_last)
    shapes = []
    hooks = [m.register_forward_hook(lambda m, inp, out: shapes.append((m, inp[0].shape)))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last))
    for h in hooks:
        h.remove()
    device = torch.device("cpu")
    inputs = [(conv, torch.randn(shape).to(memory_format=torch.channels_last).requires_grad_(i > 0))
              for i, (conv, shape) in enumerate(shapes)]

    def one_pass():
        for conv, x in inputs:
            with autocast(device, precision):
                out = conv(x)
            out.backward(torch.ones_like(out))

    for _ in range(3):
        one_pass()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also time reslab with train.compile=true")
    p.add_argument("--data", default=str(SHARED), help="image-folder archive (default: the shared CIFAR-10 copy)")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args()

    dataset = load_image_folder(args.data)
    mean, std = per_channel_stats(dataset.images)
    images_hwc = dataset.images.permute(0, 2, 3, 1).contiguous().numpy()
    labels = dataset.labels.numpy()
    results = {"machine": cpu_model(), "cores": os.cpu_count(),
               "threads": torch.get_num_threads(), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
               "command": " ".join(["python"] + sys.argv), "models": {}}
    for name in args.models:
        row: dict[str, float | str] = {}
        fast = [reslab_throughput(name, dataset, mean, std, steps=args.steps, warmup=args.warmup,
                                  batch=args.batch) for _ in range(args.repeats)]
        row["precision"] = fast[0][1]
        row["reslab"] = statistics.median(v for v, _ in fast)
        if args.compile:
            row["reslab_compiled"] = statistics.median(
                reslab_throughput(name, dataset, mean, std, steps=args.steps, warmup=args.warmup + 5,
                                  batch=args.batch, compile=True)[0] for _ in range(args.repeats))
        for workers in (0, 2):
            row[f"reference_w{workers}"] = statistics.median(
                reference_throughput(name, images_hwc, labels, mean, std, workers=workers, steps=args.steps,
                                     warmup=args.warmup, batch=args.batch) for _ in range(args.repeats))
        row["reference"] = max(row["reference_w0"], row["reference_w2"])
        row["conv_bound"] = conv_bound_throughput(name, batch=args.batch, precision=str(row["precision"]))
        row["speedup"] = row["reslab"] / row["reference"]
        row["fraction_of_conv_bound"] = row["reslab"] / row["conv_bound"]
        results["models"][name] = row
        print(f"{name}: reslab {row['reslab']:.0f} img/s ({row['precision']}, channels_last)"
              + (f", compiled {row['reslab_compiled']:.0f}" if args.compile else "")
              + f" | reference {row['reference']:.0f} img/s (0 workers {row['reference_w0']:.0f}, "
              f"2 workers {row['reference_w2']:.0f}) | speed-up {row['speedup']:.2f}x | "
              f"conv-only bound {row['conv_bound']:.0f} img/s, reslab at {100 * row['fraction_of_conv_bound']:.0f}%",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
