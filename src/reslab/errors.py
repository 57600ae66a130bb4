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
