"""Named reproductions, registered with typed options: ``reslab experiment KIND CONFIG``.

Each experiment is a function ``run(base, options, folder, ctx) -> record`` and a frozen options
dataclass read from the config's ``[experiment]`` table (``--experiment.key=value`` on the command
line, like every other setting). The options are checked before anything touches the disk.
Under torchrun every run of an experiment uses all the processes in turn; the analyses, the table
and the report are then rank 0's alone.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from reslab.config import RunConfig, build_options
from reslab.registry import Registry
from reslab.rundir import ExperimentDir

MODULES = ("degradation", "depth", "stochastic_depth", "optimizers", "architectures", "init_study", "ablation")


@dataclass
class Context:
    """How an experiment reports and trains: a progress stream, a line logger, sweep parallelism."""

    progress: TextIO | None = None
    log: Callable[[str], None] = field(default=lambda line: None)
    jobs: int = 1


@dataclass(frozen=True)
class Experiment:
    name: str
    options: type  # a frozen dataclass; may define check() to refuse bad values
    run: Callable[[RunConfig, Any, ExperimentDir, Context], dict]
    summary: str
    needs_recipe: bool = True  # trains networks, so it needs a training recipe (a CONFIG)
    recipe: str = ""  # the recipe in configs/ that it is usually run with


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


def register(name: str, options: type, *, summary: str, needs_recipe: bool = True, recipe: str = ""):
    def add(fn):
        EXPERIMENTS.register(name, fn, spec=Experiment(name, options, fn, summary, needs_recipe, recipe))
        return fn
    return add


def _load() -> None:
    for module in MODULES:
        importlib.import_module(f"reslab.experiments.{module}")


def experiment(name: str) -> Experiment:
    _load()
    return EXPERIMENTS.entry(name).meta["spec"]


def experiment_names() -> list[str]:
    _load()
    return EXPERIMENTS.names()


def experiment_options(name: str, cfg: RunConfig) -> Any:
    """The experiment's options from ``cfg.experiment``, names, types and values checked."""
    spec = experiment(name)
    options = build_options(spec.options, cfg.experiment, "experiment.")
    if hasattr(options, "check"):
        options.check()
    return options


def run_experiment(name: str, cfg: RunConfig, out: str | Path, ctx: Context | None = None) -> dict:
    """Run a registered experiment into the folder ``out``; returns its record (also written to the folder)."""
    from reslab.workflows.sweep import SecondaryDone

    spec = experiment(name)
    options = experiment_options(name, cfg)
    try:
        return spec.run(cfg, options, ExperimentDir(out), ctx or Context())
    except SecondaryDone:  # under torchrun, ranks other than 0 only train
        return {}
