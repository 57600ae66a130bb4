"""torchvision's published weight files load into every reslab network with a torchvision name.

The expected keys and shapes are test data written here from torchvision's module layout (resnet.py,
densenet.py, googlenet.py, alexnet.py, vgg.py), independent of reslab's modules; the export is checked
against them, so the key map is not only checked against its own inverse. "Published" files are then
built from a reslab model's random weights the way torchvision's files are laid out (DenseNet's legacy
keys and no ``num_batches_tracked``, GoogLeNet's auxiliary heads, a ``module.`` prefix) and loaded into a
freshly built model, whose logits must equal the source's exactly.

Forward passes (batch 1, 32x32; AlexNet 64x64) run for every name but vgg16, vgg19 and vgg19_bn (over
a second each to initialise on two cores): their key map is the identity, as vgg16_bn's, whose logits
are checked, and their keys and shapes are checked against the table like every other network's.
"""

import re

import pytest
import torch

from reslab.errors import CheckpointError, ConfigError
from reslab.models import create_model, load_torchvision_weights, to_torchvision_state_dict
from reslab.models.googlenet import AuxOutputs

# ---- torchvision's layouts, as test data: key -> shape ------------------------------------------------


def conv(t, name, cout, cin, k, bias=False):
    t[f"{name}.weight"] = (cout, cin, k, k)
    if bias:
        t[f"{name}.bias"] = (cout,)


def bn(t, name, c):
    for s in ("weight", "bias", "running_mean", "running_var"):
        t[f"{name}.{s}"] = (c,)
    t[f"{name}.num_batches_tracked"] = ()


def linear(t, name, cout, cin):
    t[f"{name}.weight"], t[f"{name}.bias"] = (cout, cin), (cout,)


def tv_resnet(depth):
    bottleneck, layers = {18: (False, (2, 2, 2, 2)), 34: (False, (3, 4, 6, 3)), 50: (True, (3, 4, 6, 3)),
                          101: (True, (3, 4, 23, 3)), 152: (True, (3, 8, 36, 3))}[depth]
    t, inplanes = {}, 64
    conv(t, "conv1", 64, 3, 7), bn(t, "bn1", 64)
    for i, (n, planes) in enumerate(zip(layers, (64, 128, 256, 512))):
        out = planes * 4 if bottleneck else planes
        for b in range(n):
            p = f"layer{i + 1}.{b}"
            if bottleneck:
                conv(t, f"{p}.conv1", planes, inplanes, 1), bn(t, f"{p}.bn1", planes)
                conv(t, f"{p}.conv2", planes, planes, 3), bn(t, f"{p}.bn2", planes)
                conv(t, f"{p}.conv3", out, planes, 1), bn(t, f"{p}.bn3", out)
            else:
                conv(t, f"{p}.conv1", planes, inplanes, 3), bn(t, f"{p}.bn1", planes)
                conv(t, f"{p}.conv2", planes, planes, 3), bn(t, f"{p}.bn2", planes)
            if b == 0 and (i > 0 or inplanes != out):  # stride 2 or wider: a projection
                conv(t, f"{p}.downsample.0", out, inplanes, 1), bn(t, f"{p}.downsample.1", out)
            inplanes = out
    linear(t, "fc", 1000, inplanes)
    return t


