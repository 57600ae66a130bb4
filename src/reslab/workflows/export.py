"""Export a trained network for use outside reslab: safetensors + ``config.json``, or ONNX.

- ``safetensors``: the weights the run evaluated (the EMA's where there is one) as ``model.safetensors``
  beside a ``config.json`` that rebuilds the network (:mod:`reslab.models.weights`); read back at once
  and compared bit for bit with the checkpoint.
- ``onnx``: the network in eval mode, traced by ``torch.onnx.export`` at opset 18 or later, with a
  dynamic batch dimension (input ``images`` (N, C, H, W), output ``logits``), and checked by running
  it in onnxruntime on batches of 1 and 3 random images against PyTorch's output: the largest
  difference relative to the largest logit must stay under ``ONNX_TOLERANCE``.

A checkpoint whose weights do not fit the architecture it names is refused in one line, before
anything is written.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import torch

from reslab.checkpoint import load_checkpoint
from reslab.errors import ConfigError, ReslabError
from reslab.models import model_info
from reslab.models.weights import CONFIG_FILE, load_weights, save_weights, weights_config
from reslab.rundir import Folder
from reslab.workflows.restore import locate_checkpoint, model_from_checkpoint

FORMATS = ("safetensors", "onnx")
ONNX_OPSET = 18
ONNX_TOLERANCE = 1e-4  # max |onnxruntime - PyTorch| / max |PyTorch|, float32 on the CPU
ONNX_FILE = "model.onnx"


def export_checkpoint(target: str | Path, fmt: str, out: str | Path | None = None, *,
                      opset: int = ONNX_OPSET) -> dict[str, Any]:
    """Export a run folder's best checkpoint (or a checkpoint file) to ``out`` (default: the run's
    ``export/<format>/``). Returns what was written and how it was checked."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    if opset < ONNX_OPSET:
        raise ConfigError(f"ONNX opset {opset}: reslab exports opset {ONNX_OPSET} or later")
    ckpt_path, run = locate_checkpoint(Path(target))
    state = load_checkpoint(ckpt_path)
    model = model_from_checkpoint(state, ckpt_path)  # refuses weights that do not fit the named network
    folder = Path(out) if out is not None else (run or Folder(ckpt_path.parent)).export_dir(fmt)
    stats = state.get("data_stats") or {}
    size = int(state.get("image_size") or model_info(state["model_name"]).input_size)
    channels = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
    config = weights_config(state["model_name"], state.get("model_options", {}), state["num_classes"],
                            image_size=size, channels=channels, mean=stats.get("mean"), std=stats.get("std"),
                            classes=state.get("classes"))
    report = {"checkpoint": str(ckpt_path), "model": state["model_name"], "format": fmt, "folder": str(folder),
              "input_size": config["input_size"]}
    if fmt == "safetensors":
        weights, meta = save_weights(model, folder, config)
        reloaded = load_weights(folder, name=state["model_name"])
        expected = model.state_dict()
        same = all(torch.equal(v, expected[k]) for k, v in reloaded.state_dict().items())
        if not same:  # would be a bug in the writer or reader: never leave a wrong file behind silently
            raise ReslabError(f"{weights} does not read back to the checkpoint's weights")
        report.update(files=[str(weights), str(meta)], check="read back: every tensor equal bit for bit")
        return report
    path, meta = _export_onnx(model, folder, config, opset)
    errors = check_onnx(model, path, config["input_size"])
    report.update(files=[str(path), str(meta)], opset=opset, tolerance=ONNX_TOLERANCE,
                  max_relative_error={str(b): e for b, e in errors.items()},
                  check=f"onnxruntime against PyTorch at batch 1 and 3: within {ONNX_TOLERANCE:g}")
    return report


def _onnx_modules():
    try:
        import onnx  # noqa: F401
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError:
        raise ReslabError("ONNX export needs the onnx extra: pip install 'reslab[onnx]'") from None
    return onnxruntime


def _export_onnx(model: torch.nn.Module, folder: Path, config: dict[str, Any], opset: int) -> tuple[Path, Path]:
    _onnx_modules()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ONNX_FILE
    example = torch.randn(2, *config["input_size"])
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    chatter = io.StringIO()  # the exporter prints its stages; keep them out of reslab's output
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter), torch.no_grad():
            torch.onnx.export(model.eval(), (example,), str(path), opset_version=opset, input_names=["images"],
                              output_names=["logits"], dynamic_shapes=({0: batch},), dynamo=True)
    except Exception as e:  # the exporter raises many types; one line names the network and the cause
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ReslabError(f"ONNX export of {config['architecture']} failed: {first}") from None
    finally:
        quiet.setLevel(level)
    meta = folder / CONFIG_FILE
    meta.write_text(json.dumps({**config, "onnx_opset": opset}, indent=2) + "\n")
    return path, meta


def check_onnx(model: torch.nn.Module, path: Path, input_size, batches=(1, 3), seed: int = 0) -> dict[int, float]:
    """Largest |onnxruntime - PyTorch| relative to the largest PyTorch logit, per batch size; raises if
    any exceeds ``ONNX_TOLERANCE``."""
    ort = _onnx_modules()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    errors = {}
    for b in batches:
        x = torch.randn(b, *input_size, generator=g)
        with torch.no_grad():
            want = model.eval()(x).float()
        got = torch.from_numpy(session.run(["logits"], {"images": x.numpy()})[0])
        errors[b] = float((got - want).abs().max() / want.abs().max().clamp(min=1e-12))
        if not errors[b] <= ONNX_TOLERANCE:
            raise ReslabError(f"{path}: onnxruntime's logits differ from PyTorch's by {errors[b]:.2e} of the "
                              f"largest at batch {b} (tolerance {ONNX_TOLERANCE:g})")
    return errors
