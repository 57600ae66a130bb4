"""A sweep: several trainings that share a recipe, in sequence or in worker processes, each resumable,
finished ones skipped. Every run goes through :func:`reslab.workflows.train.train_run`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence, TextIO

from reslab.config import RunConfig, as_dict
from reslab.dist import launched, launched_rank
from reslab.errors import ConfigError
from reslab.models import MODELS, model_info
from reslab.progress import duration
from reslab.rundir import ExperimentDir, RunDir, run_dir_of
from reslab.workflows.pool import train_in_pool
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


def train_sweep(base: RunConfig, entries: Sequence[Entry | str], root: ExperimentDir, *,
                progress: TextIO | None = None, log: Callable[[str], None] = lambda s: None,
                jobs: int = 1) -> list[RunDir]:
    """Train every entry (a model name, or an :class:`Entry`) with ``base``'s recipe; returns the run folders."""
    entries = [Entry(e, e) if isinstance(e, str) else e for e in entries]
    return train_configs([config_for(base, e, root) for e in entries], progress=progress, log=log, jobs=jobs)


class Pace:
    """How long the rest of a sweep trained one run after another will take, from the runs this call has
    finished so far."""

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
    threads. One progress bar counts the steps of every worker; a line says when each run ends.
    """
    if launched() and jobs > 1:
        raise ConfigError("--jobs spreads runs over processes of its own; under torchrun every run already uses "
                          "all the launched processes in turn: use --jobs 1")
    states = [status(cfg) for cfg in configs]
    words = {"finished": "finished earlier, skipped", "resumable": "resuming", "new": "training"}
    total = len(configs)
    if jobs > 1:
        for i, (cfg, st) in enumerate(zip(configs, states), start=1):
            log(f"[{i}/{total}] {cfg.name}: {words[st]}")
        todo = [(configs[i], states[i]) for i in longest_first(configs) if states[i] != "finished"]
        train_in_pool(todo, jobs, progress, log, [depth(cfg) for cfg, _ in todo])
    else:
        pace = Pace(sum(st != "finished" for st in states))  # the pool keeps a pace of its own (PoolPace)
        for i, (cfg, st) in enumerate(zip(configs, states), start=1):
            log(f"[{i}/{total}] {cfg.name}: {words[st]}")
            if st != "finished":
                train_run(cfg, resume=st == "resumable", overwrite=st == "new", progress=progress)
                log(f"{cfg.name}: done ({pace.finished()})")
    if launched() and launched_rank() != 0:
        raise SecondaryDone()  # the analyses, tables and report of an experiment are rank 0's
    return [run_dir_of(cfg) for cfg in configs]


def depth(cfg: RunConfig) -> int:
    """The depth of ``cfg``'s network as its name says (0: not known)."""
    return (model_info(cfg.model.name).depth or 0) if cfg.model.name in MODELS else 0


def longest_first(configs: Sequence[RunConfig]) -> list[int]:
    """The order in which a pool starts ``configs`` (their indices): the deepest networks first, as a run's
    time grows with depth, so that the runs left to the end are short and the workers finish together (two
    workers, plain56 resnet56 plain20 resnet20: 3.8 units of resnet20 time; in the listed order plain20,
    plain56, resnet20, resnet56: 4.8)."""
    return sorted(range(len(configs)), key=lambda i: -depth(configs[i]))


class SecondaryDone(Exception):
    """Raised on every rank but 0 once a sweep's trainings are done: the rest of an experiment is rank 0's."""
