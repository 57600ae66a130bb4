"""Datasets larger than memory, packed as WebDataset shards: ``reslab data pack SRC OUT``.

A shard is a plain tar of samples, each an image (``.jpg`` or ``.png``, the original bytes unless
``max_size`` asks for a smaller copy) and its label (``.cls``), written with the ``webdataset``
package, the format timm reads and ``timm/imagenet-1k-wds`` is published in. Beside the shards,
``index.json`` names the classes (sorted folder names, as for an image folder), every shard with its
count, and the total. A validation set packs the same way with the training set's index as its
classes, so labels agree.

Sample keys are numbers (``000000042``): WebDataset groups a sample's files by the name up to the first
dot, so a file called ``a.v2.jpg`` would otherwise split into a sample ``a`` with an extension
``v2.jpg``. Files are written in an order shuffled with ``seed``, so that every shard holds a mix of
classes (a class-ordered folder would otherwise give shards of one class each).

References:
    Aizman, Maltby, Breuel. High Performance I/O For Large Scale Deep Learning. IEEE BigData 2019.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, TextIO

from PIL import Image

from reslab.data.folder import IMAGE_SUFFIXES, _class_of, class_folders
from reslab.data.sources import is_hidden, iter_directory, iter_tar, list_tar
from reslab.errors import DataError, DataNotFound
from reslab.progress import progress as progress_bar

INDEX = "index.json"
MAX_OPEN_SHARDS = 512  # an archive is read once, so all its shards are written at once


@dataclass
class PackReport:
    out: Path
    classes: list[str]
    shards: list[dict] = field(default_factory=list)  # {"name", "count"}
    skipped: list[str] = field(default_factory=list)  # unreadable images left out (--skip-bad)

    @property
    def total(self) -> int:
        return sum(s["count"] for s in self.shards)

    def index(self) -> dict:
        return {"format": 1, "classes": self.classes, "total": self.total, "shards": self.shards,
                "skipped": len(self.skipped)}


def read_index(path: str | Path) -> dict:
    """A shard folder's index (or an ``index.json`` given directly)."""
    path = Path(path)
    file = path / INDEX if path.is_dir() else path
    try:
        index = json.loads(file.read_text())
        if not (isinstance(index["classes"], list) and isinstance(index["shards"], list)):
            raise ValueError(file)  # a check, not an assert: ``python -O`` strips those
        return index
    except FileNotFoundError:
        raise DataNotFound(f"no {INDEX} in {path}: not a folder packed by reslab data pack", file) from None
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{file} is not a shard index (classes, shards, total)") from None


