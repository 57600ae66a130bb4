"""The residual block's equations, the shortcut options, plain/residual twins and stochastic depth."""

import math

import pytest
import torch
from torch import nn

from reslab.models import count_params, create_model
from reslab.models.layers import PadShortcut, StochasticDepth, survival_probs
from reslab.models.preact import PreActBasicBlock
from reslab.models.resnet import BasicBlock, Bottleneck, ResNet


def zero_branch(block):
    norm = getattr(block, block.last_norm)
    nn.init.zeros_(norm.weight)
    nn.init.zeros_(norm.bias)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
def test_block_with_zero_branch_is_relu_of_shortcut(shortcut, train):
    for in_planes, planes, stride in ((8, 8, 1), (8, 16, 2)):
        block = BasicBlock(in_planes, planes, stride, shortcut=shortcut).train(train)
        zero_branch(block)
        x = torch.randn(4, in_planes, 8, 8)
        out = block(x)
        assert torch.equal(out, torch.relu(block.shortcut(x)))
        if shortcut == "A" or (shortcut == "B" and in_planes == planes and stride == 1):
            expected = torch.relu(PadShortcut(in_planes, planes, stride)(x))  # the identity, zero-padded
            assert torch.equal(out, expected)


def test_identity_block_with_zero_branch_is_exactly_relu_x():
    block = BasicBlock(6, 6, shortcut="A")
    zero_branch(block)
    x = torch.randn(3, 6, 5, 5)
    assert torch.equal(block(x), torch.relu(x))


def test_pad_shortcut_is_identity_on_old_channels_and_zero_on_new():
    x = torch.randn(2, 4, 8, 8)
    y = PadShortcut(4, 10, 2)(x)
    assert y.shape == (2, 10, 4, 4)
    assert torch.equal(y[:, :4], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 4:]) == 0


def _jacobian_fd(f, x, eps=1e-6):
    """Central finite differences of f at x (float64), shape (out.numel(), x.numel())."""
    flat = x.detach().flatten()
    cols = []
    for i in range(flat.numel()):
        d = torch.zeros_like(flat)
        d[i] = eps
        cols.append(((f((flat + d).view_as(x)) - f((flat - d).view_as(x))) / (2 * eps)).flatten())
    return torch.stack(cols, dim=1)


@pytest.mark.parametrize("block_cls", [BasicBlock, Bottleneck])
def test_gradient_through_block_is_upstream_times_dF_plus_identity(block_cls):
    """dL/dx = dL/dH (dF/dx + 1) for H = F(x) + x, with dF/dx measured by finite differences."""
    torch.manual_seed(1)
    planes = 3
    in_planes = planes * block_cls.expansion
    block = block_cls(in_planes, planes, 1, shortcut="A").double().eval()
    for m in block.modules():  # non-trivial BN statistics so F is a generic function
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, in_planes, 4, 4, dtype=torch.float64)
    upstream = torch.randn(1, in_planes, 4, 4, dtype=torch.float64)  # dL/dH

    with torch.no_grad():
        jac_f = _jacobian_fd(block.residual, x)  # dF/dx
    eye = torch.eye(x.numel(), dtype=torch.float64)
    expected = upstream.flatten() @ (jac_f + eye)

    xg = x.clone().requires_grad_(True)
    h = block.residual(xg) + block.shortcut(xg)
    (autograd,) = torch.autograd.grad(h, xg, upstream)
    torch.testing.assert_close(autograd.flatten(), expected, rtol=1e-6, atol=1e-7)
    # The identity term alone carries dL/dH back even where dF/dx vanishes.
    assert not torch.allclose(expected, upstream.flatten() @ jac_f)


@pytest.mark.parametrize("depths", [("plain20", "resnet20"), ("plain56", "resnet56"),
                                    ("plain18", "resnet18"), ("plain34", "resnet34")])
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_plain_and_residual_twins_differ_in_the_shortcut_alone(depths, shortcut):
    plain_name, res_name = depths
    with torch.device("meta"):
        plain = create_model(plain_name)
        res = create_model(res_name, shortcut=shortcut)
    p = {k: v.shape for k, v in plain.state_dict().items()}
    r = {k: v.shape for k, v in res.state_dict().items()}
    assert set(p) <= set(r)
    assert all(p[k] == r[k] for k in p)
    extra = set(r) - set(p)
    assert all(".downsample." in k for k in extra)
    assert bool(extra) == (shortcut == "B")
    projections = sum(v.numel() for k, v in res.named_parameters() if ".downsample." in k)
    assert count_params(res) - count_params(plain) == projections


def test_plain_network_has_no_shortcut():
    model = create_model("plain20")
    block = model.blocks()[0]
    nn.init.zeros_(block.bn2.weight)
    nn.init.zeros_(block.bn2.bias)
    x = torch.randn(2, 16, 8, 8)
    assert torch.count_nonzero(block(x)) == 0  # no identity to fall back on


def test_option_c_projects_every_shortcut():
    model = create_model("resnet20", shortcut="C")
    assert all(b.downsample is not None for b in model.blocks())
    model_b = create_model("resnet20", shortcut="B")
    assert sum(b.downsample is not None for b in model_b.blocks()) == 2


