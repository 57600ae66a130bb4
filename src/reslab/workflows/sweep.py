"""A sweep: several trainings that share a recipe, in sequence or in worker processes, each resumable,
finished ones skipped. Every run goes through :func:`reslab.workflows.train.train_run`."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence, TextIO

from reslab.config import RunConfig, as_dict, config_from_dict
from reslab.dist import launched, launched_rank
from reslab.errors import ConfigError
from reslab.progress import duration
from reslab.rundir import ExperimentDir, RunDir, run_dir_of
from reslab.workflows.train import run_config, train_run


@dataclass(frozen=True)
class Entry:
    """One run of a sweep: its name, the network, and builder options on top of the base recipe's."""

    name: str
    model: str
    options: dict = field(default_factory=dict)


def config_for(base: RunConfig, entry: Entry, root: ExperimentDir) -> RunConfig:
    """``base``'s recipe for one network of a sweep, in ``root/runs/<name>``."""
    model_cfg = replace(base.model, name=entry.model, options={**base.model.options, **entry.options})
    return run_config(replace(base, name=entry.name, out_dir=str(root.runs_root), model=model_cfg))


def status(cfg: RunConfig) -> str:
    """``finished`` (a summary for this very config), ``resumable`` (a checkpoint) or ``new``."""
    return run_dir_of(cfg).status(as_dict(run_config(cfg)))


_STOP = None  # in a worker: the parent's request to stop (a multiprocessing Event)


def _init_worker(stop) -> None:
    """A worker ignores Ctrl-C and SIGTERM except while it trains, when the Trainer's handlers take them (a
    checkpoint, then a stop). Killed anywhere else, say while sending its result, it could leave the pool's
    result queue locked and the whole sweep hung; the parent stops it through ``stop`` instead."""
    global _STOP
    _STOP = stop
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _forward_stop(stop, done: threading.Event) -> None:
    """Until this worker's run is ``done``: once the parent sets ``stop``, send this process SIGTERM every half
    second (ignored until the Trainer's handler is in place, then a checkpoint and a stop)."""
    while not done.is_set():
        if stop.wait(0.5) and not done.is_set():
            os.kill(os.getpid(), signal.SIGTERM)
            done.wait(0.5)


def _train_in_worker(cfg_dict: dict, state: str, threads: int) -> str:
    """One run in a worker process, with its share of the cores."""
    import torch

    from reslab.memory import keep_freed_memory

    cfg = config_from_dict(cfg_dict)
    if _STOP is not None and _STOP.is_set():  # queued before the stop and not cancellable: do not start it
        return cfg.name
    keep_freed_memory()  # a fresh interpreter: the parent's allocator settings are not inherited
    torch.set_num_threads(threads)
    done = threading.Event()
    if _STOP is not None:
        threading.Thread(target=_forward_stop, args=(_STOP, done), daemon=True).start()
    try:
        train_run(cfg, resume=state == "resumable", overwrite=state == "new")
    finally:
        done.set()
    return cfg.name


def train_sweep(base: RunConfig, entries: Sequence[Entry | str], root: ExperimentDir, *,
                progress: TextIO | None = None, log: Callable[[str], None] = lambda s: None,
                jobs: int = 1) -> list[RunDir]:
    """Train every entry (a model name, or an :class:`Entry`) with ``base``'s recipe; returns the run folders."""
    entries = [Entry(e, e) if isinstance(e, str) else e for e in entries]
    return train_configs([config_for(base, e, root) for e in entries], progress=progress, log=log, jobs=jobs)


class Pace:
    """How long the rest of a sweep will take, from the runs this call has finished so far (with ``jobs``
    runs at once, a run's share of the wall time)."""

    def __init__(self, todo: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.todo, self.done, self.clock, self.start = todo, 0, clock, clock()

    def finished(self) -> str:
        self.done += 1
        left = self.todo - self.done
        if not left:
            return f"{self.done} of {self.todo}, the last"
        per_run = (self.clock() - self.start) / self.done
        return f"{self.done} of {self.todo}; about {duration(per_run * left)} to go at this pace"


def train_configs(configs: list[RunConfig], *, progress: TextIO | None = None,
                  log: Callable[[str], None] = lambda s: None, jobs: int = 1) -> list[RunDir]:
    """Train each config (skipping finished runs, resuming killed ones); returns the run folders.

    ``jobs > 1`` trains that many runs at once in worker processes, the machine's cores split between
    them: two one-thread resnet20 runs on a 2-core AVX2 CPU train about 25% more images/s in all than
    one two-thread run (400 against 320, fp32, 2026-11-27), as small convolutions scale poorly over
    threads. Workers report no progress bar, only a line as each run ends.
    """
    if launched() and jobs > 1:
        raise ConfigError("--jobs spreads runs over processes of its own; under torchrun every run already uses "
                          "all the launched processes in turn: use --jobs 1")
    states = [status(cfg) for cfg in configs]
    words = {"finished": "finished earlier, skipped", "resumable": "resuming", "new": "training"}
    total = len(configs)
    pace = Pace(sum(st != "finished" for st in states))
    if jobs > 1:
        for i, (cfg, st) in enumerate(zip(configs, states), start=1):
            log(f"[{i}/{total}] {cfg.name}: {words[st]}")
        threads = max(1, (os.cpu_count() or 1) // jobs)
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no shared torch thread pools
        stop = ctx.Event()
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                 initargs=(stop,)) as pool:
            try:
                futures = [pool.submit(_train_in_worker, as_dict(cfg), st, threads)
                           for cfg, st in zip(configs, states) if st != "finished"]
                for f in as_completed(futures):  # each line as its run ends, whichever ends first
                    log(f"{f.result()}: done ({pace.finished()})")
            except BaseException:  # Ctrl-C, or a run that failed: the running runs checkpoint and stop, no new one starts
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    else:
        for i, (cfg, st) in enumerate(zip(configs, states), start=1):
            log(f"[{i}/{total}] {cfg.name}: {words[st]}")
            if st != "finished":
                train_run(cfg, resume=st == "resumable", overwrite=st == "new", progress=progress)
                log(f"{cfg.name}: done ({pace.finished()})")
    if launched() and launched_rank() != 0:
        raise SecondaryDone()  # the analyses, tables and report of an experiment are rank 0's
    return [run_dir_of(cfg) for cfg in configs]


class SecondaryDone(Exception):
    """Raised on every rank but 0 once a sweep's trainings are done: the rest of an experiment is rank 0's."""
