"""Image-folder datasets from folders and tar archives, their errors, the decode cache and the sample."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reslab.data import folder
from reslab.data.folder import load_image_folder
from reslab.data.sample import SAMPLE_ARCHIVE, load_sample
from reslab.errors import DataError

COUNTS = {"dog": 2, "cat": 3, "emu": 1}


def expected(pixels):
    """Images and labels in the reader's order: classes sorted by name, files sorted within each."""
    classes = sorted({rel.split("/")[0] for rel in pixels})
    rels = sorted(pixels, key=lambda r: (classes.index(r.split("/")[0]), r))
    images = torch.from_numpy(np.stack([pixels[r].transpose(2, 0, 1) for r in rels]))
    return images, [classes.index(r.split("/")[0]) for r in rels], classes


def check(ds, pixels):
    images, labels, classes = expected(pixels)
    assert ds.classes == classes == ["cat", "dog", "emu"]
    assert ds.images.dtype == torch.uint8 and ds.images.is_contiguous()
    assert torch.equal(ds.images, images)
    assert ds.labels.tolist() == labels


@pytest.fixture
def tree(tmp_path, make):
    root = tmp_path / "tree"
    return root, make.image_folder(root, COUNTS)


def test_folder_tar_and_tar_gz_read_the_same(tmp_path, tree, make):
    root, pixels = tree
    check(load_image_folder(root, cache_dir=tmp_path / "c"), pixels)
    for name in ("d.tar", "d.tar.gz", "d.tgz"):
        check(load_image_folder(make.tar(root, tmp_path / name), cache_dir=tmp_path / "c"), pixels)
    check(load_image_folder(make.tar(root, tmp_path / "flat.tar", top=None), cache_dir=tmp_path / "c"), pixels)


def test_single_top_folder_of_a_directory_is_looked_through(tmp_path, make):
    pixels = make.image_folder(tmp_path / "root" / "train", COUNTS)
    (tmp_path / "root" / "README.txt").write_text("about this dataset")  # loose files beside it are ignored
    check(load_image_folder(tmp_path / "root", cache_dir=tmp_path / "c"), pixels)


def test_jpeg_and_non_rgb_modes_decode_to_rgb(tmp_path):
    root = tmp_path / "mixed"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "a" / "x.JPG", quality=90)
    Image.fromarray(rgb[..., 0]).save(root / "b" / "gray.png")  # mode L
    Image.fromarray(rgb).convert("P").save(root / "b" / "palette.png")  # mode P
    Image.fromarray(rgb).convert("RGBA").save(root / "b" / "rgba.png")
    (root / "b" / ".DS_Store").write_bytes(b"\0junk")  # hidden files are never data
    ds = load_image_folder(root, cache_dir=tmp_path / "c")
    assert ds.images.shape == (4, 3, 8, 8) and ds.labels.tolist() == [0, 1, 1, 1]
    jpeg = np.asarray(Image.open(root / "a" / "x.JPG").convert("RGB"))
    assert torch.equal(ds.images[0], torch.from_numpy(jpeg.transpose(2, 0, 1).copy()))
    assert torch.equal(ds.images[1], torch.from_numpy(np.stack([rgb[..., 0]] * 3)))  # b/gray.png sorts first
    assert torch.equal(ds.images[3], torch.from_numpy(rgb.transpose(2, 0, 1).copy()))  # rgba: alpha dropped


def test_sizes_must_agree_unless_resized(tmp_path, make):
    root = tmp_path / "sizes"
    make.image_folder(root, {"a": 2})
    (root / "b").mkdir()
    Image.new("RGB", (12, 10), "red").save(root / "b" / "big.png")
    with pytest.raises(DataError, match=r"b/big.png is 12x10 but a/0000.png is 8x8"):
        load_image_folder(root, cache_dir=tmp_path / "c")
    ds = load_image_folder(root, cache_dir=tmp_path / "c", image_size=6)
    assert ds.images.shape == (3, 3, 6, 6)
    assert torch.equal(ds.images[2], torch.tensor([255, 0, 0], dtype=torch.uint8).view(3, 1, 1).expand(3, 6, 6))


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="not found: .*nope"):
        load_image_folder(tmp_path / "nope", cache_dir=tmp_path / "c")


