"""Weights to share: a folder with ``model.safetensors`` and a ``config.json`` that says how to rebuild
the network, the layout the Hugging Face Hub and timm use.

``config.json`` (written by ``reslab export --format safetensors``)::

    {"architecture": "resnet20",              the registered name (reslab models)
     "model_options": {"shortcut": "A"},      the builder's options
     "num_classes": 10, "label_names": [...],
     "input_size": [3, 32, 32], "mean": [...], "std": [...],   the input the network was trained on (0-1 scale)
     "library": "reslab", "reslab_version": "0.1.0", "format": 1}

safetensors holds tensors only (no pickled code), so a weights file cannot run anything when loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from reslab import __version__
from reslab.errors import CheckpointError, CheckpointNotFound

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = 1


def weights_config(name: str, options: dict[str, Any], num_classes: int, *, image_size: int, channels: int = 3,
                   mean=None, std=None, classes=None) -> dict[str, Any]:
    """The ``config.json`` of an exported network (see the module docstring)."""
    return {"architecture": name, "model_options": dict(options), "num_classes": int(num_classes),
            "label_names": list(classes) if classes else None, "input_size": [channels, image_size, image_size],
            "mean": list(mean) if mean is not None else None, "std": list(std) if std is not None else None,
            "library": "reslab", "reslab_version": __version__, "format": FORMAT}


def save_weights(model: nn.Module, folder: str | Path, config: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``model``'s state dict (parameters and buffers) as safetensors beside its ``config.json``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # safetensors refuses tensors that share memory: every entry gets storage of its own
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    weights, meta = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    save_file(state, str(weights), metadata={"format": "pt", "architecture": config["architecture"]})
    meta.write_text(json.dumps(config, indent=2) + "\n")
    return weights, meta


def _files(path: str | Path) -> tuple[Path, Path]:
    path = Path(path).expanduser()
    folder = path if path.is_dir() else path.parent
    weights = path if path.is_file() else folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointNotFound(f"no {WEIGHTS_FILE} at {path}", weights)
    meta = folder / CONFIG_FILE
    if not meta.is_file():
        raise CheckpointNotFound(f"no {CONFIG_FILE} beside {weights}: it says which network the weights are for", meta)
    return weights, meta


def read_weights_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of an exported folder (or of the folder of a ``model.safetensors`` file)."""
    _, meta = _files(path)
    try:
        config = json.loads(meta.read_text())
        # checks, not asserts: ``python -O`` strips those
        if not (isinstance(config, dict) and isinstance(config["architecture"], str)
                and isinstance(config.get("model_options", {}), dict) and int(config["num_classes"]) > 0):
            raise ValueError(meta)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise CheckpointError(f"{meta} is not a reslab weights config (architecture, model_options, "
                              f"num_classes)") from None
    return config


def load_weights(path: str | Path, *, name: str | None = None, num_classes: int | None = None,
                 **options: Any) -> nn.Module:
    """The network an exported folder describes, with its weights, in eval mode.

    ``name``, ``num_classes``: refuse weights of any other architecture or class count
    (``create_model(name, weights=path)``); ``options``: builder options that change nothing the weights
    fix (for example ``survival_prob``).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from reslab.models import create_model

    weights, _ = _files(path)
    config = read_weights_config(path)
    if name is not None and config["architecture"] != name:
        raise CheckpointError(f"{weights} holds a {config['architecture']} network, not {name}")
    if num_classes is not None and num_classes != int(config["num_classes"]):
        raise CheckpointError(f"{weights} holds a {config['num_classes']}-class {config['architecture']}, "
                              f"not {num_classes} classes")
    model = create_model(config["architecture"], num_classes=int(config["num_classes"]),
                         **{**config.get("model_options", {}), **options})
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights} is not a readable safetensors file ({str(e).splitlines()[0][:120]})") from None
    missing, unexpected = sorted(set(model.state_dict()) - set(state)), sorted(set(state) - set(model.state_dict()))
    if missing or unexpected:
        raise CheckpointError(f"{weights} does not fit {config['architecture']}: {len(missing)} missing "
                              f"({', '.join(missing[:3])}), {len(unexpected)} unexpected ({', '.join(unexpected[:3])})")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        detail = [ln.strip() for ln in str(e).splitlines() if ln.strip()][-1]
        raise CheckpointError(f"{weights} does not fit {config['architecture']} ({detail[:160]})") from None
    return model.eval()


__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "load_weights", "read_weights_config", "save_weights", "weights_config"]
