"""``reslab train --nproc N``: the same command again in N processes, through torch's own launcher."""

from __future__ import annotations

import os

from reslab.errors import ReslabError


def launch_processes(nproc: int, argv: list[str]) -> int:
    """``reslab train ... --nproc N``: the same command in N processes, through torch's own launcher
    (what ``torchrun --standalone --nproc_per_node=N -m reslab ...`` does)."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    # Share the cores between the processes (torchrun would set 1 thread each, with a warning).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    try:
        torchrun.main(["--standalone", f"--nproc_per_node={nproc}", "-m", "reslab", *argv])
    except ChildFailedError as e:
        codes = sorted({f.exitcode for f in e.failures.values()})
        raise ReslabError(f"{len(e.failures)} of {nproc} processes failed (exit {', '.join(map(str, codes))}); "
                          f"their messages are above") from None
    return 0


def without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            out.append(item)
    return out
