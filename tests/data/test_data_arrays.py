"""ArrayDataset and the stratified split (He et al. 2016's 45,000 / 5,000 hold-out)."""

import pytest
import torch

from reslab.data.arrays import ArrayDataset, mix_seed, stratified_split, stratified_subset


def test_cifar_shaped_split_holds_out_exactly_500_per_class():
    labels = torch.arange(10).repeat_interleave(5000)[torch.randperm(50000)]
    train, val = stratified_split(labels, 5000, seed=0)
    assert len(train) == 45000 and len(val) == 5000
    assert torch.equal(labels[val].bincount(), torch.full((10,), 500))
    assert torch.equal(torch.sort(torch.cat([train, val])).values, torch.arange(50000))
    assert torch.equal(train, train.sort().values) and torch.equal(val, val.sort().values)


def test_split_is_deterministic_per_seed():
    labels = torch.randint(0, 7, (1000,))
    a, b = stratified_split(labels, 100, seed=3), stratified_split(labels, 100, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], stratified_split(labels, 100, seed=4)[1])


def test_uneven_classes_get_proportional_quotas_summing_to_val_size():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    _, val = stratified_split(labels, 11, seed=0)
    assert len(val) == 11
    assert labels[val].bincount().tolist() == [6, 3, 2]  # 5.5, 3.3, 2.2 -> largest remainder goes to class 0


def test_edge_sizes_and_subset():
    labels = torch.randint(0, 3, (30,))
    train, val = stratified_split(labels, 0, seed=0)
    assert len(val) == 0 and len(train) == 30
    assert len(stratified_split(labels, 30, seed=0)[1]) == 30
    with pytest.raises(ValueError):
        stratified_split(labels, 31, seed=0)
    idx = stratified_subset(torch.arange(4).repeat(25), 20, seed=1)
    assert torch.arange(4).repeat(25)[idx].bincount().tolist() == [5, 5, 5, 5]


def test_array_dataset_subset_and_validation():
    images = torch.arange(4 * 3 * 2 * 2, dtype=torch.uint8).view(4, 3, 2, 2)
    ds = ArrayDataset(images, torch.tensor([0, 1, 0, 1]), ["a", "b"])
    sub = ds.subset([3, 1])
    assert len(sub) == 2 and torch.equal(sub.images, images[[3, 1]]) and sub.labels.tolist() == [1, 1]
    with pytest.raises(ValueError):
        ArrayDataset(images.float(), torch.zeros(4, dtype=torch.int64), ["a"])
    with pytest.raises(ValueError):
        ArrayDataset(images, torch.zeros(3, dtype=torch.int64), ["a"])


def test_mix_seed_separates_coordinates():
    seeds = {mix_seed(0, e) for e in range(100)} | {mix_seed(0, e, b) for e in range(10) for b in range(10)}
    assert len(seeds) == 200
    assert mix_seed(1, 2) == mix_seed(1, 2) and 0 <= mix_seed(-5, 7) < 2**63


def test_resized_shrinks_by_block_means_and_keeps_labels():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8, generator=g)
    ds = ArrayDataset(images, torch.arange(5), ["a", "b", "c", "d", "e"])
    half = ds.resized(4)
    blocks = images.double().view(5, 3, 4, 2, 4, 2).mean(dim=(3, 5))  # float64: each 2x2 block's mean
    assert half.images.dtype == torch.uint8 and half.images.shape == (5, 3, 4, 4)
    assert (half.images.double() - blocks).abs().max() <= 0.5 + 1e-6  # rounded to the nearest level
    assert torch.equal(half.labels, ds.labels) and half.classes == ds.classes
    assert ds.resized(8) is ds
    assert ds.resized(16).images.shape == (5, 3, 16, 16)


def test_image_size_resizes_the_embedded_sample(tmp_path):
    from reslab.config import DataConfig
    from reslab.data import build_data

    data = build_data(DataConfig(dataset="sample", image_size=16, cache_dir=str(tmp_path)), seed=0)
    x, _ = next(iter(data.train))
    assert data.image_size == 16 and x.shape[-2:] == (16, 16) and "16x16" in data.description
