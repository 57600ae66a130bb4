"""The levers of the paper-gap diagnosis do what they say: He et al.'s per-pixel mean, JPEG re-encoding
(deterministic), and weight decay on BatchNorm and bias parameters, checked on exact values."""

import pytest
import torch

from reslab.config import DataConfig, OptimConfig, load_config
from reslab.data import build_data
from reslab.data.arrays import ArrayDataset
from reslab.data.augment import normalize, per_pixel_mean
from reslab.errors import ConfigError


def test_per_pixel_mean_is_the_mean_image_and_is_subtracted_pixel_by_pixel():
    images = torch.tensor([[[[0, 255], [10, 20]]], [[[255, 255], [30, 0]]]], dtype=torch.uint8)  # (2, 1, 2, 2)
    mean = per_pixel_mean(images)
    assert mean == [[[127.5 / 255, 1.0], [20 / 255, 10 / 255]]]
    out = normalize(images, mean, (1.0,), channels_last=False)
    want = images.double() / 255 - torch.tensor(mean, dtype=torch.float64)
    assert torch.allclose(out.double(), want, atol=1e-7)
    assert out.sum(0).abs().max() < 1e-6  # the training images average to zero at every pixel


def test_build_data_with_the_per_pixel_mean(image_folder, tmp_path):
    cfg = DataConfig(dataset="folder", path=str(image_folder), val_size=16, batch_size=16, normalize="pixel",
                     cache_dir=str(tmp_path))
    data = build_data(cfg, seed=0, channels_last=False)
    mean = torch.tensor(data.stats["mean"], dtype=torch.float64)
    assert mean.shape == (3, 8, 8) and data.stats["std"] == [1.0, 1.0, 1.0]
    x, _ = next(iter(data.val))
    raw = data.val.images[: len(x)].double() / 255
    assert torch.allclose(x.double(), raw - mean, atol=1e-6)
    again = build_data(cfg, seed=0, channels_last=False, stats=data.stats)  # a checkpoint's statistics back
    assert torch.equal(next(iter(again.val))[0], x)


def test_jpeg_reencoding_is_deterministic_and_lossier_at_lower_quality(tmp_path):
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(6, 3, 8, 8, generator=g), size=32, mode="bilinear")
    ds = ArrayDataset((smooth * 255).round().to(torch.uint8), torch.arange(6), list("abcdef"))
    q50 = ds.jpeg(50)
    assert torch.equal(q50.images, ds.jpeg(50).images) and torch.equal(q50.labels, ds.labels)
    error = {q: (ds.jpeg(q).images.float() - ds.images.float()).abs().mean().item() for q in (95, 50, 30)}
    assert 0 < error[95] < error[50] < error[30]
    data = build_data(DataConfig(dataset="sample", limit=256, val_size=64, batch_size=32, jpeg_quality=50,
                                 cache_dir=str(tmp_path)), seed=0)
    assert "re-encoded as JPEG q50" in data.description


@pytest.mark.parametrize("override, message", [("--data.jpeg_quality=101", "data.jpeg_quality"),
                                               ('--data.normalize="image"', "data.normalize")])
def test_bad_lever_values_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize("decay_norm_and_bias", [False, True])
def test_weight_decay_reaches_batchnorm_and_biases_only_when_asked(decay_norm_and_bias):
    from reslab.optim import optimizer_from_config

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.Linear(4, 2)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.5, 1.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = OptimConfig(name="sgd", lr=0.1, weight_decay=0.01, decay_norm_and_bias=decay_norm_and_bias,
                      impl="reference")
    opt = optimizer_from_config(cfg, model)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no loss gradient: only the decay moves a parameter
    opt.step()
    for name, p in model.named_parameters():
        w = before[name]
        decayed = p.ndim > 1 or decay_norm_and_bias  # weights always; BN parameters and biases when asked
        want = w - (0.01 * w) * 0.1 if decayed else w
        assert torch.equal(p.detach(), want), name
