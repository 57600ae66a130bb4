"""Run and experiment folders: the only code that knows their file names and formats.

A run folder (``runs/<name>/``)::

    config.toml          the run's config; first line ``reslab_format = N``
    metrics.jsonl        a row every ``log_every`` steps (kind "train") and at every evaluation ("eval")
    gradients.jsonl      per-layer gradient norms at each evaluation (``train.record_gradients``)
    summary.json         written when the run ends; says what ran, where, and how it ended
    checkpoints/         last.pt (everything to resume), best.pt (best weights)
    tb/                  TensorBoard events
    analysis/<kind>.json measurements on the trained network (lesion, paths, landscape ...)
    eval/<data>.json     ``reslab eval`` results
    export/<format>/     ``reslab export``: model.safetensors or model.onnx, with config.json
    report.html, figures/, playground.html (the optimizer playground, linked from the report)

An experiment folder holds ``experiment.json``, its runs under ``runs/<name>/``, and the same
``analysis/``, ``report.html`` and ``figures/``. Everything else in reslab asks this module for a
path or a record; nothing else spells a file name.

Format versions: 0 is what reslab wrote before versions existed (callback state in checkpoints by
list position); 1 adds the version to config.toml, summary.json and every checkpoint and stores
callback state by key. Readers accept both.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["FORMAT", "ExperimentDir", "Folder", "RunDir", "RunExists", "RunFolderError", "RunLocked", "os_error", "append_jsonl", "atomic_write_text",
           "checkpoint_of", "read_json", "read_jsonl", "run_dir_of", "run_dir_of_checkpoint", "truncate_jsonl",
           "write_json"]

from reslab.config import RunConfig, apply_overrides, config_from_dict, same_recipe
from reslab.errors import ConfigError, ReslabError
from reslab.rundir.lock import RunFolderError, RunLocked, hold, os_error
from reslab.rundir.files import (append_jsonl, atomic_write_text, default_mode, dump_toml, read_json, read_jsonl,
                                 truncate_jsonl, write_json)

FORMAT = 1
FORMAT_KEY = "reslab_format"


class RunExists(ReslabError):
    """A run folder of that name holds files already."""




# -- folders -----------------------------------------------------------------------------------------------
class Folder:
    """What run and experiment folders share: analyses, evaluations and the report."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def analysis_dir(self) -> Path:
        return self.path / "analysis"

    def analysis_file(self, kind: str) -> Path:
        return self.analysis_dir / f"{kind}.json"

    def write_analysis(self, kind: str, result: Any) -> Path:
        return write_json(self.analysis_file(kind), result)

    def read_analysis(self, kind: str) -> Any:
        return read_json(self.analysis_file(kind))

    def eval_file(self, data_name: str) -> Path:
        return self.path / "eval" / f"{data_name}.json"

    def export_dir(self, fmt: str) -> Path:
        """Where ``reslab export`` writes a format by default."""
        return self.path / "export" / fmt

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    @property
    def figures_dir(self) -> Path:
        return self.path / "figures"

    @property
    def playground(self) -> Path:
        """The optimizer playground page, written beside the report (the two link each other)."""
        return self.path / "playground.html"

    @property
    def plotly_js(self) -> Path:
        """Plotly's library, when reports share one copy beside them instead of inlining it."""
        return self.path / "plotly.min.js"


