"""The command line: the only module that reads argv or prints for the user.

Every user-fixable problem (a ReslabError) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
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
    from reslab.demo import DEMO_MODELS, DEMO_RUN
    from reslab.experiments.degradation import run_degradation

    cfg = load_config(None, [], base=DEMO_RUN)
    root = Path(args.out)
    print(f"reslab demo: {', '.join(DEMO_MODELS)} on the embedded CIFAR-10 sample "
          f"({cfg.train.epochs} epochs each), then gradient flow and the report", file=sys.stderr)
    exp = run_degradation(cfg, DEMO_MODELS, root, progress=sys.stderr, log=lambda m: print(m, file=sys.stderr),
                          title="reslab demo: degradation on the embedded CIFAR-10 sample")
    _print_experiment(exp)
    return 0


def _print_experiment(exp: dict) -> None:
    table = exp["table"]
    cols = ["model", "final train error %", "final val error %", "params", "train time s"]
    print()
    print("  ".join(f"{c:>20}" for c in cols))
    for r in table:
        print("  ".join(f"{str(r[c]):>20}" for c in cols))
    print("\nverdict:")
    for line in exp["verdict"]:
        print(f"  - {line}")
    print(f"\nreport: {exp['report']}")


def _print_experiment_table(exp: dict) -> None:
    for row in exp["table"]:
        print("  ".join(f"{k}: {v}" for k, v in row.items()))
    for line in exp["verdict"]:
        print(f"  - {line}")
    print(f"report: {exp['report']}")


@command("experiment")
def cmd_experiment(args: argparse.Namespace) -> int:
    from reslab.config import load_config
    from reslab.experiments.degradation import run_degradation

    overrides = _split_overrides(args.overrides)
    if args.config is None and not any(o.startswith(("--train.steps=", "--train.epochs=")) for o in overrides):
        raise ReslabError(f"experiment {args.kind} needs a recipe: a CONFIG such as configs/cifar10_degradation.toml "
                          f"(or at least --train.epochs=N)")
    cfg = load_config(args.config, overrides)
    if args.kind == "architectures":
        from reslab.experiments.architectures import run_architectures

        exp = run_architectures(cfg, Path(args.out or "runs/architectures"), aux_weight=args.aux_weight,
                                progress=None if args.quiet else sys.stderr, log=lambda m: print(m, file=sys.stderr))
        _print_experiment_table(exp)
        return 0
    if args.kind == "optimizers":
        from reslab.experiments.optimizers import USUAL, run_optimizers

        names = args.models or ["sgd", "momentum", "rmsprop", "adam", "adamw"]
        unknown = [n for n in names if n not in USUAL]
        if unknown:
            raise ReslabError(f"unknown optimizer {unknown[0]!r}; known: {', '.join(USUAL)}")
        exp = run_optimizers(cfg, names, Path(args.out or "runs/optimizers"),
                             progress=None if args.quiet else sys.stderr, log=lambda m: print(m, file=sys.stderr))
        _print_experiment_table(exp)
        return 0
    if args.kind == "stochastic-depth":
        from reslab.experiments.stochastic_depth import run_stochastic_depth

        model = (args.models or ["resnet110"])[0]
        exp = run_stochastic_depth(cfg, model, Path(args.out or "runs/stochastic-depth"),
                                   survival_prob=args.survival_prob, progress=None if args.quiet else sys.stderr,
                                   log=lambda m: print(m, file=sys.stderr))
        _print_experiment_table(exp)
        return 0
    if args.kind == "degradation":
        models = args.models or ["plain20", "plain56", "resnet20", "resnet56"]
        title = "Degradation: plain versus residual networks"
    else:  # depth: He et al. Table 6
        depths = args.depths or [20, 32, 44, 56]
        models = [f"{fam}{d}" for fam in (("plain", "resnet") if args.plain else ("resnet",)) for d in depths]
        title = "Depth: error against depth (He et al. Table 6)"
    from reslab.models import list_models
    unknown = [m for m in models if m not in list_models()]
    if unknown:
        raise ReslabError(f"unknown model {unknown[0]!r}")
    root = Path(args.out or f"runs/{args.kind}")
    exp = run_degradation(cfg, models, root, progress=None if args.quiet or args.jobs > 1 else sys.stderr,
                          log=lambda m: print(m, file=sys.stderr), title=title, jobs=args.jobs)
    _print_experiment(exp)
    return 0


@command("analyze")
def cmd_analyze(args: argparse.Namespace) -> int:
    from reslab import analyze

    if args.jobs < 1:
        raise ReslabError(f"--jobs must be at least 1, got {args.jobs}")
    if args.what == "gradients":
        path, result = analyze.analyze_gradients(args.target, batch=args.batch,
                                                 out=Path(args.out) if args.out else None)
        for label, flow in result["flows"].items():
            print(f"{label:<28} first/last layer gradient ratio {flow['ratio_first_last_weight']:.3g}")
        print(f"\n{result['verdict']}")
    elif args.what == "responses":
        path, result = analyze.analyze_responses(args.target, batch=args.batch)
        print(result["verdict"])
    elif args.what in ("lesion", "paths", "landscape"):
        if not args.target:
            raise ReslabError(f"analyze {args.what} needs a run folder")
        if args.what == "lesion":
            path, result = analyze.analyze_lesion(args.target, images=args.images, draws=args.draws,
                                                  precision=args.precision)
            single = [b for b in result["single"] if not b["downsampling"]]
            worst = max(single, key=lambda b: b["error"]) if single else None
            print(f"{result['model']}: error {100 * result['baseline_error']:.2f}% intact; deleting one block that keeps its shape: "
                  f"mean {100 * sum(b['error'] for b in single) / max(1, len(single)):.2f}%"
                  + (f", worst {100 * worst['error']:.2f}% (block {worst['block']})" if worst else ""))
            for row in result["random_k"]:
                print(f"  delete {row['k']:>2} random blocks: {100 * row['mean']:6.2f}% +- {100 * row['std']:.2f}")
        elif args.what == "paths":
            path, result = analyze.analyze_paths(args.target, draws=args.draws)
            lo, hi = result["effective_range"]
            print(f"{result['model']}: {result['blocks']} blocks, 2^{result['blocks']} paths, mean length "
                  f"{result['mean_path_length']:.1f}; most gradient from paths of length {result['peak_length']}, "
                  f"90% from lengths {lo}-{hi}")
        else:
            def progress(i, n):
                print(f"\r  landscape row {i}/{n}", end="", file=sys.stderr, flush=True)
            path, result = analyze.analyze_landscape(args.target, resolution=args.resolution, span=args.span,
                                                     images=args.images, progress=progress,
                                                     precision=args.precision, jobs=args.jobs)
            print(file=sys.stderr)
            print(f"{result['model']}: {args.resolution}x{args.resolution} grid on {result['images']} images in "
                  f"{result['surface']['seconds']:.0f} s")
    else:  # init-study
        out = Path(args.out or "runs/init-study")
        path, result = analyze.init_study(out / "analysis", depth=args.depth)
        print(result["verdict"])
        from reslab.report.html import build_report
        print(f"report: {build_report(out)}")
    print(f"written to {path}")
    return 0


@command("report")
def cmd_report(args: argparse.Namespace) -> int:
    from reslab.report.html import build_report

    print(f"report: {build_report(args.folder)}")
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

    p = sub.add_parser("demo", help="the degradation experiment in small, on the embedded sample (no download)")
    p.add_argument("--out", default="runs/demo", help="folder for the demo's runs and report")

    p = sub.add_parser("experiment", help="named reproductions: degradation, depth, stochastic-depth, optimizers, architectures")
    p.add_argument("kind", choices=["degradation", "depth", "stochastic-depth", "optimizers", "architectures"])
    p.add_argument("config", nargs="?", help="base recipe (TOML); the model name is set per run")
    p.add_argument("--models", nargs="+", help="degradation: the networks (default plain20 plain56 resnet20 resnet56); "
                   "stochastic-depth: the network (default resnet110); optimizers: the rules")
    p.add_argument("--depths", nargs="+", type=int, help="depth: the depths (default 20 32 44 56)")
    p.add_argument("--plain", action="store_true", help="depth: train the plain twins too")
    p.add_argument("--survival-prob", type=float, default=0.5, help="stochastic-depth: p_L of the decayed run")
    p.add_argument("--aux-weight", type=float, default=0.3, help="architectures: GoogLeNet's auxiliary loss weight")
    p.add_argument("--jobs", type=int, default=1, help="degradation, depth: runs trained at once (default 1)")
    p.add_argument("--out", help="experiment folder (default runs/<kind>)")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("analyze", help="gradient flow, layer responses, init study, lesion, paths, loss landscape")
    p.add_argument("what", choices=["gradients", "responses", "init-study", "lesion", "paths", "landscape"])
    p.add_argument("target", nargs="?", default="", help="a run folder, or (gradients) a model name")
    p.add_argument("--batch", type=int, default=256, help="images in the analysis batch")
    p.add_argument("--out", help="output folder")
    p.add_argument("--depth", type=int, default=30, help="init-study: hidden layers of the MLP")
    p.add_argument("--images", type=int, default=2000, help="lesion, landscape: held-out images evaluated")
    p.add_argument("--draws", type=int, default=10, help="lesion, paths: random draws per point")
    p.add_argument("--resolution", type=int, default=21, help="landscape: grid points per axis")
    p.add_argument("--span", type=float, default=1.0, help="landscape: grid from -span to span")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                   help="lesion, landscape: evaluation precision (bf16 is faster on a CPU with bf16 instructions)")
    p.add_argument("--jobs", type=int, default=1,
                   help="landscape: worker processes sharing the grid rows (for many-core CPUs; default 1)")

    p = sub.add_parser("report", help="build report.html for a run or experiment folder")
    p.add_argument("folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command in ("train", "experiment"):
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
