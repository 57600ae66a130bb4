"""A content-addressed cache of decoded datasets: one uncompressed ``.npz`` per source.

The key is the sha256 of the source's bytes (plus the decode options), so a changed archive can
never be served stale pixels. Files are written to a temporary name and renamed into place, so a
crash never leaves half a cache file under a valid name; an unreadable cache file is a miss.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from reslab.data.arrays import ArrayDataset

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def cache_root(cache_dir: str | Path | None) -> Path:
    """``cache_dir`` if given, else ``$RESLAB_CACHE``, else ``~/.cache/reslab``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("RESLAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "reslab"


def cache_path(root: Path, digest: str, *, tag: str) -> Path:
    return root / f"images-{digest}-{tag}-v{FORMAT_VERSION}.npz"


def load_cached(path: Path) -> ArrayDataset | None:
    """The dataset stored at ``path``, or None when it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            images, labels, classes = arrays["images"], arrays["labels"], arrays["classes"]
        return ArrayDataset(torch.from_numpy(images), torch.from_numpy(labels), [str(c) for c in classes])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        log.warning("ignoring unreadable cache file %s: %s", path, e)
        return None


def save_cached(path: Path, dataset: ArrayDataset) -> bool:
    """Write ``dataset`` atomically; returns False (and logs) if the cache folder is not writable."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", suffix=".npz", delete=False) as f:
            tmp = Path(f.name)
            np.savez(f, images=dataset.images.numpy(), labels=dataset.labels.numpy(),
                     classes=np.array(dataset.classes, dtype=np.str_))
        os.replace(tmp, path)
        return True
    except OSError as e:
        log.warning("could not write the dataset cache %s: %s", path, e)
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        return False
