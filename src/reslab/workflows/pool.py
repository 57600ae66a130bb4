"""A sweep's runs trained in worker processes, the cores split between them, with one progress bar.

Each worker is a fresh interpreter (spawn: no torch thread pools shared across a fork) that trains one run
at a time through :func:`reslab.workflows.train.train_run` and counts its steps into an array the parent
reads twice a second. Stopping is the parent's: Ctrl-C, SIGTERM to the parent or a failed run set an event
on which each worker's running run checkpoints and stops, and no queued run starts.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Sequence, TextIO

from reslab.config import RunConfig, as_dict, config_from_dict
from reslab.device import usable_cores
from reslab.errors import Interrupted
from reslab.memory import release_freed_memory
from reslab.progress import Progress, duration, progress
from reslab.train.callbacks import Callback
from reslab.workflows.train import train_run

_STOP = None  # in a worker: the parent's request to stop (a multiprocessing Event)
_TALLY = None  # in a worker: [planned, first, done] steps of every run of the pool, shared with the parent


def _init_worker(stop, tally) -> None:
    """A worker ignores Ctrl-C and SIGTERM except while it trains, when the Trainer's handlers take them (a
    checkpoint, then a stop). Killed anywhere else, say while sending its result, it could leave the pool's
    result queue locked and the whole sweep hung; the parent stops it through ``stop`` instead."""
    global _STOP, _TALLY
    _STOP, _TALLY = stop, tally
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _forward_stop(stop, done: threading.Event) -> None:
    """Until this worker's run is ``done``: once the parent sets ``stop``, send this process SIGTERM every half
    second (ignored until the Trainer's handler is in place, then a checkpoint and a stop)."""
    while not done.is_set():
        if stop.wait(0.5) and not done.is_set():
            os.kill(os.getpid(), signal.SIGTERM)
            done.wait(0.5)


class SharedSteps(Callback):
    """Writes one run's planned steps (resumed ones included), the step it started from and the steps done
    into its three slots of an array the parent reads; only this worker writes them, so no lock."""

    state_key = "shared_steps"

    def __init__(self, tally, slot: int) -> None:
        self.tally, self.at = tally, 3 * slot

    def on_fit_start(self, trainer) -> None:
        self.tally[self.at + 1] = self.tally[self.at + 2] = trainer.step
        self.tally[self.at] = trainer.total_steps  # last: the parent takes a run with planned steps as started

    def on_batch_end(self, trainer, metrics: dict[str, float]) -> None:
        self.tally[self.at + 2] = trainer.step


def _train_in_worker(cfg_dict: dict, state: str, threads: int, slot: int) -> str:
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
        train_run(cfg, resume=state == "resumable", overwrite=state == "new",
                  callbacks=[SharedSteps(_TALLY, slot)] if _TALLY is not None else [])
    finally:
        done.set()
    return cfg.name


class PoolPace:
    """Steps planned and done in all, and the time left: the work still to do over the rate since the first
    step was seen (the workers' start is no part of it), a step weighted by its network's depth (a resnet56
    step costs about three of resnet20's), so that the deep runs, which a pool starts first, do not make the
    rest look three times longer than it is."""

    def __init__(self, weights: Sequence[float], clock: Callable[[], float] = time.monotonic) -> None:
        known = [w for w in weights if w > 0]
        self.weights = [w if w > 0 else (sum(known) / len(known) if known else 1.0) for w in weights]
        self.clock = clock
        self.since: tuple[float, float] | None = None  # (time, work trained) when training was first seen

    def read(self, tally: Sequence[int]) -> tuple[int, int, float | None]:
        """(steps planned, steps done, seconds left or None before two sightings of training) from the
        shared array of (planned, first, done) steps per run."""
        planned, first, done = list(tally[0::3]), list(tally[1::3]), list(tally[2::3])
        started = [i for i, p in enumerate(planned) if p]
        if not started:
            return 0, 0, None
        mean = sum(planned[i] for i in started) / len(started)
        planned = [p or round(mean) for p in planned]  # a run not started yet: as long as the mean so far
        work = sum(w * p for w, p in zip(self.weights, planned))
        now = sum(w * d for w, d in zip(self.weights, done))
        trained = now - sum(w * f for w, f in zip(self.weights, first))  # a resumed run's earlier steps: not here
        t, left = self.clock(), None
        if self.since is None:
            if trained > 0:
                self.since = (t, trained)
        elif trained > self.since[1] and t > self.since[0]:
            left = (work - now) * (t - self.since[0]) / (trained - self.since[1])
        return sum(planned), sum(done), left


def train_in_pool(todo: list[tuple[RunConfig, str]], jobs: int, stream: TextIO | None,
                  log: Callable[[str], None], weights: Sequence[float]) -> None:
    """Train ``todo`` ((config, state), in the order to start them) in ``jobs`` workers, the cores split
    between them; ``weights``: a step's relative cost per run (0: not known). Ctrl-C, SIGTERM to this
    process or a failed run: the running runs checkpoint and stop, no queued one starts, the exception goes on."""
    release_freed_memory()  # this process only waits from here on: what its earlier work freed goes back
    threads = max(1, usable_cores() // jobs)
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no shared torch thread pools
    stop, tally = ctx.Event(), ctx.Array("q", 3 * len(todo), lock=False)
    pace, bar, finished_runs = PoolPace(weights), None, 0
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(stop, tally)) as pool, _sigterm_interrupts():
        try:
            pending = {pool.submit(_train_in_worker, as_dict(cfg), st, threads, slot)
                       for slot, (cfg, st) in enumerate(todo)}
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                planned, done, left = pace.read(tally)
                bar = _draw(bar, stream, planned, done, left, f"training {len(todo)} runs, {jobs} at once")
                for f in finished:  # each line as its run ends, whichever ends first
                    name, finished_runs = f.result(), finished_runs + 1
                    log(f"{name}: done ({finished_runs} of {len(todo)}"
                        + (", the last)" if finished_runs == len(todo) else
                           f"; about {duration(left)} to go at this pace)" if left is not None else ")"))
        except BaseException:  # Ctrl-C, or a run that failed: the running runs checkpoint and stop, no new one starts
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            if bar is not None:
                bar.close()


def _draw(bar: Progress | None, stream: TextIO | None, planned: int, done: int, left: float | None,
          desc: str) -> Progress | None:
    if stream is None or not planned:
        return bar
    figures = {"left": f"about {duration(left)}"} if left is not None and done < planned else {}
    if bar is None:
        return progress(stream, total=planned, desc=desc, unit="step", initial=done, eta=False)
    bar.set_total(planned)
    bar.update(done - bar.done, **figures)
    return bar


@contextlib.contextmanager
def _sigterm_interrupts():
    """While a pool trains: SIGTERM to this process alone (``kill``, ``docker stop``) takes the same way out as
    Ctrl-C (the workers checkpoint), as :class:`Interrupted`, instead of ending the process on the spot."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough; a second must not cut it short
        raise Interrupted("stopped by SIGTERM: the runs in training saved checkpoints and stopped",
                          signal_name="SIGTERM")

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
