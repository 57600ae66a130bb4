"""Peak memory of a command and every process it starts, summed (Linux /proc; no dependency).

``/usr/bin/time -v`` reports the largest single process, which misses a pool of workers: ``reslab demo``
trains two runs at once in two worker processes beside the parent. This samples the whole process tree
every ``--every`` seconds (0.25; reading every process's smaps costs a little CPU itself, so time the
command without this tool) and reports the peak of the summed RSS and of the summed PSS (shared pages, such as torch's
libraries mapped by every process, counted once in all), with the command's wall time.

    python benchmarks/tree_memory.py -- python -m reslab demo --out /tmp/demo
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += children(p)
    return seen


def kib(pid: int, field: str, file: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=float, default=0.25, help="seconds between samples")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    start = time.perf_counter()
    child = subprocess.Popen(cmd)
    peak_rss = peak_pss = most = 0
    while child.poll() is None:
        pids = tree(child.pid)
        peak_rss = max(peak_rss, sum(kib(p, "VmRSS", "status") for p in pids))
        peak_pss = max(peak_pss, sum(kib(p, "Pss", "smaps_rollup") for p in pids))
        most = max(most, len(pids))
        time.sleep(args.every)
    wall = time.perf_counter() - start
    print(f"wall {int(wall // 60)} min {wall % 60:04.1f} s; peak of the tree ({most} processes at most): "
          f"RSS {peak_rss / 2**20:.2f} GiB, PSS {peak_pss / 2**20:.2f} GiB; exit {child.returncode}", file=sys.stderr)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
