"""Files of a dataset, read from a folder or straight out of a tar archive (never extracted to disk).

Both sources yield ``(relative posix path, bytes)`` for regular files and ``(path, None)`` for
folders, so readers do not care where the bytes came from. A truncated or corrupt archive is a
:class:`DataError` naming the archive, never a raw tarfile or zlib exception.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zlib
from pathlib import Path
from typing import Iterator

from reslab.errors import DataError

Entry = tuple[str, bytes | None]  # (relative posix path, file bytes; None for a folder)

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError, ValueError)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    return digest.hexdigest()


def is_hidden(relpath: str) -> bool:
    """Dot files and folders (``.DS_Store``, macOS ``._name`` twins) and ``__MACOSX`` are never data."""
    return any(part.startswith(".") or part == "__MACOSX" for part in relpath.split("/"))


def checked_name(member: tarfile.TarInfo, path: Path) -> str:
    """The member's path inside the archive, or a DataError naming it when it could point anywhere else:
    an absolute path, a ``..`` component, a link, or something that is neither a file nor a folder.
    Nothing is ever extracted, so this guards the labels: such a name would otherwise become a class."""
    name = member.name
    why = None
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        why = "an absolute path"
    elif ".." in name.replace("\\", "/").split("/"):
        why = "a '..' component"
    elif member.issym() or member.islnk():
        why = f"a link to {member.linkname!r}"
    elif not (member.isfile() or member.isdir()):
        why = "neither a file nor a folder"
    if why is not None:
        raise DataError(f"{path}: refused archive member {name!r} ({why}); a dataset archive holds only "
                        f"class folders of image files")
    while name.startswith("./"):
        name = name[2:]
    return name


def _tar_members(path: Path, *, read: bool) -> Iterator[Entry]:
    """One sequential pass over an archive: (checked name, bytes) of each file, (name, None) of each
    folder; with ``read=False`` files come with ``b""`` and their bytes are skipped, not read."""
    try:
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                name = checked_name(member, path)
                if not name or is_hidden(name):
                    continue
                if member.isdir():
                    yield name.rstrip("/"), None
                elif not read:
                    yield name, b""
                else:
                    handle = archive.extractfile(member)
                    assert handle is not None  # a regular file always has one
                    data = handle.read()
                    if len(data) != member.size:
                        raise DataError(f"{path}: archive is truncated (member {name} is cut short)")
                    yield name, data
    except _ARCHIVE_ERRORS as e:
        raise DataError(f"{path}: not a readable tar archive, or truncated/corrupt ({e})") from None


def iter_tar(path: Path) -> Iterator[Entry]:
    """Stream the members of a tar, tar.gz or tar.bz2 archive in archive order (one sequential pass)."""
    return _tar_members(path, read=True)


def list_tar(path: Path) -> tuple[list[str], set[str]]:
    """The file and folder names of an archive in one pass, without reading any file's bytes."""
    files, dirs = [], set()
    for name, data in _tar_members(path, read=False):
        (dirs.add(name) if data is None else files.append(name))
    return files, dirs


def iter_directory(root: Path) -> Iterator[Entry]:
    """Walk a folder in sorted order, yielding folders and file bytes with paths relative to ``root``."""
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not is_hidden(d))
        rel = Path(here).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        if prefix and not is_hidden(prefix.rstrip("/")):
            yield prefix.rstrip("/"), None
        for name in sorted(files):
            relpath = prefix + name
            if is_hidden(relpath):
                continue
            try:
                data = Path(here, name).read_bytes()
            except OSError as e:
                raise DataError(f"cannot read {Path(here, name)}: {e.strerror or e}") from None
            yield relpath, data


def directory_digest(entries: list[Entry]) -> str:
    """sha256 of a folder's content: its sorted relative file paths and their bytes."""
    digest = hashlib.sha256()
    for relpath, data in sorted((e for e in entries if e[1] is not None), key=lambda e: e[0]):
        assert data is not None
        digest.update(relpath.encode() + b"\0" + len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()