def tv_densenet121():
    t, c, k = {}, 64, 32
    conv(t, "features.conv0", 64, 3, 7), bn(t, "features.norm0", 64)
    for i, n in enumerate((6, 12, 24, 16), start=1):
        for j in range(1, n + 1):
            p, cin = f"features.denseblock{i}.denselayer{j}", c + (j - 1) * k
            bn(t, f"{p}.norm1", cin), conv(t, f"{p}.conv1", 4 * k, cin, 1)
            bn(t, f"{p}.norm2", 4 * k), conv(t, f"{p}.conv2", k, 4 * k, 3)
        c += n * k
        if i < 4:
            bn(t, f"features.transition{i}.norm", c), conv(t, f"features.transition{i}.conv", c // 2, c, 1)
            c //= 2
    bn(t, "features.norm5", c), linear(t, "classifier", 1000, c)
    return t


def basic_conv(t, name, cout, cin, k):  # torchvision's BasicConv2d: conv without bias, BN
    conv(t, f"{name}.conv", cout, cin, k), bn(t, f"{name}.bn", cout)


def tv_googlenet(aux=True):
    t = {}
    basic_conv(t, "conv1", 64, 3, 7), basic_conv(t, "conv2", 64, 64, 1), basic_conv(t, "conv3", 192, 64, 3)
    for name, (cin, c1, c3r, c3, c5r, c5, pp) in {
            "inception3a": (192, 64, 96, 128, 16, 32, 32), "inception3b": (256, 128, 128, 192, 32, 96, 64),
            "inception4a": (480, 192, 96, 208, 16, 48, 64), "inception4b": (512, 160, 112, 224, 24, 64, 64),
            "inception4c": (512, 128, 128, 256, 24, 64, 64), "inception4d": (512, 112, 144, 288, 32, 64, 64),
            "inception4e": (528, 256, 160, 320, 32, 128, 128), "inception5a": (832, 256, 160, 320, 32, 128, 128),
            "inception5b": (832, 384, 192, 384, 48, 128, 128)}.items():
        basic_conv(t, f"{name}.branch1", c1, cin, 1)
        basic_conv(t, f"{name}.branch2.0", c3r, cin, 1), basic_conv(t, f"{name}.branch2.1", c3, c3r, 3)
        basic_conv(t, f"{name}.branch3.0", c5r, cin, 1), basic_conv(t, f"{name}.branch3.1", c5, c5r, 3)  # 3, not 5
        basic_conv(t, f"{name}.branch4.1", pp, cin, 1)
    if aux:
        for name, cin in (("aux1", 512), ("aux2", 528)):
            basic_conv(t, f"{name}.conv", 128, cin, 1)
            linear(t, f"{name}.fc1", 1024, 2048), linear(t, f"{name}.fc2", 1000, 1024)
    linear(t, "fc", 1000, 1024)
    return t


def tv_alexnet():
    t = {}
    for i, (cout, cin, k) in {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3),
                              10: (256, 256, 3)}.items():
        conv(t, f"features.{i}", cout, cin, k, bias=True)
    for i, (cout, cin) in {1: (4096, 256 * 6 * 6), 4: (4096, 4096), 6: (1000, 4096)}.items():
        linear(t, f"classifier.{i}", cout, cin)
    return t


def tv_vgg(depth, batch_norm):
    cfg = {16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
           19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                512, 512, 512, 512, "M"]}[depth]
    t, i, cin = {}, 0, 3
    for v in cfg:
        if v == "M":
            i += 1
            continue
        conv(t, f"features.{i}", v, cin, 3, bias=True)
        if batch_norm:
            bn(t, f"features.{i + 1}", v)
        i, cin = i + (3 if batch_norm else 2), v
    for i, (cout, cin) in {0: (4096, 512 * 7 * 7), 3: (4096, 4096), 6: (1000, 4096)}.items():
        linear(t, f"classifier.{i}", cout, cin)
    return t


TORCHVISION = {"resnet18": lambda: tv_resnet(18), "resnet34": lambda: tv_resnet(34), "resnet50": lambda: tv_resnet(50),
               "resnet101": lambda: tv_resnet(101), "resnet152": lambda: tv_resnet(152),
               "densenet121": tv_densenet121, "googlenet": tv_googlenet, "alexnet": tv_alexnet,
               "vgg16": lambda: tv_vgg(16, False), "vgg19": lambda: tv_vgg(19, False),
               "vgg16_bn": lambda: tv_vgg(16, True), "vgg19_bn": lambda: tv_vgg(19, True)}
