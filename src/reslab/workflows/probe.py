"""A short throughput probe: how long a config's training will take on this machine, before it starts.

A few training steps of each network on random images of the run's size, batch, precision and memory
layout, timed after one warm-up step; the estimate is steps x the measured time a step plus a fixed
allowance for start-up, evaluation, analyses and the report. The probe itself takes a few seconds.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Sequence

import torch

from reslab.config import RunConfig
from reslab.device import autocast, resolve_device, resolve_precision, usable_cores
from reslab.models import create_model, model_info
from reslab.workflows.sweep import longest_first

WORKER_START_S = 10.0  # workers import torch and read each run's data (the demo's estimates were 0-29 s short with 5)


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
                     overhead_s: float = 15.0, jobs: int = 1,
                     analysis_steps: float = 0.0) -> tuple[float, dict[str, float]]:
    """(estimated seconds for training ``models`` for ``steps_per_run`` steps each, seconds a step by model).

    With ``jobs`` > 1 the runs share the cores as a sweep's pool does: each step is timed on its share of
    the threads, the runs go to the workers in the pool's order (each to the first one free), and the
    estimate is the time of the last worker to finish, plus a few seconds to start the workers.
    ``analysis_steps``: the forward-backward passes of a batch that the analyses after training make with
    each network, on every core (a share's step time scaled by the share, as if threads scaled linearly).
    """
    threads = torch.get_num_threads()
    if jobs > 1:
        torch.set_num_threads(max(1, usable_cores() // jobs))
    try:
        per_step = {name: seconds_per_step(cfg, name, image_size=image_size or model_info(name).input_size)
                    for name in models}
    finally:
        torch.set_num_threads(threads)
    analysis = analysis_steps * sum(per_step.values()) * (max(1, usable_cores() // jobs) / usable_cores()
                                                          if jobs > 1 else 1.0)
    if jobs <= 1:
        return overhead_s + analysis + steps_per_run * sum(per_step.values()), per_step
    configs = [replace(cfg, model=replace(cfg.model, name=name)) for name in models]
    workers = [0.0] * jobs
    for i in longest_first(configs):
        workers[workers.index(min(workers))] += steps_per_run * per_step[models[i]]
    return overhead_s + analysis + WORKER_START_S + max(workers), per_step
