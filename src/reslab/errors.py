"""The one exception type the command line turns into a one-line message and a non-zero exit.

Each is also the built-in exception a Python user would catch for it: an invalid value is a
``ValueError`` (as ``torch.optim`` raises for a negative rate), a missing file a ``FileNotFoundError``
(with its ``filename``), so ``except ValueError`` or ``except FileNotFoundError`` works on reslab's too.
"""


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
