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


RELEASE = """
import json, torch
from pathlib import Path
from reslab.memory import keep_freed_memory, release_freed_memory
def rss():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024
keep_freed_memory()
before = rss()
blocks = [torch.empty((8 << 20) // 4).fill_(1.0) for _ in range(25)]  # 200 MB in blocks the heap keeps
del blocks
kept = rss() - before
released = release_freed_memory()
print(json.dumps({"kept": kept, "after": rss() - before, "released": released}))
"""


@glibc
def test_an_idle_process_hands_the_kept_memory_back():
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "RESLAB_KEEP_FREED_MEMORY")}
    out = subprocess.run([sys.executable, "-c", RELEASE], env=env, check=True, capture_output=True, text=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["released"] and r["kept"] > 150e6  # kept in the heap after the tensors were freed
    assert r["after"] < 20e6, r  # handed back
