"""Build the embedded CIFAR-10 sample from the shared JPEG copy of the training set.

    python -m reslab.data.sample.make_sample [SOURCE] [--per-class 500] [--out PATH]

Takes the first ``per_class`` files of each class, in file-name order, from SOURCE (by default
``/work/shared/datasets/cifar10-train-jpeg.tar.gz``: ``train/<class>/NNNN.jpg``), and writes them,
byte for byte and in the same layout, to a gzip-compressed tar next to this script.

The output is deterministic: members in sorted order, zeroed times and owners, a fixed gzip
header (no file name, mtime 0). Running it twice gives the same bytes, so the committed file can
be checked by rebuilding it.

Why gzip: a tar stores every member in 512-byte blocks behind a 512-byte header, so 5,000 JPEGs of
about 900 bytes take 7.7 MB as a plain tar; compressed, the shared headers and padding vanish and
the sample is about a tenth of the full archive.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import sys
import tarfile
from collections import defaultdict
from pathlib import Path

DEFAULT_SOURCE = Path("/work/shared/datasets/cifar10-train-jpeg.tar.gz")
DEFAULT_OUT = Path(__file__).with_name("cifar10-sample.tar.gz")


def select(source: Path, per_class: int) -> dict[str, bytes]:
    """``{"train/<class>/<file>": bytes}``: the first ``per_class`` files of each class by name."""
    by_class: dict[str, dict[str, bytes]] = defaultdict(dict)
    with tarfile.open(source, "r|*") as archive:
        for member in archive:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3 and parts[2].lower().endswith((".jpg", ".jpeg", ".png")):
                handle = archive.extractfile(member)
                assert handle is not None
                by_class[parts[1]][member.name] = handle.read()
    chosen: dict[str, bytes] = {}
    for cls in sorted(by_class):
        names = sorted(by_class[cls])
        if len(names) < per_class:
            raise SystemExit(f"{source}: class {cls} has only {len(names)} images, fewer than {per_class}")
        chosen.update((name, by_class[cls][name]) for name in names[:per_class])
    return chosen


def _info(name: str, *, size: int = 0, folder: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if folder else tarfile.REGTYPE
    info.mode = 0o755 if folder else 0o644
    info.size = size
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def write_tar_gz(files: dict[str, bytes], out: Path) -> None:
    """A reproducible tar.gz of ``files`` (with their folders), written atomically."""
    folders = sorted({"/".join(name.split("/")[:n]) for name in files for n in range(1, name.count("/") + 1)})
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as archive:
            for name in sorted(folders + list(files)):
                if name in files:
                    archive.addfile(_info(name, size=len(files[name])), io.BytesIO(files[name]))
                else:
                    archive.addfile(_info(name, folder=True))
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    files = select(args.source, args.per_class)
    write_tar_gz(files, args.out)
    print(f"wrote {args.out}: {len(files)} images, {args.out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