def _checked_image(data: bytes, where: str, max_size: int) -> tuple[bytes, str]:
    """The image's bytes to store and their extension; decoded (in draft mode, cheaply) to prove they read."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
            if max_size and min(im.size) > max_size:
                w, h = im.size
                target = (max_size, round(h * max_size / w)) if w <= h else (round(w * max_size / h), max_size)
                im.draft("RGB", target)  # JPEG: decode at a fraction of the size, in the DCT
                small = im.convert("RGB").resize(target, Image.Resampling.BICUBIC)
                buf = io.BytesIO()
                small.save(buf, format="JPEG", quality=90)
                return buf.getvalue(), "jpg"
            im.draft("RGB", (64, 64))
            im.load()
    except Exception as e:  # any Pillow failure means a file that is not a readable image
        raise DataError(f"cannot read image {where}: {type(e).__name__}: {e}") from None
    return data, "png" if fmt == "PNG" else "jpg"


def pack(src: str | Path, out: str | Path, *, shard_size: int = 1000, max_size: int = 0, skip_bad: bool = False,
         classes: list[str] | None = None, prefix: str = "shard", seed: int = 0,
         progress: TextIO | None = None) -> PackReport:
    """Pack the class-per-folder image set at ``src`` (a folder, or a .tar/.tar.gz of one) into shards of
    ``shard_size`` samples in ``out``. ``classes``: the label order to use (a training set's index), else
    the sorted class folders. Unreadable images are refused in one line naming the file, or with
    ``skip_bad`` left out and counted. ``progress``: a stream for the progress bar (None: silent)."""
    import webdataset as wds

    src, out = Path(src).expanduser(), Path(out)
    if not src.exists():
        raise DataNotFound(f"image folder or archive not found: {src}", src)
    if shard_size < 1:
        raise DataError(f"--shard-size must be positive, got {shard_size}")
    names = _names(src)
    images = [f for f in names["files"] if f.lower().endswith(IMAGE_SUFFIXES)]
    class_prefix, found = class_folders(images, names["dirs"])
    if not found:
        raise DataError(f"no class folders in {src} (expected one sub-folder of images per class)")
    label_of = {c: i for i, c in enumerate(classes or found)}
    unknown = sorted(set(found) - set(label_of))
    if unknown:
        raise DataError(f"class folder {unknown[0]!r} of {src} is not among the given classes")
    picked = [f for f in images if _class_of(f, class_prefix) in label_of]
    order = list(range(len(picked)))
    random.Random(seed).shuffle(order)
    position = {picked[i]: n for n, i in enumerate(order)}  # file -> its place in the shuffled order
    count = len(picked)
    shard_count = (count + shard_size - 1) // shard_size
    if not src.is_dir() and shard_count > MAX_OPEN_SHARDS:
        raise DataError(f"{src} would make {shard_count} shards, more than {MAX_OPEN_SHARDS} written at once from "
                        f"one pass over an archive: extract it to a folder first, or raise --shard-size")
    out.mkdir(parents=True, exist_ok=True)
    report = PackReport(out, list(classes or found))
    shard_names = [f"{prefix}-{i:06d}.tar" for i in range(shard_count)]
    writers = {}
    counts = [0] * shard_count
    bar = progress_bar(progress, total=count, desc="packing", unit="img")
    try:
        for rel, data in _entries(src, position):
            n = position[rel]
            try:
                payload, ext = _checked_image(data, _where(src, rel), max_size)
            except DataError:
                if not skip_bad:
                    raise
                report.skipped.append(rel)
                continue
            shard = n // shard_size
            if shard not in writers:
                writers[shard] = wds.TarWriter(str(out / shard_names[shard]))
            writers[shard].write({"__key__": f"{n:09d}", ext: payload,
                                  "cls": str(label_of[_class_of(rel, class_prefix)]).encode()})
            counts[shard] += 1
            bar.update(1)
            if src.is_dir() and (n + 1) % shard_size == 0:  # a folder is written in order: close as we go
                writers.pop(shard).close()
    finally:
        bar.close()
        for writer in writers.values():
            writer.close()
    report.shards = [{"name": name, "count": c} for name, c in zip(shard_names, counts) if c]
    (out / INDEX).write_text(json.dumps(report.index(), indent=2))
    return report


def _names(src: Path) -> dict:
    if src.is_dir():
        files, dirs = [], set()
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src).as_posix()
            if is_hidden(rel):
                continue
            (dirs.add(rel) if path.is_dir() else files.append(rel))
        return {"files": files, "dirs": dirs}
    files, dirs = list_tar(src)
    return {"files": files, "dirs": dirs}


def _entries(src: Path, position: dict[str, int]) -> Iterator[tuple[str, bytes]]:
    """The bytes of the files in ``position``: a folder's in the shuffled packing order (so its shards
    are written one after the other), an archive's in its own order (one pass)."""
    if src.is_dir():
        for rel in sorted(position, key=position.get):
            try:
                yield rel, (src / rel).read_bytes()
            except OSError as e:
                raise DataError(f"cannot read {src / rel}: {e.strerror or e}") from None
    else:
        for rel, data in iter_tar(src):
            if data is not None and rel in position:
                yield rel, data


def _where(src: Path, rel: str) -> str:
    return str(src / rel) if src.is_dir() else f"{rel} in {src}"
