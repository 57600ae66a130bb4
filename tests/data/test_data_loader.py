"""BatchLoader: full coverage per epoch, determinism, and exact resumption from state_dict."""

import pytest
import torch

from reslab.data.arrays import ArrayDataset
from reslab.data.loader import BatchLoader
from reslab.errors import DataError


def indexed_dataset(n=103, size=8):
    """Image k is filled with k % 251 (so x tells which image it is), label k."""
    images = (torch.arange(n) % 251).to(torch.uint8).view(n, 1, 1, 1).expand(n, 3, size, size).contiguous()
    return ArrayDataset(images, torch.arange(n), [str(k) for k in range(n)])


def loader(ds, **kw):
    options = dict(batch_size=10, shuffle=True, augment=False, mean=(0.0,) * 3, std=(1.0,) * 3, seed=7)
    return BatchLoader(ds, **{**options, **kw})


def test_every_index_once_per_epoch_and_x_matches_y():
    ds = indexed_dataset()
    dl = loader(ds)
    assert len(dl) == 11
    orders = []
    for epoch in range(3):
        seen = []
        for x, y in dl:
            assert x.dtype == torch.float32 and x.shape[1:] == (3, 8, 8) and y.dtype == torch.int64
            assert x.is_contiguous(memory_format=torch.channels_last)
            assert torch.equal((x[:, 0, 0, 0] * 255).round().long(), y % 251)
            seen.append(y)
        seen = torch.cat(seen)
        assert torch.equal(seen.sort().values, torch.arange(103))
        orders.append(seen)
        assert dl.epoch == epoch + 1 and dl.position == 0
    assert not torch.equal(orders[0], orders[1])  # reshuffled each epoch


def test_drop_last_and_unshuffled_order():
    ds = indexed_dataset()
    dl = loader(ds, drop_last=True, shuffle=False)
    assert len(dl) == 10
    ys = torch.cat([y for _, y in dl])
    assert torch.equal(ys, torch.arange(100))


def test_same_seed_same_batches_other_seed_differs():
    ds = indexed_dataset()
    a = [(x, y) for _ in range(2) for x, y in loader(ds, augment=True, seed=1)]
    b = [(x, y) for _ in range(2) for x, y in loader(ds, augment=True, seed=1)]
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    c = [y for _, y in loader(ds, augment=True, seed=2)]
    assert not torch.equal(torch.cat(c), torch.cat([y for _, y in a[:11]]))


def test_resume_mid_epoch_matches_uninterrupted():
    ds = ArrayDataset(torch.randint(0, 256, (57, 3, 12, 12), dtype=torch.uint8), torch.randint(0, 5, (57,)),
                      list("abcde"))
    reference = loader(ds, augment=True)
    want = [batch for _ in range(3) for batch in reference]  # three epochs of 6 batches

    first = loader(ds, augment=True)
    got = list(first)  # epoch 0
    for batch in first:  # stop holding batch 3 of epoch 1
        got.append(batch)
        if first.position == 4:
            break
    state = first.state_dict()
    assert state == {"epoch": 1, "position": 4, "seed": 7}

    resumed = loader(ds, augment=True, seed=999)  # the seed comes from the state
    resumed.load_state_dict(state)
    while len(got) < len(want):
        got += list(resumed)
    assert len(got) == len(want)
    for (xa, ya), (xb, yb) in zip(got, want):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_breaking_out_and_iterating_again_continues_the_epoch():
    ds = indexed_dataset()
    dl = loader(ds)
    it = iter(dl)
    head = [next(it)[1] for _ in range(4)]
    del it
    tail = [y for _, y in dl]
    assert torch.equal(torch.cat(head + tail).sort().values, torch.arange(103))
    assert dl.state_dict()["epoch"] == 1


def test_state_that_does_not_fit_is_an_error():
    dl = loader(indexed_dataset())
    with pytest.raises(DataError, match="batch 11"):
        dl.load_state_dict({"epoch": 0, "position": 11, "seed": 0})


def test_augmented_batches_keep_shape_and_change_pixels():
    ds = ArrayDataset(torch.randint(1, 256, (64, 3, 16, 16), dtype=torch.uint8), torch.zeros(64, dtype=torch.int64),
                      ["a"])
    plain = next(iter(loader(ds, batch_size=64, shuffle=False)))[0]
    aug = next(iter(loader(ds, batch_size=64, shuffle=False, augment=True)))[0]
    assert aug.shape == plain.shape and not torch.equal(aug, plain)
    assert torch.equal((plain * 255).round(), ds.images.float())  # augment off: the images themselves
