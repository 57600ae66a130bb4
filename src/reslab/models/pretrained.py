"""torchvision's published weight files in reslab's networks, and reslab's weights out in torchvision's layout.

Convention: reslab never renames its modules for torchvision (saved runs and ``densenet_bc_100_12`` keep
their keys); the names are mapped when weights are loaded or exported. One function per family spells
reslab's key as torchvision's (:data:`TORCHVISION_KEY`); loading uses its inverse, so the two directions
cannot disagree. ResNet, GoogLeNet, AlexNet and VGG already share torchvision's keys; DenseNet differs:

    reslab                           torchvision
    stem.0 / stem.1                  features.conv0 / features.norm0
    stages.{2i}.layers.{j}.*         features.denseblock{i+1}.denselayer{j+1}.*
    stages.{2i+1}.*                  features.transition{i+1}.*
    norm_final / fc                  features.norm5 / classifier

What a file may hold besides that layout: a ``module.`` prefix on every key (DataParallel, DDP);
DenseNet's legacy keys (``denselayer1.norm.1.weight`` for ``norm1.weight``, as in the published
densenet121 file); no ``num_batches_tracked`` (files saved before PyTorch 0.4.1: the model's own are
kept); GoogLeNet's ``aux1``/``aux2`` heads (loaded, or dropped when the model was built without them).

GoogLeNet's published weights expect torchvision's ``transform_input``: ImageNet-normalised input,
rescaled per channel to ``(x - 0.5) / 0.5`` inside the network. Loading sets the model's option of
that name (True unless told otherwise), so the loaded model gives torchvision's logits on the same input.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from reslab.errors import CheckpointError, CheckpointNotFound, ConfigError
from reslab.models.classic import Classic
from reslab.models.densenet import DenseNet
from reslab.models.googlenet import GoogLeNet
from reslab.models.resnet import ResNet

Source = str | os.PathLike | Mapping[str, Tensor]

_SHOWN = 3  # keys named in an error message, per kind of mismatch


def _same(key: str) -> str:
    return key


_DENSE_LAYER = re.compile(r"stages\.(\d+)\.layers\.(\d+)\.(.+)")
_DENSE_STAGE = re.compile(r"stages\.(\d+)\.(.+)")
_DENSE_PREFIXES = {"stem.0.": "features.conv0.", "stem.1.": "features.norm0.", "norm_final.": "features.norm5.",
                   "fc.": "classifier."}


def _densenet_key(key: str) -> str:
    """A reslab DenseNet key as torchvision's (stages alternate dense block, transition)."""
    for ours, theirs in _DENSE_PREFIXES.items():
        if key.startswith(ours):
            return theirs + key[len(ours):]
    if m := _DENSE_LAYER.fullmatch(key):
        stage, layer, rest = int(m[1]), int(m[2]), m[3]
        return f"features.denseblock{stage // 2 + 1}.denselayer{layer + 1}.{rest}"
    if m := _DENSE_STAGE.fullmatch(key):
        stage, rest = int(m[1]), m[2]
        return f"features.transition{(stage + 1) // 2}.{rest}"
    return key


# reslab key -> torchvision key, per family; families not listed have no torchvision counterpart.
TORCHVISION_KEY: dict[type[nn.Module], Callable[[str], str]] = {
    ResNet: _same, GoogLeNet: _same, Classic: _same, DenseNet: _densenet_key}
# heads a torchvision file may carry that a reslab model built without them drops
OPTIONAL_HEADS: dict[type[nn.Module], tuple[str, ...]] = {GoogLeNet: ("aux1.", "aux2.")}

# DenseNet's keys before PyTorch 0.4 ("norm.1" for "norm1"), still in the published densenet121 file
_LEGACY_DENSE = re.compile(r"(.*denselayer\d+\.(?:norm|relu|conv))\.([12])\.([a-z_]+)")


def _family(model: nn.Module) -> type[nn.Module]:
    family = next((cls for cls in TORCHVISION_KEY if isinstance(model, cls)), None)
    if family is None:
        raise ConfigError(f"{type(model).__name__} has no torchvision counterpart; torchvision weights load into "
                          f"{', '.join(cls.__name__ for cls in TORCHVISION_KEY)}")
    return family


def _key_map(model: nn.Module) -> dict[str, str]:
    """reslab key -> torchvision key for every entry of the model's state dict."""
    to_theirs = TORCHVISION_KEY[_family(model)]
    names = {key: to_theirs(key) for key in model.state_dict()}
    assert len(set(names.values())) == len(names), "the torchvision key map must be one-to-one"
    return names


