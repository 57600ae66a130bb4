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


def _split_overrides(extra: Sequence[str]) -> list[str]:
    overrides = []
    for item in extra:
        if item.startswith("--") and "=" in item and item[2:].split("=", 1)[0].replace(".", "_").isidentifier():
            overrides.append(item)
        else:
            raise ReslabError(f"unrecognised argument {item!r} (overrides look like --section.key=value or --name=value)")
    return overrides


def _report_run(result) -> None:
    final = result.metrics
    line = f"finished {result.summary['steps']} steps in {result.summary['train_time_s']:.0f} s"
    if "val_error" in final:
        line += f": validation error {100 * final['val_error']:.2f}% (loss {final['val_loss']:.3f})"
    if result.summary.get("stopped_early"):
        line += f" [{result.summary['stopped_early']}]"
    print(line)
    print(f"results in {result.run_dir}/ (metrics.jsonl, summary.json, checkpoints/, tb/)")


@command("train")
def cmd_train(args: argparse.Namespace) -> int:
    from reslab.config import load_config
    from reslab.runner import load_run_config, run_training

    overrides = _split_overrides(args.overrides)
    if args.name:
        overrides.append(f"--name={args.name!r}".replace("'", '"'))
    if args.resume:
        if args.config:
            raise ReslabError("give either a CONFIG or --resume RUN_DIR, not both")
        cfg = load_run_config(args.resume, overrides)
    else:  # no CONFIG: the defaults plus overrides
        cfg = load_config(args.config, overrides)
    progress = None if args.quiet else sys.stderr
    if not args.quiet:
        what = "resuming" if args.resume else "training"
        print(f"{what} {cfg.model.name} on {cfg.data.dataset} -> {cfg.run_dir}/", file=sys.stderr)
    result = run_training(cfg, resume=bool(args.resume), overwrite=args.overwrite, progress=progress)
    _report_run(result)
    return 0


@command("eval")
def cmd_eval(args: argparse.Namespace) -> int:
    from reslab.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(args.checkpoint, dataset=args.data, path=args.data_path,
                                 batch_size=args.batch_size, device=args.device)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['model']} from {report['checkpoint']}")
    print(f"data: {report['data']}  ({report['images']} images)")
    print(f"loss {report['loss']:.4f}   error {100 * report['error']:.2f}%   accuracy {100 * (1 - report['error']):.2f}%")
    classes = report["classes"]
    width = max(len(c) for c in classes)
    print("\nper-class accuracy:")
    for c, acc in zip(classes, report["per_class_accuracy"]):
        print(f"  {c:<{width}}  {100 * acc:6.2f}%")
    print("\nconfusion matrix (rows: true class, columns: predicted):")
    print("  " + " " * width + " " + " ".join(f"{i:>5}" for i in range(len(classes))))
    for i, (c, row) in enumerate(zip(classes, report["confusion"])):
        print(f"  {c:<{width}} " + " ".join(f"{v:>5}" for v in row))
    print(f"\nwritten to {report['written_to']}")
    return 0


@command("demo")
def cmd_demo(args: argparse.Namespace) -> int:
    from reslab.config import load_config
    from reslab.demo import DEMO_RUN
    from reslab.runner import run_training

    cfg = load_config(None, [f'--out_dir="{args.out}"'], base=DEMO_RUN)
    print(f"reslab demo: {cfg.model.name} on the embedded CIFAR-10 sample, {cfg.train.epochs} epochs", file=sys.stderr)
    result = run_training(cfg, overwrite=True, progress=sys.stderr)
    _report_run(result)
    return 0


@command("playground")
def cmd_playground(args: argparse.Namespace) -> int:
    from reslab.playground import SURFACES, play

    surfaces = args.surfaces or list(SURFACES)
    unknown = [s for s in surfaces if s not in SURFACES]
    if unknown:
        raise ReslabError(f"unknown surface {unknown[0]!r}; known: {', '.join(SURFACES)}")
    lrs = {}
    for item in args.lr:
        name, _, value = item.partition("=")
        try:
            lrs[name] = float(value)
        except ValueError:
            raise ReslabError(f"--lr takes OPTIMIZER=RATE, got {item!r}") from None
        if not lrs[name] > 0:
            raise ReslabError(f"--lr {name}: the rate must be positive, got {value}")
    results = play(args.out, surfaces=surfaces, steps=args.steps, tol=args.tol, animate=not args.no_animation,
                   lr_overrides=lrs)
    for name, trajs in results.items():
        surface = SURFACES[name]
        print(f"\n{surface.title}: {surface.lesson}")
        print(f"  {'optimizer':<28} {'steps to loss-min < ' + format(args.tol, 'g'):>24} {'final loss':>12}")
        for t in trajs:
            steps = "diverged" if t.diverged else ("not reached" if t.steps_to_tol is None else str(t.steps_to_tol))
            print(f"  {t.label:<28} {steps:>24} {t.losses[-1]:>12.4g}")
    print(f"\nplots (PNG, SVG), animations (GIF) and playground.json in {args.out}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reslab", description="Deep residual learning, built and measured.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("models", help="list every network with its parameters and FLOPs")
    p.add_argument("filter", nargs="?", default="", help="only names containing this text")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("train", help="train a network from a config file (overrides: --section.key=value)",
                       epilog="example: reslab train configs/cifar10_resnet20_fast.toml --optim.lr=0.2")
    p.add_argument("config", nargs="?", help="TOML config (see configs/); without one, the defaults")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")
    p.add_argument("--name", help="run name (folder under out_dir)")
    p.add_argument("--quiet", action="store_true", help="no progress output")

    p = sub.add_parser("eval", help="evaluate a checkpoint: loss, error, per-class accuracy, confusion matrix")
    p.add_argument("checkpoint", help="a checkpoint file or a run folder (uses its best checkpoint)")
    p.add_argument("--data", default=None, help="sample, cifar10, cifar100 or folder (default: the run's data)")
    p.add_argument("--data-path", default=None, help="dataset folder or archive")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("playground", help="every optimizer on the lecture's 2-D test surfaces, with pictures")
    p.add_argument("surfaces", nargs="*", help="ravine, saddle, rosenbrock, beale, bowl1d (default: all)")
    p.add_argument("--out", default="runs/playground", help="folder for the plots")
    p.add_argument("--steps", type=int, default=None, help="steps per optimizer (default: per surface)")
    p.add_argument("--tol", type=float, default=1e-3, help="tolerance on loss - minimum")
    p.add_argument("--lr", action="append", default=[], metavar="OPTIMIZER=RATE",
                   help="change an optimizer's rate, e.g. --lr sgd=0.04 (repeatable)")
    p.add_argument("--no-animation", action="store_true", help="skip the GIFs")

    p = sub.add_parser("demo", help="a short run on the embedded sample (no download)")
    p.add_argument("--out", default="runs", help="folder for the demo's runs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "train":
        args.overrides = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return COMMANDS[args.command](args)
    except ReslabError as e:
        print(f"reslab: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("\nreslab: interrupted; a run continues from its last checkpoint with reslab train --resume RUN_DIR",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
