"""reslab data pack: an image folder (or an archive of one) into WebDataset shards and their index."""

import hashlib
import io
import json
import tarfile

import pytest
import torch
import webdataset as wds
from PIL import Image

from reslab.cli import main
from reslab.data.shards import pack, read_index
from reslab.errors import DataError

CLASSES = ("ant", "bee", "cat")


@pytest.fixture
def jpegs(tmp_path):
    """30 random JPEGs per class, 100-400 px a side, some with extra dots in their names."""
    root = tmp_path / "imgs"
    g = torch.Generator().manual_seed(0)
    for c in CLASSES:
        (root / c).mkdir(parents=True)
        for i in range(30):
            w, h = (int(v) for v in torch.randint(100, 401, (2,), generator=g))
            pixels = torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, generator=g).numpy()
            name = f"{i:03d}.v2.final.jpg" if i % 7 == 0 else f"{i:03d}.jpg"
            Image.fromarray(pixels).save(root / c / name, quality=80)
    return root


def read_back(out):
    samples = list(wds.WebDataset([str(p) for p in sorted(out.glob("*.tar"))], shardshuffle=False))
    return [(s["__key__"], s.get("jpg", s.get("png")), int(s["cls"]), sorted(k for k in s if not k.startswith("_")))
            for s in samples]


def test_every_image_once_with_its_label_and_its_own_bytes(jpegs, tmp_path):
    report = pack(jpegs, tmp_path / "out", shard_size=25)
    samples = read_back(tmp_path / "out")
    assert len(samples) == report.total == 90 and len({k for k, *_ in samples}) == 90
    assert all(fields == ["cls", "jpg"] for *_, fields in samples)  # dotted names did not split a sample
    originals = {hashlib.sha256(p.read_bytes()).hexdigest(): CLASSES.index(p.parent.name) for p in jpegs.rglob("*.jpg")}
    assert {hashlib.sha256(data).hexdigest(): label for _, data, label, _ in samples} == originals
    index = read_index(tmp_path / "out")
    assert index["classes"] == list(CLASSES) and index["total"] == 90
    assert [s["count"] for s in index["shards"]] == [25, 25, 25, 15]
    first = [label for _, _, label, _ in samples[:25]]
    assert len(set(first)) == 3  # the packing order mixes the classes within a shard


def test_max_size_resizes_the_shorter_side(jpegs, tmp_path):
    pack(jpegs, tmp_path / "out", shard_size=100, max_size=150)
    sizes = [min(Image.open(io.BytesIO(d)).size) for _, d, _, _ in read_back(tmp_path / "out")]
    originals = sorted(min(Image.open(p).size) for p in jpegs.rglob("*.jpg"))
    assert sorted(sizes) == sorted(min(s, 150) for s in originals)  # larger ones to exactly 150, the others kept


def test_unreadable_images_are_named_or_skipped_and_counted(jpegs, tmp_path, capsys):
    (jpegs / "bee" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match=r"cannot read image .*bee/broken.jpg"):
        pack(jpegs, tmp_path / "out", shard_size=50)
    assert main(["data", "pack", str(jpegs), str(tmp_path / "out2"), "--shard-size", "50", "--skip-bad"]) == 0
    assert "90 images in 2 shards, 3 classes" in capsys.readouterr().out
    assert json.loads((tmp_path / "out2" / "index.json").read_text())["skipped"] == 1


def test_validation_set_shares_the_training_classes(jpegs, tmp_path):
    pack(jpegs, tmp_path / "train", shard_size=50)
    val = tmp_path / "val"
    for c in ("bee", "cat"):  # a validation set may lack a class: its labels must still be the training set's
        (val / c).mkdir(parents=True)
        Image.new("RGB", (120, 120), "red").save(val / c / "x.jpg")
    assert main(["data", "pack", str(val), str(tmp_path / "valpack"), "--classes-from", str(tmp_path / "train")]) == 0
    labels = sorted(label for _, _, label, _ in read_back(tmp_path / "valpack"))
    assert labels == [1, 2] and read_index(tmp_path / "valpack")["classes"] == list(CLASSES)
    (val / "eel").mkdir()
    Image.new("RGB", (120, 120), "red").save(val / "eel" / "y.jpg")
    with pytest.raises(DataError, match="'eel'.*not among the given classes"):
        pack(val, tmp_path / "v2", classes=list(CLASSES))


def test_an_archive_packs_the_same_and_its_member_names_are_checked(jpegs, tmp_path):
    archive = tmp_path / "imgs.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(jpegs, arcname="train")
    pack(archive, tmp_path / "out", shard_size=40)
    assert len(read_back(tmp_path / "out")) == 90
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tf:
        tf.add(jpegs / "ant" / "001.jpg", arcname="../ant/001.jpg")
    with pytest.raises(DataError, match=r"refused archive member '../ant/001.jpg'"):
        pack(evil, tmp_path / "out3")


def test_a_folder_too_large_for_memory_says_how_to_stream_it(jpegs, tmp_path):
    from reslab.data.budget import check_fits_in_memory

    check_fits_in_memory(jpegs, None)  # 90 small images fit
    with pytest.raises(DataError, match=r"GB free: pack it into shards and stream them \(reslab data pack") as e:
        check_fits_in_memory(jpegs, None, available=1_000_000)
    assert len(str(e.value).splitlines()) == 1