@pytest.mark.parametrize("name, keep", [("d.tar.gz", -40), ("d.tar", 3000)])
def test_truncated_archive(tmp_path, tree, make, name, keep):
    archive = make.tar(tree[0], tmp_path / name)
    cut = tmp_path / f"cut-{name}"
    cut.write_bytes(archive.read_bytes()[:keep])  # tar: cut inside the first image
    with pytest.raises(DataError, match=f"cut-{name}.*truncated"):
        load_image_folder(cut, cache_dir=tmp_path / "c")


def test_a_file_that_is_not_an_archive(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="notes.txt: not a readable tar archive"):
        load_image_folder(tmp_path / "notes.txt", cache_dir=tmp_path / "c")


def test_non_image_file_in_a_class_folder(tmp_path, tree):
    root, _ = tree
    (root / "dog" / "notes.txt").write_text("a dog")
    with pytest.raises(DataError, match=r"not a PNG or JPEG file: .*tree/dog/notes.txt"):
        load_image_folder(root, cache_dir=tmp_path / "c")


@pytest.mark.parametrize("archive", [False, True])
def test_corrupt_image_is_named(tmp_path, tree, make, archive):
    root, _ = tree
    (root / "cat" / "0001.png").write_bytes(b"\x89PNG but not really")
    path = make.tar(root, tmp_path / "d.tar") if archive else root
    where = "train/cat/0001.png in .*d.tar" if archive else ".*tree/cat/0001.png"
    with pytest.raises(DataError, match=f"cannot decode image {where}: not a PNG or JPEG image"):
        load_image_folder(path, cache_dir=tmp_path / "c")


def test_truncated_jpeg_is_named(tmp_path, tree):
    root, _ = tree
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buf, format="JPEG")
    (root / "emu" / "cut.jpg").write_bytes(buf.getvalue()[:100])
    with pytest.raises(DataError, match="cannot decode image .*emu/cut.jpg"):
        load_image_folder(root, cache_dir=tmp_path / "c")


@pytest.mark.parametrize("archive", [False, True])
def test_empty_class_folder(tmp_path, tree, make, archive):
    root, _ = tree
    (root / "yak").mkdir()
    path = make.tar(root, tmp_path / "d.tar") if archive else root
    with pytest.raises(DataError, match="empty class folder .*yak"):
        load_image_folder(path, cache_dir=tmp_path / "c")


def test_no_class_folders(tmp_path):
    root = tmp_path / "loose"
    root.mkdir()
    Image.new("RGB", (4, 4)).save(root / "one.png")
    with pytest.raises(DataError, match="no class folders in .*loose"):
        load_image_folder(root, cache_dir=tmp_path / "c")


def test_second_load_comes_from_the_cache(tmp_path, tree, make, monkeypatch):
    archive = make.tar(tree[0], tmp_path / "d.tar.gz")
    cache = tmp_path / "cache"
    for path in (archive, tree[0]):
        first = load_image_folder(path, cache_dir=cache)
        monkeypatch.setattr(folder, "decode_folder", lambda *a, **k: pytest.fail("decoded despite a cache hit"))
        second = load_image_folder(path, cache_dir=cache)
        monkeypatch.undo()
        assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
        assert first.classes == second.classes
    assert len(list(cache.glob("images-*.npz"))) == 2  # one per source content
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp")]


def test_changed_content_misses_and_corrupt_cache_is_rebuilt(tmp_path, tree, monkeypatch):
    root, pixels = tree
    cache = tmp_path / "cache"
    load_image_folder(root, cache_dir=cache)
    Image.new("RGB", (8, 8), "white").save(root / "emu" / "0000.png")  # same names, new bytes
    assert load_image_folder(root, cache_dir=cache).images[-1].eq(255).all()
    for f in cache.glob("*.npz"):
        f.write_bytes(f.read_bytes()[:100])  # corrupt every cache file
    assert load_image_folder(root, cache_dir=cache).images[-1].eq(255).all()


def test_cache_dir_defaults_to_environment(tmp_path, tree, monkeypatch):
    monkeypatch.setenv("RESLAB_CACHE", str(tmp_path / "env-cache"))
    load_image_folder(tree[0])
    assert len(list((tmp_path / "env-cache").glob("images-*.npz"))) == 1


