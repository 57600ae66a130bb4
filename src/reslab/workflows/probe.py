"""A short throughput probe: how long a config's training will take on this machine, before it starts.

A few training steps of each network on random images of the run's size, batch, precision and memory
layout, timed after one warm-up step; the estimate is steps x the measured time a step plus a fixed
allowance for start-up, evaluation, analyses and the report. The probe itself takes a few seconds.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch

from reslab.config import RunConfig
from reslab.device import autocast, resolve_device, resolve_precision
from reslab.models import create_model, model_info


def seconds_per_step(cfg: RunConfig, name: str, *, image_size: int, steps: int = 3) -> float:
    """Median wall time of one forward-backward-update step of ``name`` under ``cfg``'s settings."""
    device = resolve_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device)
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, **cfg.model.options).to(device)
    layout = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(cfg.data.batch_size, 3, image_size, image_size, device=device).to(memory_format=layout)
    y = torch.randint(0, 10, (cfg.data.batch_size,), device=device)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        with autocast(device, precision):
            out = model(x)
            loss = torch.nn.functional.cross_entropy(out[0] if isinstance(out, tuple) else out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step allocates and warms the kernels
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def estimate_seconds(cfg: RunConfig, models: Sequence[str], *, steps_per_run: int, image_size: int | None = None,
                     overhead_s: float = 15.0) -> tuple[float, dict[str, float]]:
    """(estimated seconds for training ``models`` for ``steps_per_run`` steps each, seconds a step by model)."""
    per_step = {name: seconds_per_step(cfg, name, image_size=image_size or model_info(name).input_size)
                for name in models}
    return overhead_s + steps_per_run * sum(per_step.values()), per_step
