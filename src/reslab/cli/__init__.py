"""The command line: the only package that reads argv or prints for the user.

Every user-fixable problem (a ReslabError, or a file-system failure such as an output path that is a
folder) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from reslab.errors import Interrupted, ReslabError

TAKES_OVERRIDES = ("train", "experiment", "demo")


def build_parser() -> argparse.ArgumentParser:
    from reslab.experiments import experiment_names

    kinds = experiment_names()
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
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train in N processes on this machine (torch's launcher; one per GPU, or CPU processes)")
    p.add_argument("--resume-if-exists", action="store_true",
                   help="resume the run if it has a checkpoint, else start it (for torchrun --max-restarts)")

    p = sub.add_parser("eval", help="evaluate a checkpoint: loss, error, per-class accuracy, confusion matrix")
    p.add_argument("checkpoint", help="a checkpoint file or a run folder (uses its best checkpoint)")
    p.add_argument("--data", default=None, help="sample, cifar10, cifar100 or folder: evaluate every image of it "
                   "(default: the run's own held-out images)")
    p.add_argument("--data-path", default=None, help="dataset folder or archive")
    p.add_argument("--batch-size", type=int, default=None, help="default: the run's evaluation batch size")
    p.add_argument("--no-tta", action="store_true", help="no flip test-time augmentation, even if the run used it")
    p.add_argument("--ten-crop", action="store_true",
                   help="He et al.'s 10-crop testing on shards: corners, centre and mirrors, logits averaged")
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
    p.add_argument("--html", metavar="OUT.html", help="write the live playground page instead: pick a surface, click "
                   "a start, move the sliders, watch every rule step (the same rules as reslab.optim)")
    p.add_argument("--report-link", default=None, metavar="URL", help="with --html: a report to link to")

    p = sub.add_parser("demo", help="the degradation experiment in small, on the embedded sample (no download)")
    p.add_argument("--out", default="runs/demo", help="folder for the demo's runs and report")
    p.add_argument("--full", action="store_true",
                   help="train at the sample's full 32x32 (about 10 minutes on a laptop CPU without bf16)")
    p.add_argument("--jobs", type=int, default=0,
                   help="runs trained at once (default 0: two on a CPU with two cores or more, else one)")

    p = sub.add_parser("experiment", help="named reproductions: " + ", ".join(kinds),
                       epilog="options of an experiment: --experiment.key=value (or an [experiment] table in CONFIG), "
                              "e.g. reslab experiment depth CONFIG --experiment.depths=[20,56] --experiment.plain=true")
    p.add_argument("kind", choices=kinds)
    p.add_argument("config", nargs="?", help="base recipe (TOML); the model name is set per run")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once (default 1)")
    p.add_argument("--out", help="experiment folder (default runs/<kind>)")
    p.add_argument("--quiet", action="store_true")
    legacy = p.add_argument_group("older spellings of --experiment.KEY=VALUE")
    legacy.add_argument("--models", nargs="+", help="--experiment.models (degradation)")
    legacy.add_argument("--depths", nargs="+", type=int, help="--experiment.depths (depth)")
    legacy.add_argument("--plain", action="store_true", help="--experiment.plain=true (depth)")
    legacy.add_argument("--survival-prob", type=float, help="--experiment.survival_prob (stochastic-depth)")
    legacy.add_argument("--aux-weight", type=float, help="--experiment.aux_weight (architectures)")

    p = sub.add_parser("analyze", help="gradient flow, layer responses, init study, lesion, paths, loss landscape")
    p.add_argument("what", choices=["gradients", "responses", "init-study", "lesion", "paths", "landscape"])
    p.add_argument("target", nargs="?", default="", help="a run folder, or (gradients) a model name")
    p.add_argument("--batch", type=int, default=256, help="images in the analysis batch")
    p.add_argument("--out", help="output folder")
    p.add_argument("--depth", type=int, default=30, help="init-study: hidden layers of the MLP")
    p.add_argument("--images", type=int, default=None,
                   help="lesion, landscape (default 2000), paths (default 256): held-out images evaluated")
    p.add_argument("--draws", type=int, default=None,
                   help="lesion, paths: random draws per point (default 10); gradients: held-out batches, "
                        "figures the median over them (default 5)")
    p.add_argument("--resolution", type=int, default=21, help="landscape: grid points per axis")
    p.add_argument("--span", type=float, default=1.0, help="landscape: grid from -span to span")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                   help="lesion, landscape: evaluation precision (bf16 is faster on a CPU with bf16 instructions)")
    p.add_argument("--jobs", type=int, default=1,
                   help="landscape: worker processes sharing the grid rows (for many-core CPUs; default 1)")

    p = sub.add_parser("data", help="datasets larger than memory: pack an image folder into WebDataset shards")
    p.add_argument("action", choices=["pack"])
    p.add_argument("src", help="a class-per-folder image set: a folder, or a .tar/.tar.gz of one")
    p.add_argument("out", help="folder for the shards and their index.json")
    p.add_argument("--shard-size", type=int, default=1000, help="images per shard (default 1000)")
    p.add_argument("--max-size", type=int, default=0,
                   help="re-encode images whose shorter side is larger to this size (JPEG q90); 0: keep the bytes")
    p.add_argument("--skip-bad", action="store_true", help="leave unreadable images out (and count them)")
    p.add_argument("--classes-from", help="another packed set (its folder or index.json) whose classes to use, "
                   "e.g. the training set's when packing the validation set")
    p.add_argument("--prefix", default="shard", help="shard file names: PREFIX-000000.tar")
    p.add_argument("--seed", type=int, default=0, help="seed of the packing order (shards mix the classes)")

    p = sub.add_parser("export", help="weights for other tools: safetensors + config.json, or ONNX",
                       epilog="example: reslab export runs/resnet20 --format onnx --out resnet20-onnx")
    p.add_argument("checkpoint", help="a run folder (its best checkpoint) or a checkpoint file")
    p.add_argument("--format", required=True, choices=("safetensors", "onnx"), dest="fmt")
    p.add_argument("--out", default=None, metavar="DIR", help="default: RUN/export/FORMAT")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (18 or later)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("report", help="build the HTML report of a run or experiment folder")
    p.add_argument("folder")
    p.add_argument("--plotly-js", choices=("inline", "beside"), default="inline",
                   help="inline: one self-contained file (default); beside: share plotly.min.js with other reports")
    return parser


SWEEPS = ("experiment", "demo")  # commands that train several runs: rerunning them continues where they stopped
RERUN = "finished runs are skipped and stopped ones resume from their checkpoints"


def main(argv: Sequence[str] | None = None) -> int:
    from reslab.cli.commands import COMMANDS

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    args.argv = argv
    if args.command in TAKES_OVERRIDES:
        args.overrides = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from reslab.dist import launched_rank, shutdown
    from reslab.memory import keep_freed_memory

    keep_freed_memory()  # a step's freed tensors are reused, not mapped and zeroed afresh (reslab.memory)
    rank = launched_rank()
    try:
        code = COMMANDS[args.command](args)
        shutdown()  # leave the process group; not after a failure, where a dead peer can make it hang
        return code
    except ReslabError as e:
        if rank == 0 or not isinstance(e, Interrupted):  # other ranks repeat rank 0's stop message
            again = f"; or run the same reslab {args.command} command again: {RERUN}" if (
                isinstance(e, Interrupted) and args.command in SWEEPS) else ""
            print(f"reslab{f' (rank {rank})' if rank else ''}: error: {e}{again}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # a file-system failure no command turned into a message of its own: still one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"reslab{f' (rank {rank})' if rank else ''}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        how = (f"run the same reslab {args.command} command again: {RERUN}" if args.command in SWEEPS
               else "a run continues from its last checkpoint with reslab train --resume RUN_DIR")
        print(f"\nreslab: interrupted; {how}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
