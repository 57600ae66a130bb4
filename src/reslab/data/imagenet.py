"""ImageNet-style augmentation on Pillow images, each crop cut and resized in one call.

Two training recipes, named after where they come from:
- ``"he2016"``: He et al. 2016, section 3.4: the shorter side resized to a random length in
  [256, 480], a random 224x224 crop, a horizontal flip, and AlexNet's PCA colour augmentation
  (``lighting``, applied to the float batch; per-pixel mean subtraction is left to the normalisation).
- ``"inception"``: the random-resized crop of Szegedy et al. 2015 used by fb.resnet.torch and
  torchvision's references: a crop of 8-100% of the area with an aspect ratio in [3/4, 4/3], resized
  to 224x224, and a horizontal flip.
Evaluation: the shorter side to 256, the centre 224x224; or He et al.'s 10-crop testing (the four corner
crops, the centre crop and the mirror image of each, whose logits the evaluation averages).

Every crop is a box in the original image's coordinates, resized with ``Image.resize(box=...)``, so a
crop costs one resampling; a JPEG much larger than the box's output is decoded at 1/2, 1/4 or 1/8 of its
size first (Pillow's draft mode, in the DCT). Draws come from a ``random.Random`` per image.

References:
    He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016 (section 3.4).
    Krizhevsky, Sutskever, Hinton. ImageNet Classification with Deep CNNs. NeurIPS 2012 (PCA lighting).
    Szegedy et al. Going Deeper with Convolutions. CVPR 2015 (random-resized crop).
"""

from __future__ import annotations

import io
import math
import random

import numpy as np
import torch
from PIL import Image

RECIPES = ("he2016", "inception")
MEAN = (0.485, 0.456, 0.406)  # ImageNet's per-channel statistics, 0-1 scale
STD = (0.229, 0.224, 0.225)
# AlexNet's PCA of ImageNet RGB pixels (0-1 scale): eigenvalues and eigenvectors (columns).
EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
LIGHTING_STD = 0.1


def inception_box(width: int, height: int, rng: random.Random, *, scale=(0.08, 1.0),
                  ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """A box of ``scale`` of the area and an aspect ratio in ``ratio`` (log-uniform), up to 10 tries;
    else the largest centred box whose ratio fits."""
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            x, y = rng.randint(0, width - w), rng.randint(0, height - h)
            return x, y, x + w, y + h
    aspect = width / height
    w, h = (width, round(width / ratio[0])) if aspect < ratio[0] else (
        (round(height * ratio[1]), height) if aspect > ratio[1] else (width, height))
    w, h = min(w, width), min(h, height)
    x, y = (width - w) // 2, (height - h) // 2
    return x, y, x + w, y + h


def he2016_box(width: int, height: int, rng: random.Random, *, size: int = 224,
               shorter=(256, 480)) -> tuple[int, int, int, int]:
    """The box that a random ``size`` crop of the image resized to a shorter side in ``shorter`` covers."""
    s = rng.randint(*shorter)
    side = size * min(width, height) / s  # the crop's side in original pixels
    x = rng.uniform(0, width - side)
    y = rng.uniform(0, height - side)
    return round(x), round(y), round(x + side), round(y + side)


def centre_box(width: int, height: int, *, size: int = 224, resize: int = 256) -> tuple[int, int, int, int]:
    """Resize the shorter side to ``resize`` and take the centre ``size`` square: as a box in the original."""
    side = size * min(width, height) / resize
    x, y = (width - side) / 2, (height - side) / 2
    return round(x), round(y), round(x + side), round(y + side)


def crop_image(data: bytes, box_of, size: int) -> Image.Image:
    """Decode ``data``, cut ``box_of(width, height)`` and resize it to ``size`` x ``size``: an RGB image."""
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
        box = box_of(width, height)
        bw, bh = max(1, box[2] - box[0]), max(1, box[3] - box[1])
        # Ask the JPEG decoder for an image whose box is still at least ``size``: it may halve it up to 3 times.
        im.draft("RGB", (math.ceil(width * size / bw), math.ceil(height * size / bh)))
        fx, fy = im.width / width, im.height / height
        rgb = im if im.mode == "RGB" else im.convert("RGB")
        return rgb.resize((size, size), Image.Resampling.BILINEAR,
                          box=(box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy))


def load_crop(data: bytes, box_of, size: int) -> np.ndarray:
    """:func:`crop_image` as uint8 (H, W, 3)."""
    return np.array(crop_image(data, box_of, size), dtype=np.uint8)  # a writable copy


def train_sample(data: bytes, recipe: str, rng: random.Random, size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (H, W, 3) crop, float32 3-vector lighting shift) of one training image."""
    box_of = (lambda w, h: he2016_box(w, h, rng, size=size)) if recipe == "he2016" else (
        lambda w, h: inception_box(w, h, rng))
    crop = crop_image(data, box_of, size)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # on the small crop, before the array copy
    shift = np.zeros(3, dtype=np.float32)
    if recipe == "he2016":
        alpha = torch.tensor([rng.gauss(0.0, LIGHTING_STD) for _ in range(3)])
        shift = (EIGVEC @ (alpha * EIGVAL)).numpy().astype(np.float32)  # an RGB offset, 0-1 scale
    return np.array(crop, dtype=np.uint8), shift


def eval_sample(data: bytes, size: int = 224, resize: int = 256) -> np.ndarray:
    return load_crop(data, lambda w, h: centre_box(w, h, size=size, resize=resize), size)


def ten_crop_boxes(width: int, height: int, *, size: int = 224, resize: int = 256) -> list[tuple[int, int, int, int]]:
    """He et al.'s (after Krizhevsky et al.) five ``size`` crops of the image resized to a shorter side of
    ``resize``: the four corners, then the centre, as boxes in the original's coordinates."""
    side = size * min(width, height) / resize
    right, bottom = width - side, height - side
    corners = [(0.0, 0.0), (right, 0.0), (0.0, bottom), (right, bottom), (right / 2, bottom / 2)]
    return [(round(x), round(y), round(x + side), round(y + side)) for x, y in corners]


def ten_crop_sample(data: bytes, size: int = 224, resize: int = 256) -> np.ndarray:
    """10-crop testing: the five crops of :func:`ten_crop_boxes` and their mirror images, uint8
    (10, H, W, 3); the image is decoded once (in draft mode where it is much larger than needed)."""
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
        boxes = ten_crop_boxes(width, height, size=size, resize=resize)
        bw = max(1, boxes[0][2] - boxes[0][0])
        im.draft("RGB", (math.ceil(width * size / bw), math.ceil(height * size / bw)))
        fx, fy = im.width / width, im.height / height
        rgb = im if im.mode == "RGB" else im.convert("RGB")
        crops = np.stack([np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR,
                                                box=(b[0] * fx, b[1] * fy, b[2] * fx, b[3] * fy))) for b in boxes])
    return np.ascontiguousarray(np.concatenate([crops, crops[:, :, ::-1]]))