def test_torchvision_state_dict_layout():
    with torch.device("meta"):
        sd18 = create_model("resnet18").state_dict()
        sd50 = create_model("resnet50").state_dict()
    shapes = {
        "conv1.weight": (64, 3, 7, 7), "bn1.running_var": (64,), "layer1.0.conv1.weight": (64, 64, 3, 3),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1), "layer2.0.downsample.1.num_batches_tracked": (),
        "layer4.1.bn2.weight": (512,), "fc.weight": (1000, 512), "fc.bias": (1000,),
    }
    for k, s in shapes.items():
        assert tuple(sd18[k].shape) == s, k
    assert "layer1.0.downsample.0.weight" not in sd18
    assert tuple(sd50["layer1.0.downsample.0.weight"].shape) == (256, 64, 1, 1)
    assert tuple(sd50["layer3.5.conv3.weight"].shape) == (1024, 256, 1, 1)
    assert tuple(sd50["layer2.0.conv2.weight"].shape) == (128, 128, 3, 3)  # stride on the 3x3 (v1.5)
    # a conv has 1 key, a BN 5: resnet18 = stem 6 + 8 blocks x 12 + 3 projections x 6 + fc 2,
    # resnet50 = stem 6 + 16 bottlenecks x 18 + 4 projections x 6 + fc 2
    assert len(sd18) == 6 + 8 * 12 + 3 * 6 + 2 == 122
    assert len(sd50) == 6 + 16 * 18 + 4 * 6 + 2 == 320
    # strict loading of a state dict with the same layout
    fresh = create_model("resnet18")
    fresh.load_state_dict(create_model("resnet18").state_dict(), strict=True)


def test_zero_init_residual_starts_every_block_as_identity():
    model = create_model("resnet20", zero_init_residual=True, shortcut="B").eval()
    x = torch.randn(2, 16, 32, 32)
    for block in model.blocks():
        assert torch.equal(block(x), torch.relu(block.shortcut(x)))
        x = block(x)


def test_preact110_count_follows_from_resnet110():
    # Two 1x1 projections (16->32, 32->64) and a final BN (64 channels) are added; the stem BN goes;
    # the first BN of the two down-sampling blocks normalises the block input (16, 32) instead of 32, 64.
    expected = 1_727_962 + (16 * 32 + 32 * 64) + 2 * 64 - 2 * 16 - 2 * (16 + 32)
    with torch.device("meta"):
        assert count_params(create_model("preact_resnet110")) == expected


def test_preact_block_has_no_relu_after_addition():
    block = PreActBasicBlock(4, 4).eval()
    nn.init.zeros_(block.conv2.weight)
    x = torch.randn(2, 4, 6, 6)
    assert torch.equal(block(x), x)  # negative values pass through: H = F + x


# -- stochastic depth --------------------------------------------------------------------------------

def test_linear_decay_rule():
    probs = survival_probs(54, 0.5)
    assert probs[0] == pytest.approx(1 - 0.5 / 54)
    assert probs[-1] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(probs, probs[1:]))
    model = create_model("resnet110", survival_prob=0.5)
    assert [b.drop.p for b in model.blocks()] == pytest.approx(probs)
    with pytest.raises(ValueError):
        survival_probs(10, 0.0)


def _tiny_resnet(**options):
    return ResNet(BasicBlock, [3, 3, 3], (2, 2, 2), num_classes=2, **options)


def _assert_rates_match(kept, total, blocks):
    for l, (k, b) in enumerate(zip(kept, blocks), start=1):
        p = b.drop.p
        assert p == pytest.approx(1 - l / len(blocks) * 0.5)
        sigma = math.sqrt(p * (1 - p) / total)
        assert abs(k / total - p) < 4.5 * sigma, (l, k / total, p)


def test_empirical_survival_rate_matches_p_l_per_batch():
    model = _tiny_resnet(survival_prob=0.5, drop_mode="batch").train()
    blocks = model.blocks()
    kept = [0] * len(blocks)
    for i, b in enumerate(blocks):  # a dropped block never computes its branch
        b.conv1.register_forward_hook(lambda m, inp, out, i=i: kept.__setitem__(i, kept[i] + 1))
    passes = 3000
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        for _ in range(passes):
            model(x)
    _assert_rates_match(kept, passes, blocks)


def test_empirical_survival_rate_matches_p_l_per_sample():
    model = _tiny_resnet(survival_prob=0.5, drop_mode="sample").train()
    blocks = model.blocks()
    kept = [0] * len(blocks)

    def count_surviving_samples(i):
        def hook(module, inputs, output):  # the gated branch is zero exactly for dropped samples
            kept[i] += int((output != 0).flatten(1).any(1).sum())
        return hook

    for i, b in enumerate(blocks):
        b.drop.register_forward_hook(count_surviving_samples(i))
    batch, passes = 100, 40
    x = torch.randn(batch, 3, 8, 8)
    with torch.no_grad():
        for _ in range(passes):
            model(x)
    _assert_rates_match(kept, batch * passes, blocks)


def test_eval_is_deterministic_and_scales_the_branch_by_p_l():
    model = _tiny_resnet(survival_prob=0.5).eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        h = torch.relu(model.bn1(model.conv1(x)))
        for block in model.blocks():
            expected = torch.relu(block.drop.p * block.residual(h) + block.shortcut(h))
            out = block(h)
            torch.testing.assert_close(out, expected, rtol=0, atol=0)
            h = out


def test_dropped_batch_block_is_relu_of_identity():
    block = BasicBlock(4, 4, survival_prob=0.5).train()
    x = torch.randn(2, 4, 5, 5)
    outs = [block(x) for _ in range(60)]
    dropped = [o for o in outs if torch.equal(o, torch.relu(x))]
    assert 10 < len(dropped) < 50


def test_stochastic_depth_needs_a_shortcut():
    with pytest.raises(Exception, match="needs a shortcut"):
        create_model("plain20", survival_prob=0.5)


def test_stochastic_depth_module_validates():
    with pytest.raises(ValueError):
        StochasticDepth(1.5)
    with pytest.raises(ValueError):
        StochasticDepth(0.5, mode="layer")