class RunDir(Folder):
    """One run's folder."""

    @property
    def config_file(self) -> Path:
        return self.path / "config.toml"

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def gradients_file(self) -> Path:
        return self.path / "gradients.jsonl"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint_dir / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoint_dir / "best.pt"

    @property
    def tb_dir(self) -> Path:
        return self.path / "tb"

    @property
    def lock_file(self) -> Path:
        """Beside the folder, not in it: an --overwrite replaces the folder while the lock is held."""
        return self.path.with_name(f".{self.name}.lock")

    def lock(self):
        """Hold the run folder while writing it: a second writer gets one line and exit 2 (see :mod:`.lock`)."""
        self._check_parent()
        return hold(self.lock_file, self.path)

    def _check_parent(self) -> None:
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise RunFolderError(f"out_dir {self.path.parent} is a file, not a folder")

    def remove_stale_temporaries(self) -> list[Path]:
        """Temporary files a killed writer left in the checkpoint folder (call only while holding the lock)."""
        stale = list(self.checkpoint_dir.glob(".*.tmp")) if self.checkpoint_dir.is_dir() else []
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def is_run(self) -> bool:
        return self.config_file.is_file()

    def looks_like_run(self) -> bool:
        """Has what a report of a run is drawn from."""
        return self.metrics_file.is_file() or self.summary_file.is_file()

    # -- config --------------------------------------------------------------------------------------
    def config_text(self, cfg: RunConfig) -> str:
        return f"{FORMAT_KEY} = {FORMAT}\n" + dump_toml(cfg)

    def read_config(self, overrides: Sequence[str] = ()) -> RunConfig:
        """The run's config (overrides applied), with ``out_dir``/``name`` following the folder if it moved."""
        if not self.config_file.is_file():
            raise ConfigError(f"{self.path} is not a run folder (no config.toml)")
        try:
            data = tomllib.loads(self.config_file.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{self.config_file} is not valid TOML: {e}") from None
        version = data.pop(FORMAT_KEY, 0)
        if not isinstance(version, int) or version > FORMAT:
            raise ConfigError(f"{self.config_file} has run-folder format {version!r}; this reslab reads up to {FORMAT}")
        data = apply_overrides(data, overrides)
        data.update(out_dir=str(self.path.parent), name=self.path.name)
        return config_from_dict(data)

    # -- state -----------------------------------------------------------------------------------------
    def read_summary(self) -> dict[str, Any] | None:
        return read_json(self.summary_file)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_file, {"format": FORMAT, **summary})

    def read_metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_file)

    def read_gradients(self) -> list[dict]:
        return read_jsonl(self.gradients_file)

    def status(self, config: dict[str, Any] | None = None) -> str:
        """``finished`` (a summary, for ``config`` when given), ``resumable`` (a last checkpoint) or ``new``."""
        summary = self.read_summary()
        stored = summary.get("config") if summary is not None else None
        if isinstance(stored, dict) and config is not None:  # where the folder lies is not the recipe
            stored = {**stored, "out_dir": config.get("out_dir"), "name": config.get("name")}
        if summary is not None and (config is None or same_recipe(stored, config)):
            return "finished"
        if self.last_checkpoint.is_file():
            return "resumable"
        return "new"

    def create(self, cfg: RunConfig, *, overwrite: bool = False) -> "RunDir":
        """Make the folder with its config, all at once: it appears complete or not at all.

        Call this only after the config, the model options and the data have been checked, so that a
        start that fails leaves nothing behind. An existing, non-empty folder is refused unless
        ``overwrite``, in which case it is replaced (after the new one is ready).
        """
        self._check_parent()
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path} is a file, not a run folder")
        exists = self.path.exists() and any(self.path.iterdir())
        if exists and not overwrite:
            raise RunExists(f"run folder {self.path} already exists; use --resume {self.path} to continue it "
                            f"or --overwrite to start again")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{self.name}.", suffix=".new", dir=self.path.parent))
            os.chmod(staging, default_mode(directory=True))
        except OSError as e:
            raise os_error(e, self.path.parent, "nothing was written") from None
        try:
            atomic_write_text(staging / self.config_file.name, self.config_text(cfg))
            if self.path.exists():
                old = self.path.with_name(f".{self.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(self.path, old)
                os.replace(staging, self.path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, self.path)
        except OSError as e:
            shutil.rmtree(staging, ignore_errors=True)
            raise os_error(e, self.path, "no run folder was created" if not exists else f"{self.path} is as it was") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self


class ExperimentDir(Folder):
    """An experiment's folder: ``experiment.json`` and its runs."""

    @property
    def record_file(self) -> Path:
        return self.path / "experiment.json"

    @property
    def runs_root(self) -> Path:
        """The ``out_dir`` of the experiment's runs."""
        return self.path / "runs"

    def run(self, name: str) -> RunDir:
        return RunDir(self.runs_root / name)

    def runs(self, names: Iterable[str]) -> list[RunDir]:
        return [self.run(n) for n in names]

    def read(self) -> dict[str, Any] | None:
        return read_json(self.record_file)

    def write(self, record: dict[str, Any]) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        return write_json(self.record_file, {"format": FORMAT, **record})


def run_dir_of(cfg: RunConfig) -> RunDir:
    return RunDir(Path(cfg.out_dir) / cfg.name)


def run_dir_of_checkpoint(path: Path) -> RunDir | None:
    """The run folder a checkpoint file sits in (``<run>/checkpoints/x.pt``), if it does."""
    run = RunDir(path.parent.parent)
    return run if path.parent == run.checkpoint_dir and run.is_run() else None


def checkpoint_of(run: RunDir, which: str = "best") -> Path | None:
    """``best`` (falling back to last) or ``last`` checkpoint of a run, if there is one."""
    order = [run.best_checkpoint, run.last_checkpoint] if which == "best" else [run.last_checkpoint]
    return next((p for p in order if p.is_file()), None)
