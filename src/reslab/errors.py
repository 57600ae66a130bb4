"""The one exception type the command line turns into a one-line message and a non-zero exit.

Each is also the built-in exception a Python user would catch for it: an invalid value is a
``ValueError`` (as ``torch.optim`` raises for a negative rate), a missing file a ``FileNotFoundError``
(with its ``filename``), so ``except ValueError`` or ``except FileNotFoundError`` works on reslab's too.
"""

from __future__ import annotations

import re


class ReslabError(Exception):
    """A problem the user can fix (bad input, bad config, missing file); never a bug in reslab."""

    exit_code = 2


class ConfigError(ReslabError, ValueError):
    """An invalid configuration value or key."""


class NotFound(ReslabError, FileNotFoundError):
    """A file or folder that is not there; ``filename`` names it."""

    def __init__(self, message: str, path: object = None) -> None:
        super().__init__(message)
        self.filename = None if path is None else str(path)

    def __str__(self) -> str:  # the message alone, not OSError's "[Errno None] ..."
        return str(self.args[0]) if self.args else ""


class DataError(ReslabError):
    """A missing, corrupt or unreadable dataset."""


class CheckpointError(ReslabError):
    """A missing, corrupt or mismatched checkpoint."""

    @classmethod
    def unreadable(cls, what: str, path: object, error: BaseException) -> CheckpointError:
        """``torch.load(weights_only=True)`` failed on ``path``: why, in one line. Where the unpickler refused
        a global, say so; torch's own advice to load with ``weights_only=False`` (which would run the code the
        file carries) is not passed on."""
        message = str(error)
        called = re.search(r"GLOBAL ([\w.]+)", message)
        if called:
            return cls(f"cannot read {what} {path}: it asks to import and call {called.group(1)}; reslab loads "
                       f"tensors and plain values only and never runs code from a file")
        boiler = ("Weights only load failed", "Please file an issue", "Check the documentation", "(1)", "(2)")
        lines = [ln.strip().removeprefix("WeightsUnpickler error:").strip() for ln in message.splitlines()]
        detail = [ln for ln in lines if ln and not ln.startswith(boiler)]
        if "weights only" in message.lower():
            reason = f"not a PyTorch file, or a damaged one ({detail[-1] if detail else 'unreadable pickle'})"
        else:
            reason = (detail[0].split(". ")[0] if detail else type(error).__name__)[:200]  # the first sentence
        return cls(f"cannot read {what} {path}: {reason}")


class ConfigNotFound(ConfigError, NotFound):
    """A config file that is not there."""


class DataNotFound(DataError, NotFound):
    """A dataset file or folder that is not there."""


class CheckpointNotFound(CheckpointError, NotFound):
    """A checkpoint or run folder that is not there."""


class TrainingDiverged(ReslabError):
    """The loss, or a state about to be checkpointed, became NaN or infinite."""


class Interrupted(ReslabError):
    """SIGTERM or SIGINT stopped a run after a step; its checkpoint is written. Exits 128 + the signal."""

    def __init__(self, message: str, *, signal_name: str) -> None:
        super().__init__(message)
        self.exit_code = 130 if signal_name == "SIGINT" else 143
