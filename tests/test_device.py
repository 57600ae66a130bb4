"""precision="auto" follows what ATen will really run: bf16 only where the CPU has bf16 instructions
and ATen dispatches at the AVX-512 level (ATEN_CPU_CAPABILITY=avx2 emulates a laptop: fp32)."""

import os
import subprocess
import sys

import pytest
import torch

from reslab.device import resolve_precision


@pytest.mark.parametrize("capability, hardware, expected", [
    ("AVX512", True, "bf16"), ("AVX2", True, "fp32"), ("DEFAULT", True, "fp32"), ("AVX512", False, "fp32"),
    ("AVX2", False, "fp32")])
def test_auto_precision_follows_the_dispatch_level_and_the_hardware(monkeypatch, capability, hardware, expected):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: hardware)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"  # asked for: given, whatever the CPU


def test_the_avx2_emulation_gets_fp32_by_itself():
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    code = "import torch; from reslab.device import resolve_precision; print(resolve_precision('auto', torch.device('cpu')))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "fp32"
