"""The command line: the only module that reads argv or prints for the user.

Every user-fixable problem (a ReslabError) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from reslab.errors import ReslabError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def add(fn):
        COMMANDS[name] = fn
        return fn
    return add


def _fmt_count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def model_table(rows: Sequence[dict]) -> str:
    header = f"{'model':<20} {'family':<16} {'params':>12} {'FLOPs':>9} {'input':>6}  published"
    lines = [header, "-" * len(header)]
    for r in rows:
        pub = r["published_params"]
        check = "-" if pub is None else ("= published" if pub == r["params"] else f"!= {pub:,}")
        lines.append(f"{r['name']:<20} {r['family']:<16} {r['params']:>12,} {_fmt_count(r['flops']):>9} "
                     f"{r['input']:>4}px  {check}")
    return "\n".join(lines)


@command("models")
def cmd_models(args: argparse.Namespace) -> int:
    from reslab.models import describe, list_models

    names = list_models()
    if args.filter:
        names = [n for n in names if args.filter in n]
    rows = [describe(n) for n in names]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(model_table(rows))
        print("\nFLOPs: forward pass of one image at the listed input size (a multiply-add counts as 2).")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reslab", description="Deep residual learning, built and measured.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("models", help="list every network with its parameters and FLOPs")
    p.add_argument("filter", nargs="?", default="", help="only names containing this text")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ReslabError as e:
        print(f"reslab: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("reslab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
