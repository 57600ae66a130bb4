"""Whether a dataset fits in memory once decoded; if not, the one line that says how to stream it."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from reslab.data.sources import IMAGE_SUFFIXES
from reslab.errors import DataError


def free_memory() -> int:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_fits_in_memory(path: Path, image_size: int | None, *, available: int | None = None) -> None:
    """Refuse, in one line that says how to stream it instead, a set whose decoded pixels would not fit
    in memory: estimated from the file count and the first image's header (a folder), or as ten times
    the compressed size (an archive, which JPEG compresses about that much)."""
    available = free_memory() if available is None else available
    if path.is_dir():
        files = [Path(here, f) for here, _, names in os.walk(path) for f in names if f.lower().endswith(IMAGE_SUFFIXES)]
        if not files:
            return
        if image_size:
            pixels = image_size * image_size
        else:
            try:
                with Image.open(files[0]) as im:
                    pixels = im.width * im.height
            except Exception:  # the decoding pass names a bad file properly
                return
        estimate = len(files) * pixels * 3
    else:
        estimate = 10 * path.stat().st_size
    if estimate > 0.8 * available:
        raise DataError(f"{path} would take about {estimate / 1e9:.1f} GB decoded, more than the {available / 1e9:.1f} GB "
                        f"free: pack it into shards and stream them (reslab data pack {path} SHARDS, then "
                        f"--data.dataset=shards --data.path=SHARDS)")
