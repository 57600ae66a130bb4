"""The embedded CIFAR-10 sample: 5,000 training images (the first 500 of each class), shipped in the package.

Built by :mod:`reslab.data.sample.make_sample` from the JPEG copy of the CIFAR-10 training set
(quality 75), in its ``train/<class>/NNNN.jpg`` layout; enough to run every command offline.
"""

from __future__ import annotations

from pathlib import Path

from reslab.data.arrays import ArrayDataset
from reslab.data.folder import load_image_folder

SAMPLE_ARCHIVE = Path(__file__).with_name("cifar10-sample.tar.gz")


def load_sample(cache_dir: str | Path | None = None) -> ArrayDataset:
    """The sample as 5,000 uint8 (3, 32, 32) images in 10 classes (decoded once, then cached)."""
    return load_image_folder(SAMPLE_ARCHIVE, cache_dir=cache_dir)
