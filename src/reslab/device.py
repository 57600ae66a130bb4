"""Device and precision are decided here, once."""

from __future__ import annotations

import contextlib
import os

import torch

from reslab.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device is {name!r} but no CUDA device is available")
    return device


def cpu_supports_bf16() -> bool:
    """bf16 that ATen will really run fast: the CPU has the instructions (AVX-512 BF16 or AMX) *and*
    ATen dispatches at the AVX-512 level. ``ATEN_CPU_CAPABILITY=avx2`` lowers the dispatch level, as a
    laptop without AVX-512 has it, and then bf16 would be emulated slowly: fp32 instead."""
    if not torch.backends.cpu.get_cpu_capability().upper().startswith("AVX512"):
        return False
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 where the hardware runs it natively (AVX-512 BF16 / AMX CPUs, Ampere+ GPUs), else fp32."""
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise ConfigError("train.precision fp16 is for CUDA; use bf16 or fp32 on a CPU")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_supports_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def usable_cores() -> int:
    """The cores this process may run on: its affinity where the system says, else all of them."""
    cores = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        cores = min(cores, len(os.sched_getaffinity(0)))
    return max(1, cores)