# every torchvision name with logits checked, and the input side it runs at (AlexNet's pools need 64)
FORWARD = {"resnet18": 32, "resnet34": 32, "resnet50": 32, "resnet101": 32, "resnet152": 32, "densenet121": 32,
           "googlenet": 32, "alexnet": 64, "vgg16_bn": 32}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Batch-1 passes on small images: one thread is as fast, and never waits on a busy second core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shapes(state):
    return {k: tuple(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_export_has_exactly_torchvisions_keys_and_shapes(name):
    with torch.device("meta"):
        model = create_model(name)
    assert shapes(to_torchvision_state_dict(model)) == TORCHVISION[name]()


def test_googlenet_without_aux_heads_exports_torchvisions_aux_free_layout():
    with torch.device("meta"):
        model = create_model("googlenet", aux_logits=False)
    assert shapes(to_torchvision_state_dict(model)) == tv_googlenet(aux=False)


# ---- published files, built from reslab weights --------------------------------------------------------

LEGACY = re.compile(r"(denselayer\d+\.(?:norm|conv))([12])\.")


def published(name, model, *, prefix=""):
    """The model's weights laid out as torchvision's file of that name: densenet121 with its pre-0.4 keys
    (``norm.1``) and no ``num_batches_tracked``; googlenet with its aux heads; ``prefix`` on every key."""
    state = to_torchvision_state_dict(model)
    assert shapes(state) == TORCHVISION[name](), "not laid out as torchvision's file"
    if name == "densenet121":
        state = {LEGACY.sub(r"\1.\2.", k): v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        assert "features.denseblock1.denselayer1.norm.1.weight" in state
        assert "features.denseblock4.denselayer16.conv.2.weight" in state
    return {prefix + k: v for k, v in state.items()}


def randomised(model, seed):
    """Random BN scales, shifts and statistics and random biases (on top of the model's random init), at a
    scale that keeps deep logits finite: a swapped mean and variance, or a wrong bias, changes the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.num_batches_tracked.fill_(seed)
            if isinstance(getattr(m, "bias", None), torch.Tensor):
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model.eval()


def blank(name, **options):
    """A freshly built network without its (slow) random init: every weight and statistic 0 and every
    ``num_batches_tracked`` -1, so whatever a load leaves out shows."""
    with torch.device("meta"):
        model = create_model(name, **options)
    model.to_empty(device="cpu")
    with torch.no_grad():
        for key, t in model.state_dict().items():
            t.fill_(-1 if key.endswith("num_batches_tracked") else 0)
    return model.eval()


def logits(model, size):
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1)))
    return out.logits if isinstance(out, AuxOutputs) else out


@pytest.mark.parametrize("name", sorted(FORWARD))
def test_published_layout_loads_into_a_fresh_model_with_identical_logits(name):
    options = {"transform_input": True} if name == "googlenet" else {}  # torchvision's pretrained googlenet
    source = randomised(create_model(name, **options), seed=1)
    fresh = blank(name)
    size = FORWARD[name]
    expected = logits(source, size)
    assert torch.isfinite(expected).all() and not torch.equal(logits(fresh, size), expected)
    assert load_torchvision_weights(fresh, published(name, source, prefix="module.")) is fresh
    assert torch.equal(logits(fresh, size), expected)
    kept = source.state_dict()
    for key, value in fresh.state_dict().items():
        if key.endswith("num_batches_tracked") and name == "densenet121":
            assert value == -1  # not in the legacy file: the model keeps its own
        else:
            assert torch.equal(value, kept[key]), key


def test_files_on_disk_load_with_weights_only(tmp_path):
    for name in ("resnet18", "densenet121"):  # densenet121's published file predates the zip format
        source = randomised(create_model(name), seed=2)
        torch.save(published(name, source), tmp_path / f"{name}.pth",
                   _use_new_zipfile_serialization=name != "densenet121")
        fresh = load_torchvision_weights(create_model(name).eval(), str(tmp_path / f"{name}.pth"))
        assert torch.equal(logits(fresh, 32), logits(source, 32))


def test_googlenet_aux_heads_load_or_drop():
    source = randomised(create_model("googlenet", transform_input=True), seed=3)
    file = published("googlenet", source)
    with_aux = load_torchvision_weights(blank("googlenet"), file)
    assert torch.equal(with_aux.aux2.fc2.weight, source.aux2.fc2.weight)
    without = load_torchvision_weights(blank("googlenet", aux_logits=False), file)
    assert without.aux1 is None and torch.equal(logits(without, 32), logits(source, 32))


def test_googlenet_transform_input_is_torchvisions():
    """Loading sets the published convention: ImageNet-normalised x, each channel to (x01 - 0.5) / 0.5
    before the first convolution (the formula here is written from the convention, not from reslab's)."""
    model = randomised(create_model("googlenet"), seed=4)
    assert model.transform_input is False  # reslab's own networks train on their data's normalisation
    seen = []
    model.conv1.conv.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    x = torch.randn(2, 3, 32, 32)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x01 = x * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)  # undo ImageNet's normalisation
    load_torchvision_weights(model, to_torchvision_state_dict(model))
    assert model.transform_input is True
    with torch.no_grad():
        model(x)
    torch.testing.assert_close(seen[-1], (x01 - 0.5) / 0.5)
    load_torchvision_weights(model, to_torchvision_state_dict(model), transform_input=False)
    with torch.no_grad():
        model(x)
    assert model.transform_input is False and torch.equal(seen[-1], x)
    with pytest.raises(ConfigError, match="GoogLeNet"):
        load_torchvision_weights(create_model("resnet18"), {}, transform_input=True)


def test_strict_false_keeps_what_the_file_lacks():
    source = randomised(create_model("resnet18"), seed=5)
    file = {k: v for k, v in published("resnet18", source).items() if not k.startswith("fc.")}
    fresh = create_model("resnet18", num_classes=1000)
    fc = fresh.fc.weight.clone()
    load_torchvision_weights(fresh, {**file, "extra.weight": torch.zeros(1)}, strict=False)
    assert torch.equal(fresh.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    assert torch.equal(fresh.fc.weight, fc)


# ---- errors: one line each ----------------------------------------------------------------------------


def one_line_error(*args, **kwargs):
    """The CheckpointError of this load: its message one line, no chained traceback."""
    with pytest.raises(CheckpointError) as info:
        load_torchvision_weights(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message and "Traceback" not in message and info.value.__cause__ is None
    assert info.value.__suppress_context__ or info.value.__context__ is None
    return info.value


def test_missing_or_corrupt_file_is_one_line(tmp_path):
    model = create_model("resnet18")
    error = one_line_error(model, tmp_path / "nope.pth")
    assert isinstance(error, FileNotFoundError) and error.filename == str(tmp_path / "nope.pth")
    assert str(error) == f"weights file not found: {tmp_path / 'nope.pth'}"
    (tmp_path / "junk.pth").write_bytes(b"not a torch file at all")
    assert str(one_line_error(model, tmp_path / "junk.pth")).startswith(f"cannot read weights file {tmp_path}")


class TouchOnLoad:
    """Unpickling this would create the file it names: proof that the load ran code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_weights_file_that_carries_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"fc.bias": torch.zeros(2), "x": TouchOnLoad(marker)}, tmp_path / "evil.pth")
    error = str(one_line_error(create_model("resnet18"), tmp_path / "evil.pth"))
    assert "asks to import and call" in error and "never runs code" in error and "weights_only" not in error
    assert not marker.exists()


def test_a_file_that_is_not_a_state_dict_is_one_line(tmp_path):
    model = create_model("resnet18")
    torch.save({"epoch": 3, "model": {"fc.bias": torch.zeros(2)}}, tmp_path / "ckpt.pth")
    assert str(one_line_error(model, tmp_path / "ckpt.pth")) == (
        f"{tmp_path / 'ckpt.pth'} is not a state dict (names to tensors): its entry 'epoch' holds int, not a "
        f"tensor; a training checkpoint? pass the state dict it holds")
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    assert str(one_line_error(model, tmp_path / "list.pth")).endswith("is not a state dict (names to tensors) but a list")
    assert str(one_line_error(model, {})).endswith("but an empty dict")


def test_resnet50_file_into_resnet18_names_counts_and_first_keys(tmp_path):
    r18, r50 = tv_resnet(18), tv_resnet(50)  # in torchvision's order: downsample after a block's bn3
    torch.save({k: torch.zeros(s) for k, s in r50.items()}, tmp_path / "r50.pth")
    message = str(one_line_error(create_model("resnet18"), tmp_path / "r50.pth"))
    assert message.startswith(f"{tmp_path / 'r50.pth'} does not fit this ResNet in torchvision's layout: ")
    assert set(r18) <= set(r50) and "missing" not in message  # resnet18's keys are all in the bigger file
    other = sum(r18[k] != r50[k] for k in r18)
    assert f"{len(set(r50) - set(r18))} unexpected (layer1.0.conv3.weight, layer1.0.bn3.weight, " in message
    assert f"{other} of another shape (file vs model: layer1.0.conv1.weight 64x64x1x1 vs 64x64x3x3, " in message


def test_missing_keys_are_counted_in_torchvisions_names():
    with torch.device("meta"):
        model = create_model("densenet121")
    file = {k: torch.zeros(s) for k, s in tv_densenet121().items() if not k.startswith("features.denseblock4")}
    message = str(one_line_error(model, file))
    missing = [k for k in tv_densenet121() if k.startswith("features.denseblock4") and "num_batches" not in k]
    assert message == (f"the given state dict does not fit this DenseNet in torchvision's layout: {len(missing)} keys "
                       f"missing ({', '.join(missing[:3])}, ... {len(missing) - 3} more)")


def test_networks_without_a_torchvision_counterpart_are_refused():
    with pytest.raises(ConfigError, match="PreActResNet has no torchvision counterpart"):
        load_torchvision_weights(create_model("preact_resnet110"), {"fc.bias": torch.zeros(10)})
