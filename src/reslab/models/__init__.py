"""The model zoo: ``create_model(name, ...)`` builds any registered network as a plain ``nn.Module``.

Every model has ``forward_features`` / ``forward_head`` (the features/head split) and ``blocks()``
(its residual, dense or inception blocks, in forward order, for analysis). Blocks that the lesion,
path and stochastic-depth analyses can take apart implement :class:`ShortcutBlock`.
:func:`load_torchvision_weights` loads torchvision's published weight files into the networks that
carry a torchvision name (:func:`to_torchvision_state_dict` exports the other way).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reslab.errors import ConfigError
from reslab.models import classic, densenet, googlenet, preact, resnet
from reslab.models.pretrained import load_torchvision_weights, to_torchvision_state_dict
from reslab.models.protocol import NotAnalysable, ShortcutBlock, shortcut_blocks
from reslab.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str
    input_size: int  # side of the images the network was published for
    num_classes: int  # classes of the dataset it was published for (the default)
    published_params: int | None  # the paper's or torchvision's count, where one exists
    reference: str
    residual: bool = False  # its blocks add identity shortcuts (False: plain, dense, inception, classic)
    twin: str | None = None  # the network that differs from this one in the shortcut alone
    depth: int | None = None  # weighted layers, as in the name (resnet56: 56)


def _register(name: str, factory, *, family: str, input_size: int, num_classes: int,
              params: int | None = None, reference: str, residual: bool = False, twin: str | None = None,
              depth: int | None = None) -> None:
    MODELS.register(name, factory, info=ModelInfo(name, family, input_size, num_classes, params, reference,
                                                  residual, twin, depth))


HE2016 = "He et al. 2016, Deep Residual Learning for Image Recognition"

# CIFAR networks, He et al. section 4.2 (option A shortcuts; parameter counts of the paper's 0.27M ... 19.4M).
CIFAR_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962, 1202: 19_421_274}
CIFAR_PLAIN = (20, 32, 44, 56, 110)
for _depth, _params in CIFAR_PARAMS.items():
    _register(f"resnet{_depth}", partial(resnet.cifar_resnet, _depth), family="resnet-cifar", input_size=32,
              num_classes=10, params=_params, reference=HE2016 + ", section 4.2", residual=True, depth=_depth,
              twin=f"plain{_depth}" if _depth in CIFAR_PLAIN else None)
for _depth in CIFAR_PLAIN:  # a plain twin has exactly the parameters of option A
    _register(f"plain{_depth}", partial(resnet.cifar_resnet, _depth, residual=False), family="plain-cifar",
              input_size=32, num_classes=10, params=CIFAR_PARAMS[_depth], reference=HE2016 + ", section 4.2",
              depth=_depth, twin=f"resnet{_depth}")

# ImageNet networks, He et al. Table 1; counts equal torchvision's.
IMAGENET_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
IMAGENET_PLAIN = (18, 34)
for _depth, _params in IMAGENET_PARAMS.items():
    _register(f"resnet{_depth}", partial(resnet.imagenet_resnet, _depth), family="resnet-imagenet",
              input_size=224, num_classes=1000, params=_params, reference=HE2016 + ", Table 1", residual=True,
              depth=_depth, twin=f"plain{_depth}" if _depth in IMAGENET_PLAIN else None)
for _depth in IMAGENET_PLAIN:  # no published count: the twin test checks them against their residual twins
    _register(f"plain{_depth}", partial(resnet.imagenet_resnet, _depth, residual=False), family="plain-imagenet",
              input_size=224, num_classes=1000, reference=HE2016 + ", Table 1", depth=_depth, twin=f"resnet{_depth}")

PREACT = "He et al. 2016, Identity Mappings in Deep Residual Networks"
_register("preact_resnet110", partial(preact.preact_resnet, 110, bottleneck=False), family="preact-cifar",
          input_size=32, num_classes=10, reference=PREACT, residual=True, depth=110)
_register("preact_resnet164", partial(preact.preact_resnet, 164, bottleneck=True), family="preact-cifar",
          input_size=32, num_classes=10, params=1_703_258, reference=PREACT, residual=True, depth=164)
_register("preact_resnet1001", partial(preact.preact_resnet, 1001, bottleneck=True), family="preact-cifar",
          input_size=32, num_classes=10, params=10_327_706, reference=PREACT, residual=True, depth=1001)

DENSENET = "Huang et al. 2017, Densely Connected Convolutional Networks"
_register("densenet_bc_100_12", partial(densenet.densenet_bc_cifar, 100, 12), family="densenet", input_size=32,
          num_classes=10, params=769_162, reference=DENSENET)
_register("densenet121", partial(densenet.densenet_imagenet, (6, 12, 24, 16), 32), family="densenet",
          input_size=224, num_classes=1000, params=7_978_856, reference=DENSENET)

_register("googlenet", googlenet.GoogLeNet, family="googlenet", input_size=224, num_classes=1000,
          params=6_624_904, reference="Szegedy et al. 2015, Going Deeper with Convolutions (count without aux heads)")

_register("lenet5", classic.lenet5, family="classic", input_size=32, num_classes=10,
          reference="LeCun et al. 1998, Gradient-Based Learning Applied to Document Recognition")
_register("alexnet", classic.alexnet, family="classic", input_size=224, num_classes=1000, params=61_100_840,
          reference="Krizhevsky et al. 2012")
for _depth, _plain, _bn in ((16, 138_357_544, 138_365_992), (19, 143_667_240, 143_678_248)):
    _register(f"vgg{_depth}", partial(classic.vgg, _depth), family="classic", input_size=224, num_classes=1000,
              params=_plain, reference="Simonyan & Zisserman 2015")
    _register(f"vgg{_depth}_bn", partial(classic.vgg, _depth, norm="bn"), family="classic", input_size=224,
              num_classes=1000, params=_bn, reference="Simonyan & Zisserman 2015")


def list_models() -> list[str]:
    """Names of every registered network."""
    return MODELS.names()


def model_info(name: str) -> ModelInfo:
    return MODELS.entry(name).meta["info"]


def create_model(name: str, *, num_classes: int | None = None, weights: str | Path | None = None,
                 **options: Any) -> nn.Module:
    """Build a registered network.

    Args:
        name: one of :func:`list_models`.
        num_classes: output size; by default that of the dataset the network was published for
            (10 for the CIFAR networks, 1000 for the ImageNet ones).
        options: the builder's keyword options (``shortcut``, ``norm``, ``survival_prob``,
            ``drop_mode``, ``zero_init_residual``, ``small_input`` ...).
        weights: a folder written by ``reslab export --format safetensors`` (or its ``model.safetensors``):
            the network is built as its ``config.json`` says, loaded, and returned in eval mode; weights of
            another architecture or class count are refused.

    Raises:
        UnknownNameError: for an unknown name; ConfigError: for an unknown or invalid option.
    """
    entry = MODELS.entry(name)
    if weights is not None:
        from reslab.models.weights import load_weights

        return load_weights(weights, name=name, num_classes=num_classes, **options)
    classes = entry.meta["info"].num_classes if num_classes is None else num_classes
    try:
        return entry.factory(num_classes=classes, **options)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            bad = str(e).split("unexpected keyword argument")[-1].strip()
            raise ConfigError(f"model {name!r} has no option {bad}") from None
        raise
    except ValueError as e:
        raise ConfigError(f"model {name!r}: {e}") from None


def check_options(name: str, options: dict[str, Any], *, num_classes: int | None = None) -> None:
    """Refuse unknown option names and invalid values by building the network on the meta device
    (no memory, no time): a ConfigError naming the model, before anything touches the disk."""
    with torch.device("meta"):
        create_model(name, num_classes=num_classes, **options)


def input_size(model_name: str, options: dict[str, Any] | None = None) -> int:
    """Side of the input images a model expects with these options (32 with ``small_input=True``)."""
    if options and options.get("small_input"):
        return 32
    return model_info(model_name).input_size


def count_params(model: nn.Module, *, exclude: tuple[str, ...] = ()) -> int:
    """Number of parameters, leaving out submodules whose top-level name is in ``exclude``."""
    return sum(p.numel() for n, p in model.named_parameters() if n.split(".")[0] not in exclude)


def count_flops(model: nn.Module, size: int, *, channels: int = 3) -> int:
    """Forward FLOPs of one image (torch.utils.flop_counter: a multiply-add counts as 2), eval mode.

    The model may live on the ``meta`` device, which makes this instant for any size.
    """
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.empty(1, channels, size, size, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops()


def describe(name: str, **options: Any) -> dict[str, Any]:
    """Name, parameters and forward FLOPs of one model, built on the meta device (no memory used)."""
    info = model_info(name)
    with torch.device("meta"):
        model = create_model(name, **options)
    params = count_params(model, exclude=("aux1", "aux2"))
    size = input_size(name, options)
    return {"name": name, "family": info.family, "params": params, "flops": count_flops(model, size),
            "input": size, "published_params": info.published_params, "reference": info.reference}


__all__ = ["MODELS", "ModelInfo", "NotAnalysable", "ShortcutBlock", "check_options", "count_flops", "count_params",
           "create_model", "describe", "input_size", "list_models", "load_torchvision_weights", "model_info",
           "shortcut_blocks", "to_torchvision_state_dict"]
