"""reslab.memory: freed tensors are reused instead of mapped and zeroed afresh (glibc only).

Allocator settings are per process, so each case runs in a child process of its own."""

import json
import os
import platform
import subprocess
import sys

import pytest

from reslab.memory import keep_freed_memory

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="keep_freed_memory tunes glibc's malloc only")

CHILD = """
import json, resource, sys, torch
from reslab.memory import keep_freed_memory
applied = keep_freed_memory()
sizes = [1 << 20, 4 << 20, 16 << 20, 40 << 20]  # bytes: like a step's activations, one above glibc's 32 MiB cap
def step():
    tensors = [torch.empty(n // 4).fill_(1.0) for n in sizes]  # touch every page
    del tensors
def faults_of_a_step():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
for _ in range(10):  # the heap settles into the pattern within a few steps
    step()
faults = sorted(faults_of_a_step() for _ in range(9))[4]  # the median step
print(json.dumps({"applied": applied, "fault_share": faults / (sum(sizes) / 4096)}))
"""


def run_child(**env) -> dict:
    full = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"} | env
    out = subprocess.run([sys.executable, "-c", CHILD], env=full, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_freed_tensors_are_reused_without_page_faults():
    kept = run_child(RESLAB_KEEP_FREED_MEMORY="1")
    default = run_child(RESLAB_KEEP_FREED_MEMORY="0")
    assert kept["applied"] and not default["applied"]
    assert default["fault_share"] > 0.5  # glibc's default maps (and the kernel zeroes) most pages again each step
    assert kept["fault_share"] < 0.05  # kept: once the heap has settled, every step reuses freed memory


@glibc
def test_the_users_own_malloc_tunables_win():
    assert run_child(GLIBC_TUNABLES="glibc.malloc.arena_max=2")["applied"] is False


def test_off_switch(monkeypatch):
    monkeypatch.setenv("RESLAB_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False
