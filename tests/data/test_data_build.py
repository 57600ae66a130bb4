"""build_data: a DataConfig becomes train/val loaders with the split, limit and statistics it asks for."""

import pytest
import torch

from reslab.config import DataConfig
from reslab.data import build_data, per_channel_stats
from reslab.errors import DataError


def all_labels(loader):
    return torch.cat([y for _, y in loader])


def test_sample_with_hold_out_and_limit(sample_cache):
    cfg = DataConfig(dataset="sample", val_size=500, limit=1000, batch_size=64, eval_batch_size=300,
                     cache_dir=str(sample_cache))
    data = build_data(cfg, seed=1)
    assert data.num_classes == 10 and data.classes[3] == "cat" and data.image_size == 32
    assert data.train.num_samples == 1000 and len(data.train) == 1000 // 64  # drop_last for training
    assert data.train.labels.bincount().tolist() == [100] * 10
    assert data.val is not None and len(data.val) == 2 and data.val.labels.bincount().tolist() == [50] * 10
    assert data.train.shuffle and data.train.augment and not data.val.shuffle and not data.val.augment
    assert (data.mean, data.std) == per_channel_stats(data.train.images)  # training part only
    assert "1,000 train / 500 val" in data.description
    x, y = next(iter(data.val))
    assert x.shape == (300, 3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
    # The hold-out depends on split_seed only, not on the run seed.
    again = build_data(cfg, seed=2)
    assert torch.equal(again.val.images, data.val.images)
    other = build_data(DataConfig(**{**cfg.__dict__, "split_seed": 1}), seed=1)
    assert not torch.equal(other.val.images, data.val.images)


def test_cifar_hold_out_and_test_split(tmp_path, make):
    c = make.cifar(tmp_path, per_batch=20)  # 100 training, 20 test images
    base = dict(dataset="cifar10", path=str(c.folder.parent), batch_size=8, augment=False)
    held = build_data(DataConfig(**base, val_size=10), seed=0)
    assert held.train.num_samples == 90 and held.val.num_samples == 10
    assert sorted(torch.cat([held.train.labels, held.val.labels]).tolist()) == sorted(c.train_labels.tolist())
    test = build_data(DataConfig(**base, test_split=True), seed=0)
    assert test.train.num_samples == 100
    assert torch.equal(test.val.images, torch.from_numpy(c.test_images))
    assert all_labels(test.val).tolist() == c.test_labels.tolist()
    assert "official test set" in test.description
    none = build_data(DataConfig(**base, val_size=0), seed=0)
    assert none.val is None and none.train.num_samples == 100


def test_folder_dataset(tmp_path, make):
    make.image_folder(tmp_path / "imgs", {"a": 6, "b": 4})
    data = build_data(DataConfig(dataset="folder", path=str(tmp_path / "imgs"), val_size=5, batch_size=2,
                                 cache_dir=str(tmp_path / "c")), seed=0)
    assert data.classes == ["a", "b"] and data.image_size == 8 and data.train.num_samples == 5
    assert data.val.labels.tolist() == [0, 0, 0, 1, 1]


def test_given_statistics_replace_the_computed_ones(sample_cache):
    cfg = DataConfig(dataset="sample", val_size=500, cache_dir=str(sample_cache))
    data = build_data(cfg, seed=0, stats={"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]})
    assert data.mean == (0.5,) * 3 and data.std == (0.25,) * 3 and data.val.std == (0.25,) * 3
    assert build_data(cfg, seed=0, stats=((0.1, 0.2, 0.3), (1, 1, 1))).stats == {"mean": [0.1, 0.2, 0.3],
                                                                                 "std": [1.0, 1.0, 1.0]}
    with pytest.raises(DataError, match="3 means"):
        build_data(cfg, seed=0, stats={"mean": [0.5], "std": [0.2]})


@pytest.mark.parametrize("changes, message", [
    (dict(dataset="imagenet"), "unknown dataset 'imagenet'"),
    (dict(dataset="cifar10"), "data.path must name the cifar10"),
    (dict(dataset="folder", path="/nonexistent/imgs"), "not found: /nonexistent/imgs"),
    (dict(dataset="cifar100", path="/nonexistent/c100"), "no cifar100 data at /nonexistent/c100"),
    (dict(dataset="sample", test_split=True), "test_split needs cifar10 or cifar100"),
    (dict(dataset="sample", val_size=5000), "val_size = 5000 leaves no training images"),
    (dict(dataset="sample", val_size=500, limit=50, batch_size=128), "50 training images are fewer than one batch"),
])
def test_config_errors(sample_cache, changes, message):
    with pytest.raises(DataError, match=message):
        build_data(DataConfig(**{"cache_dir": str(sample_cache), **changes}), seed=0)
