"""The streaming loader over WebDataset shards: every image once per epoch across workers and ranks,
equal steps on every rank, exact mid-epoch resume, one-line errors, and the ImageNet augmentations."""

import io
import math
import random
import tarfile

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from reslab.data.imagenet import (centre_box, eval_sample, he2016_box, inception_box, ten_crop_boxes, ten_crop_sample,
                                  train_sample)
from reslab.data.shards import pack
from reslab.data.stream import ShardLoader
from reslab.errors import DataError


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """300 random JPEGs of 100-400 px in 3 classes."""
    root = tmp_path_factory.mktemp("imgs")
    g = torch.Generator().manual_seed(1)
    for c in ("ant", "bee", "cat"):
        (root / c).mkdir()
        for i in range(100):
            w, h = (int(v) for v in torch.randint(100, 401, (2,), generator=g))
            Image.fromarray(torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, generator=g).numpy()).save(
                root / c / f"{i}.jpg", quality=70)
    return root


@pytest.fixture(scope="module")
def shards(images, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    pack(images, out, shard_size=25)  # 12 shards: 3 for each of 2 ranks x 2 workers
    return out


def loader(root, rank=0, world=1, workers=2, batch=30, **kw):
    return ShardLoader(root, batch_size=batch, train=True, mean=(0.5,) * 3, std=(0.25,) * 3, image_size=16,
                       rank=rank, world_size=world, workers=workers, shuffle_buffer=20, **kw)


@pytest.mark.parametrize("world, workers", [(1, 2), (2, 2)])
def test_every_image_once_per_epoch(shards, world, workers):
    keys = []
    for rank in range(world):
        plan = loader(shards, rank, world, workers).epoch_keys(epoch=0)
        assert len(plan) == 10  # 300 images, global batch 30: every rank takes the same 10 steps
        keys += [k for batch in plan for k in batch]
    assert sorted(keys) == [f"{i:09d}" for i in range(300)]  # none twice, none missing
    assert loader(shards, 0, world, workers).epoch_keys(1) != loader(shards, 0, world, workers).epoch_keys(0)


def test_shards_that_do_not_split_evenly(images, tmp_path):
    """14 shards of up to 23 images over 2 ranks x 2 workers: equal steps on every rank; a slot short of
    its quota starts again, one with more drops the rest, by at most about a shard each."""
    pack(images, tmp_path, shard_size=23)
    plans = [loader(tmp_path, rank, 2, 2).epoch_keys(0) for rank in range(2)]
    assert [len(p) for p in plans] == [10, 10]
    keys = [k for p in plans for batch in p for k in batch]
    assert len(keys) == 300
    assert len(set(keys)) >= 300 - 4 * 23


def test_the_loader_delivers_its_plan_and_resumes_exactly(shards):
    full = loader(shards, workers=2)
    labels = {}
    for sample in wds.WebDataset([str(p) for p in sorted(shards.glob("*.tar"))], shardshuffle=False):
        labels[sample["__key__"]] = int(sample["cls"])
    plan = full.epoch_keys(0)
    batches = list(full)
    assert [y.tolist() for _, y in batches] == [[labels[k] for k in keys] for keys in plan]
    assert (full.epoch, full.position) == (1, 0)
    resumed = loader(shards, workers=2)
    resumed.load_state_dict({"epoch": 0, "position": 3, "seed": 0})
    tail = list(resumed)
    assert len(tail) == 7
    for (x1, y1), (x2, y2) in zip(batches[3:], tail):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_corrupt_sample_and_truncated_shard_are_one_line(shards, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    with tarfile.open(bad / "shard-000000.tar", "w") as tf:
        for i in range(30):
            for ext, data in (("jpg", b"not an image" if i == 7 else (shards / "shard-000000.tar").read_bytes()[:0]
                               or _jpeg()), ("cls", b"0")):
                info = tarfile.TarInfo(f"{i:09d}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    (bad / "index.json").write_text('{"classes": ["a"], "total": 30, "shards": [{"name": "shard-000000.tar", "count": 30}]}')
    with pytest.raises(DataError) as e:
        list(loader(bad, workers=1, batch=30))
    assert "shard-000000.tar: cannot decode sample 000000007" in str(e.value) and len(str(e.value).splitlines()) == 1
    cut = tmp_path / "cut"
    cut.mkdir()
    data = (shards / "shard-000000.tar").read_bytes()
    (cut / "shard-000000.tar").write_bytes(data[: len(data) // 2 + 100])
    (cut / "index.json").write_text('{"classes": ["a","b","c"], "total": 25, "shards": [{"name": "shard-000000.tar", "count": 25}]}')
    with pytest.raises(DataError) as e:
        list(loader(cut, workers=2, batch=10))
    assert "shard-000000.tar" in str(e.value) and len(str(e.value).splitlines()) == 1


def _jpeg():
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), "blue").save(buf, format="JPEG")
    return buf.getvalue()


def test_augmentation_shapes_ranges_and_crop_statistics():
    rng = random.Random(0)
    areas, ratios = [], []
    for _ in range(2000):
        x0, y0, x1, y1 = inception_box(500, 375, rng)
        assert 0 <= x0 < x1 <= 500 and 0 <= y0 < y1 <= 375
        areas.append((x1 - x0) * (y1 - y0) / (500 * 375))
        ratios.append((x1 - x0) / (y1 - y0))
    # drawn uniform in 0.08-1 (mean 0.54), but a large box whose ratio does not fit the image is drawn again,
    # so the accepted areas lean small (0.44 here)
    assert 0.07 < min(areas) and max(areas) <= 1.0 and 0.38 < np.mean(areas) < 0.5
    assert min(ratios) > 0.74 and max(ratios) < 1.34
    sides = []
    for _ in range(500):
        x0, y0, x1, y1 = he2016_box(500, 375, rng)
        sides.append(x1 - x0)
        assert 0 <= x0 and x1 <= 500 and 0 <= y0 and y1 <= 375
    assert math.isclose(min(sides), 224 * 375 / 480, abs_tol=2) or min(sides) > 224 * 375 / 480 - 2
    assert max(sides) <= round(224 * 375 / 256) + 1
    assert centre_box(500, 375) == (round((500 - 328.125) / 2), round((375 - 328.125) / 2),
                                    round((500 + 328.125) / 2), round((375 + 328.125) / 2))
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(buf, format="JPEG")
    for recipe in ("inception", "he2016"):
        pixels, shift = train_sample(buf.getvalue(), recipe, random.Random(1))
        assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8
        assert (np.abs(shift).max() > 0) == (recipe == "he2016") and np.abs(shift).max() < 0.2
    assert eval_sample(buf.getvalue()).shape == (224, 224, 3)


def test_imagenet_recipe_end_to_end_on_tiny_shards(images, tmp_path, capsys):
    """reslab train configs/imagenet_resnet18.toml on tiny generated shards for a few steps, then
    reslab eval on the validation shards, top-1 and top-5."""
    import json
    from pathlib import Path

    from reslab.cli import main

    config = Path(__file__).resolve().parents[2] / "configs" / "imagenet_resnet18.toml"
    val_src = tmp_path / "val"
    for c in ("ant", "cat"):
        (val_src / c).mkdir(parents=True)
        for i in range(7):
            Image.fromarray(np.random.default_rng(i).integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(
                val_src / c / f"{i}.jpg")
    assert main(["data", "pack", str(images), str(tmp_path / "train"), "--shard-size", "50"]) == 0
    assert main(["data", "pack", str(val_src), str(tmp_path / "valshards"), "--classes-from",
                 str(tmp_path / "train")]) == 0
    assert main(["train", str(config), "--quiet", f"--out_dir={json.dumps(str(tmp_path / 'runs'))}",
                 f"--data.path={json.dumps(str(tmp_path / 'train'))}",
                 f"--data.val_path={json.dumps(str(tmp_path / 'valshards'))}", "--data.batch_size=12",
                 "--data.eval_batch_size=8", "--data.image_size=32", "--data.workers=2", "--train.steps=3",
                 "--train.eval_every=3", "--train.epochs=0", "--train.log_every=1", "--train.precision=fp32"]) == 0
    run = tmp_path / "runs" / "imagenet_resnet18"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 3 and "shards" in summary["dataset"] and summary["final"]["val_error"] is not None
    capsys.readouterr()
    assert main(["eval", str(run), "--data", "shards", "--data-path", str(tmp_path / "valshards"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 14 and 0 <= report["top5_error"] <= report["error"] <= 1
    # 10-crop testing of the run's own validation shards: the same images, ten crops each
    assert main(["eval", str(run), "--ten-crop", "--json"]) == 0
    ten = json.loads(capsys.readouterr().out)
    assert ten["images"] == 14 and ten["ten_crop"] and not ten["tta_flip"] and "10 crops" in ten["data"]
    assert main(["eval", str(run), "--ten-crop", "--data", "sample"]) == 2  # a data error
    assert "10-crop testing needs full-size images" in capsys.readouterr().err


def test_ten_crop_testing_corners_centre_and_mirrors():
    """He et al.'s 10-crop: four corners and the centre of the image resized to a shorter side of 256,
    and the mirror image of each; the centre crop is the single-crop evaluation's; logits averaged."""
    # a 400x300 image at shorter side 256 is 341x256: crops of 224 are squares of 262.5 original pixels
    assert ten_crop_boxes(400, 300) == [(0, 0, 262, 262), (138, 0, 400, 262), (0, 38, 262, 300),
                                        (138, 38, 400, 300), centre_box(400, 300)]
    assert ten_crop_boxes(256, 512)[3] == (32, 288, 256, 512)
    rng = np.random.default_rng(3)
    for size, fmt in (((300, 400), "PNG"), ((900, 1200), "JPEG")):  # the JPEG is decoded in draft mode
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buf, format=fmt)
        crops = ten_crop_sample(buf.getvalue(), size=32, resize=40)
        assert crops.shape == (10, 32, 32, 3) and crops.dtype == np.uint8
        assert np.array_equal(crops[5:], crops[:5, :, ::-1])
        assert np.array_equal(crops[4], eval_sample(buf.getvalue(), size=32, resize=40))
        assert not np.array_equal(crops[0], crops[3])
    # the evaluation averages the logits of an image's crops
    from reslab.evaluation import evaluate

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    x, y = torch.randn(6, 10, 3, 4, 4), torch.randint(0, 5, (6,))
    result = evaluate(model, [(x, y)])
    with torch.no_grad():
        logits = torch.stack([model(x[:, k]) for k in range(10)]).mean(0)
    assert result.errors == int((logits.argmax(1) != y).sum()) and result.images == 6
    assert math.isclose(result.loss, float(torch.nn.functional.cross_entropy(logits, y)), rel_tol=1e-6)