def to_torchvision_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The model's state dict with torchvision's keys (tensors shared with the model, as ``state_dict``).

    ``torch.save`` it for torchvision's model of the same name; for a GoogLeNet build that one with
    ``transform_input=model.transform_input`` (a convention, not a weight, so not in the file).
    """
    names = _key_map(model)
    return {names[key]: value for key, value in model.state_dict().items()}


def _read(source: Source) -> tuple[dict[str, Tensor], str]:
    """The state dict at ``source`` (a file, read with ``weights_only=True``, or a dict) and its name for errors."""
    if isinstance(source, Mapping):
        state, name = source, "the given state dict"
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise CheckpointNotFound(f"weights file not found: {path}", path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as e:
            raise CheckpointError.unreadable("weights file", path, e) from None
    if not isinstance(state, Mapping) or not state:
        what = "an empty dict" if isinstance(state, Mapping) else f"a {type(state).__name__}"
        raise CheckpointError(f"{name} is not a state dict (names to tensors) but {what}")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            nested = any(isinstance(v, Mapping) for v in state.values())
            hint = "; a training checkpoint? pass the state dict it holds" if nested else ""
            raise CheckpointError(f"{name} is not a state dict (names to tensors): its entry {key!r} holds "
                                  f"{type(value).__name__}, not a tensor{hint}")
    return dict(state), name


def _as_published(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Today's torchvision keys: without a ``module.`` prefix on every key, DenseNet's legacy keys renamed."""
    if all(key.startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}
    return {(f"{m[1]}{m[2]}.{m[3]}" if (m := _LEGACY_DENSE.fullmatch(key)) else key): value
            for key, value in state.items()}


def _shape(t: Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def _listed(keys: list[str]) -> str:
    more = f", ... {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def _mismatch(name: str, model: nn.Module, missing: list[str], unexpected: list[str], shapes: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} keys missing ({_listed(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_listed(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} of another shape (file vs model: {_listed(shapes)})")
    return f"{name} does not fit this {type(model).__name__} in torchvision's layout: {'; '.join(parts)}"


def load_torchvision_weights(model: nn.Module, source: Source, *, strict: bool = True,
                             transform_input: bool | None = None) -> nn.Module:
    """Load torchvision weights (a ``.pth`` state dict file, or the dict itself) into a reslab network, in place.

    Args:
        model: a reslab ResNet, DenseNet, GoogLeNet, AlexNet or VGG built with the file's options (e.g.
            ``create_model("resnet50")``: the same depth, classes, ``norm``, no ``small_input``).
        source: a path (read with ``torch.load(map_location="cpu", weights_only=True)``) or a state dict.
        strict: every weight of the model in the file and nothing else (a GoogLeNet built without
            auxiliary heads ignores the file's). ``strict=False`` loads the keys both have and leaves the
            rest; a shape mismatch is an error either way.
        transform_input: GoogLeNet only: whether the weights expect torchvision's input transform; the
            model's option is set to it. None: True, the convention of torchvision's published file.

    Returns:
        The model, with the file's weights (and, for a GoogLeNet, ``transform_input`` set).

    Raises:
        CheckpointError: a missing or unreadable file, not a state dict, keys missing or unexpected,
            shapes that differ: one line naming how many and the first few (in torchvision's names).
        ConfigError: a network without a torchvision counterpart; ``transform_input`` for a non-GoogLeNet.
    """
    if transform_input is not None and not isinstance(model, GoogLeNet):
        raise ConfigError(f"transform_input is GoogLeNet's convention; {type(model).__name__} has none")
    names = _key_map(model)
    state, name = _read(source)
    state = _as_published(state)
    ours = model.state_dict()
    by_theirs = {theirs: key for key, theirs in names.items()}
    for head in OPTIONAL_HEADS.get(_family(model), ()):
        if not any(key.startswith(head) for key in ours):
            state = {key: value for key, value in state.items() if not key.startswith(head)}

    missing = [theirs for key, theirs in names.items() if theirs not in state
               and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in state if key not in by_theirs]
    shapes = [f"{key} {_shape(value)} vs {_shape(ours[by_theirs[key]])}"
              for key, value in state.items() if key in by_theirs and value.shape != ours[by_theirs[key]].shape]
    if shapes or (strict and (missing or unexpected)):
        raise CheckpointError(_mismatch(name, model, missing if strict else [], unexpected if strict else [],
                                        shapes))

    loaded = {by_theirs[key]: value for key, value in state.items() if key in by_theirs}
    for key, value in ours.items():  # a file older than num_batches_tracked: keep the model's own
        if key.endswith("num_batches_tracked") and key not in loaded:
            loaded[key] = value
    try:
        model.load_state_dict(loaded, strict=strict)
    except RuntimeError as e:  # checked above; a last guard that the message stays one line
        raise CheckpointError(f"{name} does not fit this {type(model).__name__}: "
                              f"{str(e).strip().splitlines()[-1].strip()[:200]}") from None
    if isinstance(model, GoogLeNet):
        model.transform_input = True if transform_input is None else transform_input
    return model
