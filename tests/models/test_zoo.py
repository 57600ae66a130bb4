"""Every registered network: builds, runs forward and backward, and has the published parameter count."""

import pytest
import torch
from torch import nn

from reslab.errors import ConfigError
from reslab.models import count_params, create_model, describe, list_models, model_info
from reslab.models.googlenet import AuxOutputs
from reslab.registry import UnknownNameError

ALL = list_models()
HEAVY = {"resnet1202", "preact_resnet1001", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "resnet152", "resnet101"}


def test_zoo_has_every_network_of_the_lecture():
    expected = {"plain20", "plain32", "plain44", "plain56", "plain110", "resnet20", "resnet32", "resnet44",
                "resnet56", "resnet110", "resnet1202", "resnet18", "resnet34", "resnet50", "resnet101",
                "resnet152", "plain18", "plain34", "preact_resnet110", "preact_resnet164", "preact_resnet1001",
                "densenet_bc_100_12", "densenet121", "googlenet", "lenet5", "alexnet", "vgg16", "vgg19",
                "vgg16_bn", "vgg19_bn"}
    assert expected <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_parameter_count_matches_published(name):
    info = model_info(name)
    if info.published_params is None:
        pytest.skip(f"{name} has no published count; test_blocks derives it from a related network")
    with torch.device("meta"):
        model = create_model(name)
    assert count_params(model, exclude=("aux1", "aux2")) == info.published_params


@pytest.mark.parametrize("name", ALL)
def test_forward_backward(name):
    info = model_info(name)
    size = 32 if info.input_size == 32 else 64  # ImageNet layouts pool adaptively: 64x64 keeps this fast
    model = create_model(name, num_classes=7)
    model.train()
    x = torch.randn(2, 3, size, size)
    out = model(x)
    if isinstance(out, AuxOutputs):
        assert all(a.shape == (2, 7) for a in out.aux_logits)
        loss = out.logits.sum() + sum(a.sum() for a in out.aux_logits)
        out = out.logits
    else:
        loss = out.sum()
    assert out.shape == (2, 7)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).shape == (1, 7)
        feats = model.forward_features(x[:1])
        assert model.forward_head(feats).shape == (1, 7)
    assert len(model.blocks()) > 0


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "plain18", "densenet121", "googlenet", "alexnet", "vgg16_bn"])
def test_small_input_option_runs_on_32x32(name):
    model = create_model(name, num_classes=10, small_input=True)
    out = model(torch.randn(2, 3, 32, 32))
    out = out.logits if isinstance(out, AuxOutputs) else out
    assert out.shape == (2, 10)


def test_lenet5_has_the_classic_count_on_grayscale():
    # C1 156 + C3 2,416 + C5 48,120 + F6 10,164 + output 850
    assert count_params(create_model("lenet5", in_channels=1)) == 61_706


def test_googlenet_aux_heads_only_in_training():
    model = create_model("googlenet", num_classes=5, small_input=True)
    x = torch.randn(2, 3, 32, 32)
    out = model.train()(x)
    assert isinstance(out, AuxOutputs) and len(out.aux_logits) == 2 and out.aux_weight == 0.3
    assert model.eval()(x).shape == (2, 5)
    assert isinstance(create_model("googlenet", aux_logits=False).train()(torch.randn(1, 3, 64, 64)), torch.Tensor)


def test_googlenet_paper_5x5_option():
    model = create_model("googlenet", paper_5x5=True)
    assert model.inception3a.branch3[1].conv.kernel_size == (5, 5)
    assert create_model("googlenet").inception3a.branch3[1].conv.kernel_size == (3, 3)


def test_densenet_growth_rate():
    model = create_model("densenet_bc_100_12")
    block = model.stages[0]
    # layer l (1-based) sees k0 + k(l-1) maps: k0 = 2k = 24, k = 12
    for l, layer in enumerate(block.layers, start=1):
        assert layer.conv1.in_channels == 24 + 12 * (l - 1)
        assert layer.conv1.out_channels == 4 * 12  # bottleneck of 4k
        assert layer.conv2.out_channels == 12
    transition = model.stages[1]
    assert transition.conv.out_channels == block.out_planes // 2  # compression 0.5


def test_norm_none_removes_every_batchnorm():
    for name in ("resnet20", "plain20", "vgg16", "densenet_bc_100_12", "preact_resnet110"):
        model = create_model(name, norm="none")
        assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), name


def test_describe_counts_flops():
    d = describe("resnet20")
    # He et al. report ~41M multiply-adds for ResNet-20; the counter counts 2 FLOPs per multiply-add.
    assert 75e6 < d["flops"] < 90e6
    assert d["params"] == 269_722


def test_unknown_model_and_option_are_clear_errors():
    with pytest.raises(UnknownNameError, match="did you mean .*resnet20"):
        create_model("resnet21")
    with pytest.raises(ConfigError, match="no option 'depth_scale'"):
        create_model("resnet20", depth_scale=2)
    with pytest.raises(ConfigError, match="shortcut must be one of"):
        create_model("resnet20", shortcut="D")


def test_no_device_or_dtype_baked_in():
    model = create_model("resnet20").to(torch.float64)
    assert model(torch.randn(2, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64


def test_model_info_says_residual_and_twin():
    for name in list_models():
        info = model_info(name)
        if info.twin is not None:
            twin = model_info(info.twin)
            assert twin.twin == name and twin.residual != info.residual and twin.depth == info.depth
            assert count_params(create_model(name)) == count_params(create_model(info.twin)) or info.depth in (18, 34)
    assert model_info("resnet56").residual and model_info("resnet56").twin == "plain56"
    assert not model_info("plain56").residual and not model_info("densenet_bc_100_12").residual


def test_one_word_for_plain():
    with pytest.raises(ConfigError, match="use the plain model"):
        create_model("resnet20", shortcut="none")
    assert not any(b.has_shortcut for b in create_model("plain20").blocks())
    assert all(b.has_shortcut for b in create_model("resnet20").blocks())


def test_blocks_declare_the_interface_the_block_analyses_use():
    from torch import nn

    from reslab.models import NotAnalysable, ShortcutBlock, shortcut_blocks

    for name in ("resnet20", "plain20", "preact_resnet110", "resnet50"):
        assert all(isinstance(b, ShortcutBlock) for b in shortcut_blocks(create_model(name), "test"))

    class Odd(nn.Module):
        def blocks(self):
            return [nn.Conv2d(1, 1, 1)]

    with pytest.raises(NotAnalysable, match="Conv2d is not one"):
        shortcut_blocks(Odd(), "lesion study")
    with pytest.raises(NotAnalysable, match="has none"):
        shortcut_blocks(create_model("lenet5").features, "lesion study")