def test_parallel_decoding_matches_serial(tmp_path, make, monkeypatch):
    root = tmp_path / "many"
    pixels = make.image_folder(root, {"a": 7, "b": 6})
    pools = []

    class CountingPool(folder.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(folder, "ProcessPoolExecutor", CountingPool)
    monkeypatch.setattr(folder, "CHUNK", 4)  # several chunks, so the worker pool is used
    serial = load_image_folder(root, cache_dir=tmp_path / "c1", workers=1)
    assert not pools
    parallel = load_image_folder(root, cache_dir=tmp_path / "c2", workers=2)
    assert len(pools) == 1
    images, labels, _ = expected(pixels)
    assert torch.equal(parallel.images, images) and parallel.labels.tolist() == labels
    assert torch.equal(serial.images, images) and serial.labels.tolist() == labels
    (root / "b" / "0003.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot decode image .*b/0003.png"):
        load_image_folder(root, cache_dir=tmp_path / "c3", workers=2)


def test_embedded_sample(sample_cache):
    assert SAMPLE_ARCHIVE.stat().st_size < 2_500_000
    ds = load_sample(cache_dir=sample_cache)
    assert ds.images.shape == (5000, 3, 32, 32)
    assert ds.labels.bincount().tolist() == [500] * 10
    assert ds.classes[0] == "airplane" and ds.classes[-1] == "truck"


SHARED = Path("/work/shared/datasets/cifar10-train-jpeg.tar.gz")


@pytest.mark.skipif(not SHARED.is_file(), reason="the shared CIFAR-10 JPEG archive is not on this machine")
def test_sample_rebuilds_byte_for_byte_from_the_shared_archive(tmp_path):
    from reslab.data.sample import make_sample

    out = tmp_path / "rebuilt.tar.gz"
    make_sample.write_tar_gz(make_sample.select(SHARED, 500), out)
    assert out.read_bytes() == SAMPLE_ARCHIVE.read_bytes()


def _png(color):
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("bad, why", [
    ("/train/cat/evil.png", "an absolute path"),
    ("train/../cat/evil.png", "a '..' component"),
    ("../outside.png", "a '..' component"),
])
def test_archive_members_that_point_elsewhere_are_refused(tmp_path, make, bad, why):
    members = {f"train/{c}/{i}.png": _png(color) for c, color in (("cat", "red"), ("dog", "blue")) for i in range(3)}
    members[bad] = _png("green")
    archive = tmp_path / "evil.tar"
    archive.write_bytes(make.tar_bytes(members))
    with pytest.raises(DataError) as e:
        load_image_folder(archive, cache_dir=tmp_path / "cache", workers=1)
    message = str(e.value)
    assert f"refused archive member {bad!r} ({why})" in message and len(message.splitlines()) == 1
    assert not (tmp_path / "outside.png").exists() and not (tmp_path.parent / "outside.png").exists()


def test_archive_links_are_refused(tmp_path):
    import tarfile

    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tf:
        for c in ("cat", "dog"):
            data = _png("red")
            info = tarfile.TarInfo(f"{c}/0.png")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("cat/1.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(DataError, match=r"refused archive member 'cat/1.png' \(a link to '/etc/passwd'\)"):
        load_image_folder(archive, cache_dir=tmp_path / "cache", workers=1)


def test_an_image_too_large_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch, recwarn):
    from PIL import ImageFile

    root = tmp_path / "imgs"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        Image.new("RGB", (8, 8), "red").save(root / c / "small.png")
    Image.new("RGB", (40, 40), "blue").save(root / "dog" / "big.png")
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: (decoded.append(self.size), real_load(self))[1])
    with pytest.raises(DataError, match=r"big.png: 40x40 pixels, more than data.max_image_pixels = 1,000"):
        load_image_folder(root, cache_dir=tmp_path / "cache", workers=1, max_pixels=1000)
    assert (40, 40) not in decoded  # the header alone decided
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_mixed_sizes_name_the_config_key(tmp_path):
    root = tmp_path / "imgs"
    for c, size in (("cat", 8), ("dog", 9)):
        (root / c).mkdir(parents=True)
        Image.new("RGB", (size, size), "red").save(root / c / "a.png")
    with pytest.raises(DataError, match="set data.image_size"):
        load_image_folder(root, cache_dir=tmp_path / "cache", workers=1)
    assert load_image_folder(root, cache_dir=tmp_path / "cache", workers=1, image_size=8).images.shape[-1] == 8
