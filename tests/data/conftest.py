"""Small fixtures built in tmp_path: CIFAR in the official pickle format, image folders, tar archives,
and a local HTTP server for the download tests."""

from __future__ import annotations

import functools
import http.server
import io
import pickle
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass
class Cifar:
    folder: Path  # the extracted cifar-10-batches-py / cifar-100-python folder
    archive: Path  # the .tar.gz of it
    train_images: np.ndarray  # (N, 3, 32, 32)
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]


def _dump(obj, path: Path) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))  # the official files are protocol-2 pickles


def write_cifar(root: Path, name: str = "cifar10", *, per_batch: int = 4, seed: int = 0) -> Cifar:
    """A miniature CIFAR release: the official file names, dict keys and row layout, few images."""
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder, classes = root / "cifar-10-batches-py", CIFAR10_NAMES
        train_files, test_file, meta_file = [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "batches.meta"
        label_key, meta = b"labels", {b"num_cases_per_batch": per_batch, b"label_names": [c.encode() for c in classes],
                                      b"num_vis": 3072}
    else:
        folder, classes = root / "cifar-100-python", [f"class{i:03d}" for i in range(100)]
        train_files, test_file, meta_file = ["train"], "test", "meta"
        label_key, meta = b"fine_labels", {b"fine_label_names": [c.encode() for c in classes],
                                           b"coarse_label_names": [f"super{i}".encode() for i in range(20)]}
    folder.mkdir(parents=True)
    train_n = per_batch if name == "cifar10" else per_batch * 5  # both: 5 * per_batch training images

    def batch(fname: str, n: int):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, len(classes), n)]
        obj = {b"batch_label": f"{fname} of 5".encode(), label_key: labels, b"data": data,
               b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
        if name == "cifar100":
            obj[b"coarse_labels"] = [v // 5 for v in labels]
        _dump(obj, folder / fname)
        return data.reshape(n, 3, 32, 32), np.array(labels)

    train = [batch(f, train_n) for f in train_files]
    test_images, test_labels = batch(test_file, per_batch)
    _dump(meta, folder / meta_file)
    (folder / "readme.html").write_text("<html>CIFAR</html>")
    archive = root / ("cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz")
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(folder, arcname=folder.name)
    return Cifar(folder, archive, np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
                 test_images, test_labels, classes)


def write_image_folder(root: Path, counts: dict[str, int], *, size: tuple[int, int] = (8, 8), fmt: str = "png",
                       seed: int = 0) -> dict[str, np.ndarray]:
    """``root/<class>/<i>.<fmt>`` random RGB images; returns ``{relpath: (H, W, 3) pixels}``."""
    rng = np.random.default_rng(seed)
    pixels = {}
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rel = f"{cls}/{i:04d}.{fmt}"
            arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / rel)
            pixels[rel] = arr
    return pixels


def write_tar(src: Path, out: Path, *, top: str | None = "train") -> Path:
    """A tar (gzip-compressed when ``out`` ends in .gz) of ``src``'s content under one top folder."""
    mode = "w:gz" if out.name.endswith(".gz") else "w"
    with tarfile.open(out, mode) as tf:
        for p in sorted(src.rglob("*")):
            rel = p.relative_to(src).as_posix()
            tf.add(p, arcname=f"{top}/{rel}" if top else rel, recursive=False)
    return out


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def make():
    """The fixture builders, as a fixture so tests need not import this conftest."""
    return SimpleNamespace(cifar=write_cifar, image_folder=write_image_folder, tar=write_tar, tar_bytes=tar_bytes)


@pytest.fixture(scope="session")
def sample_cache(tmp_path_factory):
    """One decode cache for the embedded sample, shared by the tests that load it."""
    return tmp_path_factory.mktemp("sample-cache")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """``(folder, base_url)``: files put in ``folder`` are served on 127.0.0.1."""
    monkeypatch.setenv("no_proxy", "*")  # never route the local server through a proxy
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
