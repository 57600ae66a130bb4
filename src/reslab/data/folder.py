"""Image-folder datasets: one sub-folder of PNG/JPEG images per class, as a folder or a tar archive.

Classes are the sub-folder names in sorted order (label = index). A single top folder holding only
folders is looked through, so ``train/<class>/NNNN.jpg`` inside an archive works as it stands.
Images are decoded with Pillow to RGB in parallel worker processes, each taking a chunk of files,
into one uint8 (N, 3, H, W) array, which is cached by content hash (see :mod:`reslab.data.cache`):
the second load of the same bytes only reads the cache.
"""

from __future__ import annotations

import io
import multiprocessing
import sys
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from reslab.data.arrays import ArrayDataset
from reslab.data.cache import cache_path, cache_root, load_cached, save_cached
from reslab.data.budget import check_fits_in_memory
from reslab.device import usable_cores
from reslab.data.sources import IMAGE_SUFFIXES, Entry, directory_digest, iter_directory, iter_tar, sha256_file
from reslab.errors import DataError, DataNotFound

CHUNK = 512  # images per worker task: large enough to amortise the transfer, small enough to overlap reading


MAX_PIXELS = 40_000_000  # per image, read from the header before decoding (larger than any ImageNet photo)


def load_image_folder(path: str | Path, *, cache_dir: str | Path | None = None, image_size: int | None = None,
                      workers: int | None = None, max_pixels: int = MAX_PIXELS) -> ArrayDataset:
    """Read a class-per-folder image dataset from a folder or a ``.tar``/``.tar.gz`` archive of one.

    All images must have one size unless ``image_size`` is given, which resizes every image to
    ``image_size`` x ``image_size`` (bilinear). ``workers`` decoding processes (default: the usable
    CPU cores; 1 decodes in this process). The decoded arrays are cached under ``cache_dir``. An image
    of more than ``max_pixels`` pixels, as its header says, is refused before it is decoded.
    """
    if not str(path):
        raise DataError("no path given for the image folder (a folder or a .tar/.tar.gz archive of one)")
    path = Path(path).expanduser()
    if not path.exists():
        raise DataNotFound(f"image folder or archive not found: {path}", path)
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    check_fits_in_memory(path, image_size)
    entries: list[Entry] | None = None
    if path.is_dir():
        entries = list(iter_directory(path))
        digest = directory_digest(entries)
    else:
        digest = sha256_file(path)
    cached_at = cache_path(cache_root(cache_dir), digest, tag=f"size{image_size}" if image_size else "native")
    dataset = load_cached(cached_at)
    if dataset is None:
        source = entries if entries is not None else iter_tar(path)
        dataset = decode_folder(source, where=_Where(path, is_archive=entries is None), image_size=image_size,
                                workers=usable_cores() if workers is None else workers, max_pixels=max_pixels)
        save_cached(cached_at, dataset)
    return dataset


@dataclass(frozen=True)
class _Where:
    """Names a file of the dataset in messages: ``root/rel`` for a folder, ``rel in archive`` for an archive."""

    root: Path
    is_archive: bool

    def __call__(self, relpath: str) -> str:
        return f"{relpath} in {self.root}" if self.is_archive else str(self.root / relpath)


# --- decoding (runs in worker processes) ------------------------------------------------------------


@dataclass
class Decoded:
    """One chunk: pixels as (n, 3, H, W) when all share a size, else a list of (3, h, w) arrays."""

    pixels: np.ndarray | list[np.ndarray | None]
    sizes: list[tuple[int, int] | None]  # (height, width) of each image; None where decoding failed
    errors: dict[int, str]  # row -> reason


class TooLarge(ValueError):
    pass


