"""Pad-crop-flip on whole batches (He et al. 2016, section 4.2), normalisation and channel statistics."""

import pytest
import torch

from reslab.data.augment import normalize, per_channel_stats, random_crop_flip

H = W = 32
P = 4


def coordinate_images(n):
    """Channel 0 = row + 1, channel 1 = column + 1, channel 2 = random: crops and flips are readable."""
    x = torch.empty(n, 3, H, W, dtype=torch.uint8)
    x[:, 0] = torch.arange(1, H + 1, dtype=torch.uint8)[:, None]
    x[:, 1] = torch.arange(1, W + 1, dtype=torch.uint8)[None, :]
    x[:, 2] = torch.randint(0, 256, (n, H, W), dtype=torch.uint8)
    return x


def recover(out):
    """Per image: (offset_y, offset_x, flipped), read back from the coordinate channels."""
    result = []
    for img in out:
        rows, cols = (img[0] > 0).nonzero(as_tuple=True)[0], (img[1] > 0).nonzero(as_tuple=True)[1]
        i, j = int(rows[0]), int(cols[0])
        dy = int(img[0, i, j]) - 1 - i + P
        c = img[1, i].long()
        flipped = bool((c[c > 0].diff() < 0).any())
        dx = int(c[j]) - 1 + P - (W - 1 - j if flipped else j)
        result.append((dy, dx, flipped))
    return result


def reference(x, dy, dx, flipped):
    padded = torch.nn.functional.pad(x, (P, P, P, P))
    crop = padded[:, dy:dy + H, dx:dx + W]
    return crop.flip(-1) if flipped else crop


def test_crop_offsets_and_flips_are_exactly_a_padded_crop():
    x = coordinate_images(600)
    out = random_crop_flip(x, padding=P, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    params = recover(out)
    for k, (dy, dx, flipped) in enumerate(params):
        assert 0 <= dy <= 2 * P and 0 <= dx <= 2 * P
        assert torch.equal(out[k], reference(x[k], dy, dx, flipped))  # zeros exactly where the crop leaves the image
    assert {p[0] for p in params} == set(range(2 * P + 1)) == {p[1] for p in params}  # every offset occurs


def test_flip_rate_is_one_half():
    x = coordinate_images(4000)
    out = random_crop_flip(x, generator=torch.Generator().manual_seed(1))
    rate = sum(f for _, _, f in recover(out)) / len(out)
    assert 0.46 < rate < 0.54  # 4000 draws: sd 0.008


def test_same_generator_seed_same_batch_and_device_agnostic_draws():
    x = coordinate_images(16)
    a = random_crop_flip(x, generator=torch.Generator().manual_seed(5))
    b = random_crop_flip(x, generator=torch.Generator().manual_seed(5))
    c = random_crop_flip(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(random_crop_flip(x, padding=0, generator=torch.Generator().manual_seed(5))[:, 0], x[:, 0])


def test_normalize_values_dtype_and_layout():
    x = torch.randint(0, 256, (4, 3, 5, 6), dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    out = normalize(x, mean, std)
    want = (x.double() / 255 - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(
        std, dtype=torch.float64).view(1, 3, 1, 1)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.double(), want, atol=1e-5, rtol=1e-5)
    plain = normalize(x, mean, std, channels_last=False)
    assert plain.is_contiguous() and torch.equal(plain, out)
    assert normalize(x, mean, std, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_per_channel_stats_exact():
    x = torch.randint(0, 256, (50, 3, 7, 7), dtype=torch.uint8)
    mean, std = per_channel_stats(x, chunk=16)
    f = x.double() / 255
    assert mean == pytest.approx(f.mean(dim=(0, 2, 3)).tolist(), abs=1e-12)
    assert std == pytest.approx(f.std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-12)
