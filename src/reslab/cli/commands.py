"""One function per command: parse nothing, call the library, print the result."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reslab.cli import show
from reslab.errors import ReslabError

# Old spellings of experiment options, kept working: each becomes --experiment.<key>=<value>.
LEGACY_EXPERIMENT_FLAGS = {"models": "models", "depths": "depths", "plain": "plain",
                           "survival_prob": "survival_prob", "aux_weight": "aux_weight"}


def split_overrides(extra: list[str]) -> list[str]:
    for item in extra:
        if not (item.startswith("--") and "=" in item and item[2:].split("=", 1)[0].replace(".", "_").isidentifier()):
            raise ReslabError(f"unrecognised argument {item!r} (overrides look like --section.key=value or --name=value)")
    return list(extra)


def _stderr_log(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)  # above a progress bar that is being drawn, not through it


def cmd_models(args: argparse.Namespace) -> int:
    from reslab.models import describe, list_models

    rows = [describe(n) for n in list_models() if args.filter in n]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(show.model_table(rows))
        print("\nFLOPs: forward pass of one image at the listed input size (a multiply-add counts as 2).")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from reslab.config import load_config
    from reslab.dist import launched_rank
    from reslab.models import MODELS
    from reslab.rundir import RunDir, run_dir_of
    from reslab.workflows.train import train_run

    if args.nproc < 1:
        raise ReslabError(f"--nproc must be at least 1, got {args.nproc}")
    if args.nproc > 1:
        from reslab.cli.launch import launch_processes, without_nproc

        return launch_processes(args.nproc, without_nproc(args.argv))
    overrides = split_overrides(args.overrides)
    if args.name:
        overrides.append("--name=" + json.dumps(args.name))
    if args.resume:
        if args.config:
            raise ReslabError("give either a CONFIG or --resume RUN_DIR, not both")
        cfg = RunDir(args.resume).read_config(overrides)
    else:  # no CONFIG: the defaults plus overrides
        cfg = load_config(args.config, overrides)
    MODELS.get(cfg.model.name)  # an unknown network is refused before any line says it is training
    resume = bool(args.resume) or (args.resume_if_exists and run_dir_of(cfg).last_checkpoint.is_file())
    primary = launched_rank() == 0
    quiet = args.quiet or not primary
    if not quiet:
        what = "resuming" if resume else "training"
        print(f"{what} {cfg.model.name} on {cfg.data.dataset} -> {run_dir_of(cfg).path}/", file=sys.stderr)
    result = train_run(cfg, resume=resume, overwrite=args.overwrite, progress=None if quiet else sys.stderr)
    if primary:
        print(show.run_result(result))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from reslab.workflows.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(args.checkpoint, dataset=args.data, path=args.data_path, batch_size=args.batch_size,
                                 device=args.device, tta=False if args.no_tta else None,
                                 ten_crop=args.ten_crop)
    print(json.dumps(report, indent=2) if args.json else show.evaluation(report))
    return 0


def _experiment_overrides(args: argparse.Namespace) -> list[str]:
    overrides = split_overrides(args.overrides)
    for flag, key in LEGACY_EXPERIMENT_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None and value is not False:
            overrides.append(f"--experiment.{key}=" + json.dumps(value))
    return overrides


def cmd_experiment(args: argparse.Namespace) -> int:
    from reslab.config import load_config
    from reslab.experiments import Context, experiment, run_experiment

    spec = experiment(args.kind)
    overrides = _experiment_overrides(args)
    if (spec.needs_recipe and args.config is None
            and not any(o.startswith(("--train.steps=", "--train.epochs=")) for o in overrides)):
        example = f" such as {spec.recipe}" if spec.recipe else ""
        raise ReslabError(f"experiment {args.kind} needs a recipe: a CONFIG{example} (or at least --train.epochs=N)")
    if args.jobs < 1:
        raise ReslabError(f"--jobs must be at least 1, got {args.jobs}")
    if not spec.needs_recipe and args.config is None:
        overrides.append("--train.epochs=1")  # a placeholder: this experiment trains nothing
    cfg = load_config(args.config, overrides)
    from reslab.dist import launched_rank

    quiet = args.quiet or launched_rank() != 0
    ctx = Context(progress=None if quiet else sys.stderr, log=(lambda line: None) if quiet else _stderr_log, jobs=args.jobs)
    exp = run_experiment(args.kind, cfg, args.out or f"runs/{args.kind}", ctx)
    if exp:  # empty on the ranks other than 0 under torchrun
        print(show.experiment(exp))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from reslab.config import load_config
    from reslab.experiments import Context, experiment_options, run_experiment
    import torch

    from reslab.data import build_data
    from reslab.device import resolve_device, resolve_precision
    from reslab.experiments.degradation import DEMO_RECIPE
    from reslab.workflows.probe import estimate_seconds
    from reslab.device import usable_cores

    overrides = (["--data.image_size=0"] if args.full else []) + split_overrides(args.overrides)
    cfg = load_config(None, overrides, base=DEMO_RECIPE)
    models = list(cfg.experiment.get("models", []))
    data = build_data(cfg.data, seed=cfg.train.seed)
    steps = cfg.train.steps or cfg.train.epochs * len(data.train)
    device = resolve_device(cfg.train.device)
    precision = resolve_precision(cfg.train.precision, device)
    if args.jobs < 0:
        raise ReslabError(f"--jobs must be 0 (as suits the machine) or more, got {args.jobs}")
    jobs = args.jobs or demo_jobs(device)
    print(f"reslab demo: {', '.join(models)} on {data.train.num_samples:,} images of the embedded CIFAR-10 sample "
          f"at {data.image_size}x{data.image_size} ({steps} steps of {cfg.data.batch_size} each, {precision} on "
          f"{device.type}{', ' + torch.backends.cpu.get_cpu_capability() if device.type == 'cpu' else ''}"
          f"{f'; {jobs} runs at once, {max(1, usable_cores() // jobs)} thread(s) each' if jobs > 1 else ''}), "
          f"then gradient flow, layer responses and the report", file=sys.stderr)
    options = experiment_options("degradation", cfg)  # the gradient analysis: init and trained, each batch
    passes = 2 * options.analysis_draws * (options.analysis_batch or cfg.data.batch_size) / cfg.data.batch_size
    estimate, _ = estimate_seconds(cfg, models, steps_per_run=steps, image_size=data.image_size, jobs=jobs,
                                   analysis_steps=passes)
    print(f"expected time on this machine: about {format_seconds(estimate)} (from a short probe of each network)"
          + ("" if args.full else "; reslab demo --full trains at 32x32, about four times longer"), file=sys.stderr)
    exp = run_experiment("degradation", cfg, args.out, Context(progress=sys.stderr, log=_stderr_log, jobs=jobs))
    print(show.experiment(exp))
    return 0


def demo_jobs(device) -> int:
    """The demo's runs at once when ``--jobs`` is left at 0: two on a CPU with two cores or more, each on its
    half of them (small convolutions scale poorly over threads: two one-thread runs of the demo's 16x16
    networks train 1.2-1.3x the images/s of one two-thread run on a 2-core AVX2 EPYC), else one."""
    from reslab.device import usable_cores

    return 2 if device.type == "cpu" and usable_cores() >= 2 else 1


def cmd_analyze(args: argparse.Namespace) -> int:
    from reslab.workflows import analyze

    if args.what == "init-study":  # now an experiment; the old command runs it
        args.kind, args.config, args.overrides, args.quiet = "init-study", None, [f"--experiment.depth={args.depth}"], True
        args.out, args.jobs = args.out or "runs/init-study", 1
        return cmd_experiment(args)
    if not args.target:
        raise ReslabError(f"analyze {args.what} needs a run folder")
    draws = ({"gradients": 5}.get(args.what, 10) if args.draws is None else args.draws)  # each its own default
    images = {"paths": 256}.get(args.what, 2000) if args.images is None else args.images
    for flag, value in (("jobs", args.jobs), ("draws", draws), ("images", images)):
        if value < 1:
            raise ReslabError(f"--{flag} must be at least 1, got {value}")
    if args.what == "gradients":
        path, result = analyze.analyze_gradients(args.target, batch=args.batch, draws=draws,
                                                 out=Path(args.out) if args.out else None)
        for label, flow in result["flows"].items():
            spread = flow.get("ratio_draws_weight", ())
            print(f"{label:<28} first/last layer gradient ratio {flow['ratio_first_last_weight']:.3g}"
                  + (f" (median of {len(spread)} batches, {min(spread):.3g}-{max(spread):.3g})" if len(spread) > 1 else ""))
        print(f"\n{result['verdict']}")
    elif args.what == "responses":
        path, result = analyze.analyze_responses(args.target, batch=args.batch)
        print(result["verdict"])
    elif args.what == "lesion":
        path, result = analyze.analyze_lesion(args.target, images=images, draws=draws,
                                              precision=args.precision)
        print(show.lesion(result))
    elif args.what == "paths":
        path, result = analyze.analyze_paths(args.target, images=images, draws=draws)
        print(show.paths(result))
    else:
        from reslab.progress import progress

        with progress(sys.stderr, total=args.resolution, desc="landscape rows", unit="row") as bar:
            path, result = analyze.analyze_landscape(
                args.target, resolution=args.resolution, span=args.span, images=images,
                progress=lambda i, n: bar.update(i - bar.done), precision=args.precision, jobs=args.jobs)
        print(f"{result['model']}: {args.resolution}x{args.resolution} grid on {result['images']} images in "
              f"{result['surface']['seconds']:.0f} s")
    print(f"written to {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from reslab.workflows.export import export_checkpoint

    report = export_checkpoint(args.checkpoint, args.fmt, args.out, opset=args.opset)
    print(json.dumps(report, indent=2) if args.json else show.export(report))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from reslab.report.html import build_report

    print(f"report: {build_report(args.folder, plotly_js=args.plotly_js)}")
    return 0


def cmd_playground(args: argparse.Namespace) -> int:
    if args.html:
        from reslab.playground.page import write_page

        page = write_page(args.html, report=args.report_link)
        print(f"playground: {page} (one file; open it in a browser, no network needed)")
        return 0
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
                   lr_overrides=lrs, progress=sys.stderr)
    print(show.playground(results, SURFACES, args.tol, args.out))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from reslab.data.shards import pack, read_index

    classes = read_index(args.classes_from)["classes"] if args.classes_from else None
    report = pack(args.src, args.out, shard_size=args.shard_size, max_size=args.max_size, skip_bad=args.skip_bad,
                  classes=classes, prefix=args.prefix, seed=args.seed, progress=sys.stderr)
    print(f"{report.total:,} images in {len(report.shards)} shards, {len(report.classes)} classes -> {report.out}/"
          + (f"; {len(report.skipped)} unreadable images skipped" if report.skipped else ""))
    return 0


COMMANDS = {"data": cmd_data, "models": cmd_models, "train": cmd_train, "eval": cmd_eval, "experiment": cmd_experiment,
            "demo": cmd_demo, "analyze": cmd_analyze, "report": cmd_report, "playground": cmd_playground,
            "export": cmd_export}


def format_seconds(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"
