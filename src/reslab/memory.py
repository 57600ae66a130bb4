"""How the process's C allocator treats the memory a training step frees.

PyTorch's CPU tensors come from ``malloc``. glibc's ``malloc`` serves every block above its mmap
threshold (128 KiB at first, rising by itself to at most 32 MiB) with a fresh ``mmap`` and hands it back
to the kernel on ``free``, and it trims the top of its heap whenever 128 KiB lie free there. A training
step allocates and frees its activations and gradients every step, so every step the kernel maps, faults
in and zeroes the same few hundred megabytes again: 16,000-30,000 page faults a step for resnet20 at batch
128, a tenth of the step spent in the kernel (measured, ``benchmarks/allocator.py``).

:func:`keep_freed_memory` raises both thresholds to 1 GiB, so freed blocks stay in the heap and the next
step reuses them. Peak memory is what the step needs either way; the process just no longer returns it
between steps. Results are bit for bit the same (only where the memory comes from changes).
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers, from glibc's <malloc.h>
THRESHOLD = 1 << 30
OFF_SWITCH = "RESLAB_KEEP_FREED_MEMORY"  # "0": leave the allocator as it is


def keep_freed_memory(threshold: int = THRESHOLD) -> bool:
    """Make glibc keep freed blocks below ``threshold`` bytes for reuse instead of returning them to the
    kernel (``mallopt`` M_MMAP_THRESHOLD and M_TRIM_THRESHOLD). Returns whether it did: not where the C
    library is not glibc (macOS, Windows, musl), nor with ``RESLAB_KEEP_FREED_MEMORY=0``, nor when the
    user set glibc's malloc tunables (``GLIBC_TUNABLES``) themselves. Affects this process only: a worker
    process calls it again."""
    if os.environ.get(OFF_SWITCH, "1") == "0" or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    mallopt = _glibc("mallopt", [ctypes.c_int, ctypes.c_int])
    if mallopt is None:
        return False
    # setting either also stops glibc from moving the mmap threshold by itself
    return bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(mallopt(M_TRIM_THRESHOLD, threshold))


def release_freed_memory() -> bool:
    """Hand the free memory that :func:`keep_freed_memory` keeps in the heap back to the kernel (glibc's
    ``malloc_trim``), for a process about to sit idle while others work: a sweep's parent while its workers
    train keeps no tensors but would otherwise hold what its last work freed. Returns whether it could."""
    trim = _glibc("malloc_trim", [ctypes.c_size_t])
    if trim is None:
        return False
    trim(0)
    return True


def _glibc(name: str, argtypes: list):
    """glibc's function ``name`` (returning an int), or None where the C library is another or lacks it."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        fn = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = argtypes, ctypes.c_int
    return fn
