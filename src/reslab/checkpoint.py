"""Checkpoints: written atomically, loaded without executing code.

A checkpoint is a dict of tensors and plain Python values saved with ``torch.save`` and read with
``torch.load(weights_only=True)``, so a file from elsewhere can never run code. Writing goes to a
temporary file in the same folder, is fsynced, then renamed over the target: a crash leaves either the
old file or the new one, never half of one.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from reslab.errors import CheckpointError, CheckpointNotFound
from reslab.rundir import FORMAT
from reslab.rundir.files import atomic_write_bytes


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write atomically; a failure of the file system (no space, read-only) is one line, and the
    previous file at ``path`` is left intact."""
    path = Path(path)
    state = {**state, "format": FORMAT}
    try:
        atomic_write_bytes(path, lambda f: torch.save(state, f))
    except OSError as e:
        kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
        raise CheckpointError(f"cannot write {path}: {e.strerror or e}; {kept}") from None



# Format 0 stored the callbacks' states as a list, in the order of a callback list that depended on
# command-line flags. Each state that was not empty belonged to one callback, recognisable by its keys.
_FORMAT0_KEYS = {"checkpointer": {"best_error"},
                 "early_stopping": {"best", "best_step", "bad_evals", "best_weights", "stopped_step"}}


def migrate(state: dict[str, Any], source: Path) -> dict[str, Any]:
    """A checkpoint of any earlier format in today's: callback state keyed by each callback's ``state_key``."""
    version = state.get("format", 0)
    if not isinstance(version, int) or version > FORMAT:
        raise CheckpointError(f"{source} has checkpoint format {version!r}; this reslab reads up to {FORMAT}")
    if version == 0 and isinstance(state.get("callbacks"), list):
        keyed = {}
        for cb_state in state["callbacks"]:
            if not cb_state:
                continue  # a callback without state (metrics, TensorBoard, progress, gradient recorder)
            key = next((k for k, keys in _FORMAT0_KEYS.items() if set(cb_state) == keys), None)
            if key is None:
                raise CheckpointError(f"{source}: a callback state with keys {sorted(cb_state)} is not one "
                                      f"reslab ever wrote")
            keyed[key] = cb_state
        state = {**state, "callbacks": keyed}
    return {**state, "format": FORMAT}


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFound(f"checkpoint not found: {path}", path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as e:
        raise CheckpointError.unreadable("checkpoint", path, e) from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a reslab checkpoint (no model state)")
    return migrate(state, path)


RESUME_KEYS = ("model", "optimizer", "lr_controller", "step", "epoch", "rng")


def require_resumable(state: dict[str, Any], path: Path) -> None:
    """A checkpoint to resume from holds the whole training state, not just weights (as a best-weights checkpoint does)."""
    missing = [k for k in RESUME_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} cannot be resumed from: it has no {', '.join(missing)} (a best-weights "
                              f"checkpoint holds weights only; resume from the run's last checkpoint)")


def load_model_state(model: torch.nn.Module, state: dict[str, Any], *, source: str, model_name: str | None = None) -> None:
    """Load weights strictly; a checkpoint of another architecture is a one-line error."""
    saved_name = state.get("model_name")
    if model_name is not None and saved_name is not None and saved_name != model_name:
        raise CheckpointError(f"{source} holds a {saved_name} model, not {model_name}")
    if not isinstance(state.get("model"), dict):
        raise CheckpointError(f"{source}: its 'model' entry is a {type(state.get('model')).__name__}, not a state dict")
    try:
        model.load_state_dict(state["model"], strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise CheckpointError(f"{source} does not fit this model ({detail[:200]})") from None
