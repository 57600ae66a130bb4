"""Take the README's screenshots of a report and of the optimizer playground with headless Chromium.

    python docs/screenshots.py REPORT.html PLAYGROUND.html [--out docs]

writes ``report.png`` (the top of the report: verdict and the first interactive figures) and
``playground.png`` (the ravine after 120 steps of every rule). Run by hand when the pages change; the
tests never write into the tree.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def shoot(chromium: str, url: str, out: Path, size: str) -> None:
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--virtual-time-budget=15000", "--enable-unsafe-swiftshader", f"--window-size={size}"]
    subprocess.run(flags + [f"--screenshot={out}", url], check=True, capture_output=True, timeout=180)
    print(f"{out}: {out.stat().st_size:,} bytes")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("playground", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("headless Chromium is needed (Debian package 'chromium')", file=sys.stderr)
        return 2
    shoot(chromium, args.report.resolve().as_uri(), args.out / "report.png", "1150,1500")
    shoot(chromium, args.playground.resolve().as_uri() + "?surface=ravine&t=120", args.out / "playground.png",
          "1600,1000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