def _decode_one(data: bytes, image_size: int | None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One image file -> uint8 (H, W, 3) RGB. The size is checked from the header, before any decoding."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # reslab's own limit decides, below
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as e:  # Pillow's hard stop, at twice its own limit
            raise TooLarge(f"{e} (data.max_image_pixels = {max_pixels:,})") from None
    with im:
        if im.width * im.height > max_pixels:
            raise TooLarge(f"{im.width}x{im.height} pixels, more than data.max_image_pixels = {max_pixels:,}")
        target = (image_size, image_size) if image_size else im.size
        im.draft("RGB", target)  # JPEG: decode straight to RGB (and downscale in the DCT when much larger)
        rgb = im if im.mode == "RGB" else im.convert("RGB")
        if rgb.size != target:
            rgb = rgb.resize(target, Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


def _reason(e: Exception) -> str:
    if isinstance(e, UnidentifiedImageError):
        return "not a PNG or JPEG image Pillow can read"
    if isinstance(e, TooLarge):
        return str(e)
    return f"{type(e).__name__}: {e}"


def decode_chunk(blobs: list[bytes], image_size: int | None, max_pixels: int = MAX_PIXELS) -> Decoded:
    """Decode a chunk of image files; failures are reported per row, never raised."""
    pixels: list[np.ndarray | None] = []
    errors: dict[int, str] = {}
    for row, data in enumerate(blobs):
        try:
            pixels.append(_decode_one(data, image_size, max_pixels))
        except Exception as e:  # any Pillow failure on bad input is a per-file data error
            pixels.append(None)
            errors[row] = _reason(e)
    sizes = [None if p is None else (p.shape[0], p.shape[1]) for p in pixels]
    shapes = {p.shape for p in pixels if p is not None}
    if len(shapes) != 1:
        return Decoded([None if p is None else np.ascontiguousarray(p.transpose(2, 0, 1)) for p in pixels],
                       sizes, errors)
    stacked = np.zeros((len(blobs), *shapes.pop()), dtype=np.uint8)  # (n, H, W, 3)
    for row, p in enumerate(pixels):
        if p is not None:
            stacked[row] = p
    return Decoded(np.ascontiguousarray(stacked.transpose(0, 3, 1, 2)), sizes, errors)  # (n, 3, H, W)


def _pool_context():
    # fork: workers need only Pillow and numpy, and start in milliseconds instead of re-importing torch.
    return multiprocessing.get_context("fork") if sys.platform == "linux" else None


class _Decoder:
    """Decodes chunks as they arrive: in worker processes once a full chunk shows there is work to share."""

    def __init__(self, *, workers: int, image_size: int | None, max_pixels: int) -> None:
        self.workers, self.image_size, self.max_pixels = workers, image_size, max_pixels
        self.pool: ProcessPoolExecutor | None = None
        self.results: list[Future[Decoded] | Decoded] = []

    def submit(self, blobs: list[bytes]) -> None:
        if self.pool is None and self.workers > 1 and len(blobs) >= CHUNK:
            self.pool = ProcessPoolExecutor(self.workers, mp_context=_pool_context())
        if self.pool is not None:
            self.results.append(self.pool.submit(decode_chunk, blobs, self.image_size, self.max_pixels))
        elif blobs:
            self.results.append(decode_chunk(blobs, self.image_size, self.max_pixels))

    def collect(self) -> list[Decoded]:
        return [r.result() if isinstance(r, Future) else r for r in self.results]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


# --- assembling the dataset -------------------------------------------------------------------------


def decode_folder(entries: Iterable[Entry], *, where: _Where, image_size: int | None, workers: int,
                  max_pixels: int = MAX_PIXELS) -> ArrayDataset:
    """Decode a stream of ``(relpath, bytes)`` entries into a dataset, checking the folder layout."""
    names: list[str] = []  # image files, in the order read (= the order decoded)
    others: list[str] = []  # every other file
    dirs: set[str] = set()
    decoder = _Decoder(workers=workers, image_size=image_size, max_pixels=max_pixels)
    try:
        blobs: list[bytes] = []
        for relpath, data in entries:
            if data is None:
                dirs.add(relpath)
            elif relpath.lower().endswith(IMAGE_SUFFIXES):
                names.append(relpath)
                blobs.append(data)
                if len(blobs) == CHUNK:
                    decoder.submit(blobs)
                    blobs = []
            else:
                others.append(relpath)
        decoder.submit(blobs)
        chunks = decoder.collect()
    finally:
        decoder.close()

    classes, picked = _labelled(names, others, dirs, where=where)  # picked: (label, relpath, decode index)
    height, width = _common_size(picked, chunks, where=where)
    images = np.empty((len(picked), 3, height, width), dtype=np.uint8)
    _gather(images, chunks, [i for _, _, i in picked])
    labels = torch.tensor([label for label, _, _ in picked], dtype=torch.int64)
    return ArrayDataset(torch.from_numpy(images), labels, classes)


def _labelled(names: list[str], others: list[str], dirs: set[str], *,
              where: _Where) -> tuple[list[str], list[tuple[int, str, int]]]:
    """The classes and ``(label, relpath, index in names)`` of every class image, sorted by label and path."""
    prefix, classes = class_folders(names + others, dirs)
    if not classes:
        raise DataError(f"no class folders in {where.root} (expected one sub-folder of images per class)")
    label_of = {name: label for label, name in enumerate(classes)}
    for relpath in others:
        if _class_of(relpath, prefix) in label_of:
            raise DataError(f"not a PNG or JPEG file: {where(relpath)} (class folders may hold only images)")
    picked = sorted((label_of[c], relpath, i) for i, relpath in enumerate(names)
                    if (c := _class_of(relpath, prefix)) in label_of)
    counts = np.bincount([label for label, _, _ in picked], minlength=len(classes))
    if (counts == 0).any():
        empty = classes[int(np.flatnonzero(counts == 0)[0])]
        raise DataError(f"empty class folder {where(prefix + empty)} (no PNG or JPEG images)")
    return classes, picked


def _common_size(picked: list[tuple[int, str, int]], chunks: list[Decoded], *, where: _Where) -> tuple[int, int]:
    """The (height, width) all picked images share; a decoding failure or a different size is an error."""
    first: tuple[tuple[int, int], str] | None = None
    for _, relpath, i in picked:
        chunk, row = chunks[i // CHUNK], i % CHUNK
        if row in chunk.errors:
            raise DataError(f"cannot decode image {where(relpath)}: {chunk.errors[row]}")
        size = chunk.sizes[row]
        assert size is not None
        if first is None:
            first = size, relpath
        elif size != first[0]:
            (h, w), name = first
            raise DataError(f"image {where(relpath)} is {size[1]}x{size[0]} but {name} is {w}x{h}: "
                            f"images must share one size (or set data.image_size to resize every image to one)")
    assert first is not None  # _labelled guarantees an image per class
    return first[0]


def _gather(out: np.ndarray, chunks: list[Decoded], sources: list[int]) -> None:
    """``out[k] = image number sources[k]``, one vectorised copy per chunk where the chunk is uniform."""
    by_chunk: dict[int, tuple[list[int], list[int]]] = {}
    for k, i in enumerate(sources):
        dst, src = by_chunk.setdefault(i // CHUNK, ([], []))
        dst.append(k)
        src.append(i % CHUNK)
    for c, (dst, src) in by_chunk.items():
        pixels = chunks[c].pixels
        if isinstance(pixels, np.ndarray):
            out[dst] = pixels[src]
        else:
            for k, row in zip(dst, src):
                out[k] = pixels[row]


def _class_of(relpath: str, prefix: str) -> str | None:
    """The class folder of a file (the first folder under ``prefix``), or None for a loose file."""
    if not relpath.startswith(prefix):
        return None
    parts = relpath[len(prefix):].split("/")
    return parts[0] if len(parts) > 1 else None


def class_folders(files: list[str], dirs: set[str]) -> tuple[str, list[str]]:
    """``(prefix, sorted class names)``: looks through single top folders that hold only folders."""
    folders = set(dirs)
    for f in files:  # archives need not list folders: every file implies its parents
        parts = f.split("/")[:-1]
        folders.update("/".join(parts[:n]) for n in range(1, len(parts) + 1))
    prefix = ""
    while True:
        children = sorted({d[len(prefix):].split("/")[0] for d in folders if d.startswith(prefix)})
        loose_images = any(f.startswith(prefix) and "/" not in f[len(prefix):] and f.lower().endswith(IMAGE_SUFFIXES)
                           for f in files)
        if len(children) == 1 and not loose_images and any(d.startswith(f"{prefix}{children[0]}/") for d in folders):
            prefix = f"{prefix}{children[0]}/"
            continue
        return prefix, children
