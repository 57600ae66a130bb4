"""CIFAR readers on miniature releases in the official format, and the checksummed download."""

import dataclasses
import hashlib
import pickle
import shutil

import numpy as np
import pytest
import torch

from reslab.data import cifar
from reslab.data.cifar import download_cifar, load_cifar
from reslab.errors import DataError


def check(ds, images, labels, classes):
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(labels), 3, 32, 32)
    assert ds.images.is_contiguous()
    assert torch.equal(ds.images, torch.from_numpy(images))
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == list(labels)
    assert ds.classes == classes


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_reads_folder_parent_and_archive(tmp_path, make, name):
    c = make.cifar(tmp_path, name)
    for path in (c.folder, c.folder.parent, c.archive):
        check(load_cifar(path, name=name), c.train_images, c.train_labels, c.classes)
        check(load_cifar(path, name=name, train=False), c.test_images, c.test_labels, c.classes)


def test_rows_are_channel_major_rgb(tmp_path, make):
    c = make.cifar(tmp_path)
    ds = load_cifar(c.folder)
    row = pickle.loads((c.folder / "data_batch_1").read_bytes(), encoding="bytes")[b"data"][0]
    assert torch.equal(ds.images[0, 0].flatten(), torch.from_numpy(row[:1024]))  # red plane first
    assert torch.equal(ds.images[0, 2].flatten(), torch.from_numpy(row[2048:]))  # blue plane last


def test_archive_in_a_folder_is_read_in_place(tmp_path, make):
    c = make.cifar(tmp_path / "src")
    (tmp_path / "data").mkdir()
    shutil.copy(c.archive, tmp_path / "data")
    check(load_cifar(tmp_path / "data"), c.train_images, c.train_labels, c.classes)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cifar-10-python.tar.gz"]  # nothing extracted


def test_missing_path_names_it(tmp_path):
    with pytest.raises(DataError, match="no cifar10 data at .*nowhere.*download"):
        load_cifar(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no path"):
        load_cifar("")


def test_truncated_archive(tmp_path, make):
    c = make.cifar(tmp_path / "src")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(c.archive.read_bytes()[: c.archive.stat().st_size // 2])
    with pytest.raises(DataError, match="cut.tar.gz.*truncated"):
        load_cifar(cut)


def test_archive_without_cifar_files(tmp_path, make):
    bad = tmp_path / "other.tar"
    bad.write_bytes(make.tar_bytes({"x/readme.txt": b"hello"}))
    with pytest.raises(DataError, match="other.tar: not a CIFAR archive.*data_batch_1"):
        load_cifar(bad)


@pytest.mark.parametrize("content, message", [
    (b"not a pickle at all", "data_batch_3: not a readable CIFAR pickle"),
    (pickle.dumps([1, 2, 3]), "data_batch_3: expected a pickled dict"),
    (pickle.dumps({b"labels": [0]}), "data_batch_3: no b'data' entry"),
    (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), r"uint8 \(n, 3072\)"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "2 images but 1 labels"),
    (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), r"labels outside 0\.\.9"),
])
def test_wrong_pickle_contents(tmp_path, make, content, message):
    c = make.cifar(tmp_path)
    (c.folder / "data_batch_3").write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_cifar(c.folder)


def test_missing_batch_file_in_folder(tmp_path, make):
    c = make.cifar(tmp_path)
    (c.folder / "data_batch_5").unlink()
    with pytest.raises(DataError, match="data_batch_5"):
        load_cifar(c.folder)


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_verifies_and_is_read_from_the_archive(tmp_path, make, http_root):
    www, base = http_root
    c = make.cifar(www)
    root = tmp_path / "downloads"
    got = download_cifar(root, url=f"{base}/cifar-10-python.tar.gz", md5=md5(c.archive))
    assert got == root / "cifar-10-python.tar.gz" and got.read_bytes() == c.archive.read_bytes()
    assert [p.name for p in root.iterdir()] == ["cifar-10-python.tar.gz"]  # no temporary file left
    check(load_cifar(root), c.train_images, c.train_labels, c.classes)
    # Already there and intact: kept, no second request (the server is gone from this URL).
    assert download_cifar(root, url=f"{base}/gone.tar.gz", md5=md5(c.archive)) == got


def test_load_with_download_fetches_the_official_name(tmp_path, make, http_root, monkeypatch):
    www, base = http_root
    c = make.cifar(www, "cifar100")
    spec = cifar.CIFAR["cifar100"]
    local = dataclasses.replace(spec, url=f"{base}/{c.archive.name}", md5=md5(c.archive))
    monkeypatch.setitem(cifar.CIFAR, "cifar100", local)
    ds = load_cifar(tmp_path / "new", name="cifar100", train=False, download=True)
    check(ds, c.test_images, c.test_labels, c.classes)
    assert (tmp_path / "new" / "cifar-100-python.tar.gz").is_file()
    # A path naming the archive itself is fetched to that name.
    ds = load_cifar(tmp_path / "other" / "c100.tar.gz", name="cifar100", download=True)
    check(ds, c.train_images, c.train_labels, c.classes)


def test_wrong_checksum_leaves_nothing(tmp_path, make, http_root):
    www, base = http_root
    make.cifar(www)
    root = tmp_path / "downloads"
    with pytest.raises(DataError, match="corrupt: MD5 .* expected 0{32}"):
        download_cifar(root, url=f"{base}/cifar-10-python.tar.gz", md5="0" * 32)
    assert list(root.iterdir()) == []


def test_http_404(tmp_path, http_root):
    _, base = http_root
    root = tmp_path / "downloads"
    with pytest.raises(DataError, match="HTTP 404"):
        download_cifar(root, url=f"{base}/missing.tar.gz")
    assert list(root.iterdir()) == []


def test_unreachable_server(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "*")
    with pytest.raises(DataError, match="cannot download"):
        download_cifar(tmp_path, url="http://127.0.0.1:9/cifar.tar.gz")  # discard port: refused
    assert list(tmp_path.iterdir()) == []


class _WritesAFile:
    """A pickle payload that, unpickled by plain pickle.loads, runs os.system."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path, make, protocol):
    c = make.cifar(tmp_path)
    target = tmp_path / "pwned"
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _WritesAFile(target)}
    (c.folder / "data_batch_2").write_bytes(pickle.dumps(evil, protocol=protocol))
    with pytest.raises(DataError, match=r"data_batch_2: refused, the pickle calls (posix|os)\.system") as e:
        load_cifar(c.folder)
    assert len(str(e.value).splitlines()) == 1
    assert not target.exists()


def test_numpy_1_pickles_load_under_either_numpy(tmp_path, make):
    """The official files name numpy.core.multiarray (numpy 1); numpy 2 writes numpy._core."""
    c = make.cifar(tmp_path)
    before = load_cifar(c.folder)
    raw = (c.folder / "data_batch_1").read_bytes()
    old = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"numpy.core.multiarray\n" in old and old != raw
    (c.folder / "data_batch_1").write_bytes(old)
    after = load_cifar(c.folder)
    assert torch.equal(before.images, after.images) and torch.equal(before.labels, after.labels)
