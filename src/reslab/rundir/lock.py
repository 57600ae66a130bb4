"""One writer per run folder, and one line for every file-system failure on it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from reslab.errors import ReslabError


class RunLocked(ReslabError):
    """Another process is writing this run folder."""


class RunFolderError(ReslabError):
    """The file system refused a run folder's write (no space, read-only, not a folder)."""


def os_error(e: OSError, path: Path, kept: str) -> RunFolderError:
    """One line for an OS-level failure on a run folder: the path, the reason, and what is still intact."""
    return RunFolderError(f"cannot write {e.filename or path}: {e.strerror or e}; {kept}")


@contextlib.contextmanager
def hold(lock_file: Path, folder: Path):
    """Hold ``folder`` for as long as the ``with`` block runs.

    ``fcntl.flock`` on ``lock_file``; the kernel releases it when the process ends in any way, kill -9
    included, so a crash never leaves a stale lock. Under several processes only the writing rank
    takes it.
    """
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_file, "a+")
    except OSError as e:
        raise os_error(e, lock_file, "nothing was written") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunLocked(f"{folder} is being written by {holder}; wait for it to end (or stop it) "
                        f"before training into the same run folder") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"reslab process {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock
