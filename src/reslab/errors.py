"""The one exception type the command line turns into a one-line message and a non-zero exit."""


class ReslabError(Exception):
    """A problem the user can fix (bad input, bad config, missing file); never a bug in reslab."""

    exit_code = 2


class ConfigError(ReslabError):
    """An invalid configuration value or key."""


class DataError(ReslabError):
    """A missing, corrupt or unreadable dataset."""


class CheckpointError(ReslabError):
    """A missing, corrupt or mismatched checkpoint."""


class TrainingDiverged(ReslabError):
    """The loss, or a state about to be checkpointed, became NaN or infinite."""


class Interrupted(ReslabError):
    """SIGTERM or SIGINT stopped a run after a step; its checkpoint is written. Exits 128 + the signal."""

    def __init__(self, message: str, *, signal_name: str) -> None:
        super().__init__(message)
        self.exit_code = 130 if signal_name == "SIGINT" else 143
