"""CIFAR-10 and CIFAR-100 in the official python format, from a folder or straight from the archive.

Each batch file is a pickled dict with bytes keys: ``b"data"``, a (n, 3072) uint8 array whose rows
are a 32x32 image stored channel-major (1024 red, 1024 green, 1024 blue values, each row-major),
and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100). The class names are in
``batches.meta`` / ``meta``.

Security: the official files are pickles, and a pickle can name any function to call while it is
read. reslab reads them with a restricted unpickler that admits only what the official files hold
(dicts, lists, bytes and strings, integers, and numpy arrays through numpy's own reconstructors,
under numpy 1's ``numpy.core`` and numpy 2's ``numpy._core`` names) and refuses anything else in one
line naming the file. The archive's published MD5 stays the check on downloads.

References:
    Krizhevsky. Learning Multiple Layers of Features from Tiny Images. Tech. report, 2009.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reslab.data.arrays import ArrayDataset
from reslab.data.download import fetch, md5_file
from reslab.data.sources import ARCHIVE_SUFFIXES, iter_tar
from reslab.errors import DataError, DataNotFound

IMAGE_BYTES = 3 * 32 * 32


@dataclass(frozen=True)
class CifarSpec:
    folder: str  # the folder inside the archive
    archive: str
    url: str
    md5: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: bytes
    names_key: bytes


CIFAR: dict[str, CifarSpec] = {
    "cifar10": CifarSpec(
        folder="cifar-10-batches-py", archive="cifar-10-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",),
        meta_file="batches.meta", label_key=b"labels", names_key=b"label_names"),
    "cifar100": CifarSpec(
        folder="cifar-100-python", archive="cifar-100-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85",
        train_files=("train",), test_files=("test",),
        meta_file="meta", label_key=b"fine_labels", names_key=b"fine_label_names"),
}


def cifar_spec(name: str) -> CifarSpec:
    if name not in CIFAR:
        raise DataError(f"unknown CIFAR dataset {name!r}; known: {', '.join(CIFAR)}")
    return CIFAR[name]


def download_cifar(root: str | Path, *, name: str = "cifar10", url: str | None = None,
                   md5: str | None = None) -> Path:
    """Fetch the official archive into ``root`` (kept if already there and intact); returns its path."""
    spec = cifar_spec(name)
    dest = Path(root).expanduser() / spec.archive
    md5 = md5 or spec.md5
    if dest.is_file() and md5_file(dest) == md5.lower():
        return dest
    return fetch(url or spec.url, dest, md5=md5)


def load_cifar(path: str | Path, *, name: str = "cifar10", train: bool = True, download: bool = False) -> ArrayDataset:
    """The training (50,000) or test (10,000) images of CIFAR-10/100 as one uint8 (N, 3, 32, 32) tensor.

    ``path`` is the extracted folder (``cifar-10-batches-py`` itself or its parent) or the
    ``.tar.gz`` archive, read in place. With ``download``, a missing archive is fetched first.
    """
    spec = cifar_spec(name)
    if not str(path):
        raise DataError(f"no path given for {name} (a folder or the {spec.archive} archive)")
    path = Path(path).expanduser()
    source = locate_cifar(path, spec)
    if source is None:
        if not download:
            raise DataNotFound(f"no {name} data at {path}: expected {spec.folder}/ or {spec.archive} "
                            f"(set data.download = true to fetch it)", path)
        if path.name.lower().endswith(ARCHIVE_SUFFIXES):
            source = fetch(spec.url, path, md5=spec.md5)
        else:
            source = download_cifar(path, name=name)
    wanted = (spec.train_files if train else spec.test_files) + (spec.meta_file,)
    files = _read_archive(source, wanted) if source.is_file() else _read_folder(source, wanted)

    classes = _class_names(_unpickle(files[spec.meta_file], f"{source}: {spec.meta_file}"), spec, source)
    data, labels = [], []
    for fname in wanted[:-1]:
        where = f"{source}: {fname}"
        x, y = _batch(_unpickle(files[fname], where), spec, len(classes), where)
        data.append(x)
        labels.append(y)
    images = np.concatenate(data).reshape(-1, 3, 32, 32)  # rows are channel-major RGB
    return ArrayDataset(torch.from_numpy(images), torch.from_numpy(np.concatenate(labels)), classes)


def locate_cifar(path: Path, spec: CifarSpec) -> Path | None:
    """The folder holding the batch files, or the archive, found at or just under ``path``."""
    if path.is_file():
        return path
    for candidate in (path, path / spec.folder):
        if (candidate / spec.meta_file).is_file():
            return candidate
    if (path / spec.archive).is_file():
        return path / spec.archive
    return None


def _read_folder(folder: Path, wanted: tuple[str, ...]) -> dict[str, bytes]:
    files = {}
    for fname in wanted:
        try:
            files[fname] = (folder / fname).read_bytes()
        except OSError as e:
            raise DataError(f"cannot read {folder / fname}: {e.strerror or e}") from None
    return files


def _read_archive(archive: Path, wanted: tuple[str, ...]) -> dict[str, bytes]:
    """The wanted members (matched by file name), read in one pass without extracting anything."""
    files = {}
    for member, data in iter_tar(archive):
        base = member.rsplit("/", 1)[-1]
        if data is not None and base in wanted:
            files[base] = data
    missing = [f for f in wanted if f not in files]
    if missing:
        raise DataError(f"{archive}: not a CIFAR archive, or incomplete (no {', '.join(missing)})")
    return files


# Every global an official CIFAR batch (or one re-saved by numpy 1 or 2) refers to, and what it resolves to.
# numpy.core is numpy 2's deprecated alias of numpy._core: both spellings map to the objects of this numpy.
_NUMPY_CORE = getattr(np, "_core", None) or np.core
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _NUMPY_CORE.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _NUMPY_CORE.multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _NUMPY_CORE.multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _NUMPY_CORE.multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): __import__("_codecs").encode,  # how protocol 2 stores bytes from Python 3
}


class RefusedGlobal(pickle.UnpicklingError):
    pass


class CifarUnpickler(pickle.Unpickler):
    """Reads data only: any global outside :data:`SAFE_GLOBALS` is refused before it is looked up."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"{module}.{name}") from None


def _unpickle(data: bytes, where: str) -> Any:
    try:
        return CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except RefusedGlobal as e:
        raise DataError(f"{where}: refused, the pickle calls {e}, which no CIFAR file contains "
                        f"(a CIFAR batch holds data only)") from None
    except Exception as e:  # any unpickling failure means the file is not what it should be
        raise DataError(f"{where}: not a readable CIFAR pickle ({type(e).__name__}: {e})") from None


def _get(obj: Any, key: bytes, where: str) -> Any:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a pickled dict, got {type(obj).__name__}")
    for k in (key, key.decode()):
        if k in obj:
            return obj[k]
    raise DataError(f"{where}: no {key!r} entry (keys: {', '.join(map(repr, list(obj)[:8]))})")


def _class_names(meta: Any, spec: CifarSpec, source: Path) -> list[str]:
    where = f"{source}: {spec.meta_file}"
    names = _get(meta, spec.names_key, where)
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{where}: {spec.names_key!r} is not a list of class names")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


def _batch(obj: Any, spec: CifarSpec, num_classes: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = _get(obj, b"data", where), _get(obj, spec.label_key, where)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{where}: b'data' must be a uint8 (n, {IMAGE_BYTES}) array, got {got}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {spec.label_key!r} is not a list of integers") from None
    if y.shape != (data.shape[0],):
        raise DataError(f"{where}: {data.shape[0]} images but {y.size} labels")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{where}: labels outside 0..{num_classes - 1}")
    return data, y
