"""Speed of a 2-D loss-landscape grid: reslab's method against the forward passes alone and against the
straightforward method (for every grid point: copy the model, load the moved weights, evaluate).

Usage: python benchmarks/landscape.py [--run runs/NAME | --model resnet56] [--resolution 21] [--images 2000]
       [--straightforward-points 21] [--forward-points N] [--naive-points N] [--interleaved N] [--no-grid]
The straightforward method is timed on ``--straightforward-points`` grid points (one row by default) and
reported per point; with ``--naive-points``, also as one would first write it, in fp32 and the default
memory layout (what reslab's choice of layout and precision is worth on top of the method); reslab's on the whole grid (with ``--run``, the ``reslab analyze landscape`` analysis
itself, whose result stays in the run folder); the forward passes on as many passes as grid points, or on
``--forward-points`` of them, scaled to the grid. All three in the same layout (channels_last, fp32) on
the same batches. Run it with nothing else busy.

Blocks of minutes apart drift on a shared machine (the same forward passes have timed 25% apart in two
runs here), so ``--interleaved N`` also times one grid point of each method in turn, N rounds at random
points, and reports the ratios of the medians: the figure to compare methods by.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from reslab.evaluation import fixed_batches, loss_and_error as evaluate
from reslab.analysis.landscape import filter_normalized_direction, surface
from reslab.config import DataConfig
from reslab.models import create_model


def point_straightforward(model, names, origin, d1, d2, a, b, batches) -> None:
    """One grid point as one would first write it: copy the model, load the moved weights, evaluate."""
    probe = copy.deepcopy(model)
    sd = probe.state_dict()
    for j, n in enumerate(names):
        sd[n] = origin[n] + a * d1[j] + b * d2[j]
    probe.load_state_dict(sd)
    evaluate(probe, batches)


def interleaved(model, d1, d2, coords, batches, rounds: int, context, naive: bool) -> dict:
    """Median seconds per grid point of each method, timed in turn at the same random points."""
    import statistics

    from reslab.analysis.landscape import WeightMover

    names = [n for n, _ in model.named_parameters()]
    origin = {n: p.detach().clone() for n, p in model.named_parameters()}
    base = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    plain_batches = [(x.contiguous(), y) for x, y in batches]
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {"forward_only": [], "reslab": [], "straightforward": []}
    if naive:
        times["naive"] = []
    with WeightMover(model, d1, d2) as mover:
        for _ in range(rounds):
            a, b = (float(v) for v in rng.choice(coords, 2))
            with context:
                mover.move(0.0)
                t = time.perf_counter()
                torch.clear_autocast_cache()  # a forward pass of weights that changed: cast them again
                evaluate(model, batches)
                times["forward_only"].append(time.perf_counter() - t)
                t = time.perf_counter()
                mover.move(a, b)
                evaluate(model, batches)
                times["reslab"].append(time.perf_counter() - t)
                mover.move(0.0)
                t = time.perf_counter()
                point_straightforward(model, names, origin, d1, d2, a, b, batches)
                times["straightforward"].append(time.perf_counter() - t)
            if naive:
                t = time.perf_counter()
                point_straightforward(base, names, origin, d1, d2, a, b, plain_batches)
                times["naive"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"rounds": rounds, "median_s_per_point": med,
           "reslab_over_forward_only": med["reslab"] / med["forward_only"],
           "straightforward_over_reslab": med["straightforward"] / med["reslab"]}
    if naive:
        out["naive_over_reslab"] = med["naive"] / med["reslab"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="a trained run folder: its landscape analysis is what gets timed, and is kept "
                                 "(default: a freshly initialised --model)")
    p.add_argument("--model", default="resnet56")
    p.add_argument("--resolution", type=int, default=21)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--straightforward-points", type=int, default=21)
    p.add_argument("--forward-points", type=int, default=0,
                   help="forward-only passes timed (default 0: as many as grid points)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="of all three methods")
    p.add_argument("--naive-points", type=int, default=0,
                   help="grid points of the straightforward method in fp32 and the default layout (0: not timed)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes of reslab's grid")
    p.add_argument("--interleaved", type=int, default=0,
                   help="rounds of one point per method in turn (0: not timed)")
    p.add_argument("--no-grid", action="store_true",
                   help="skip reslab's grid: time only the per-point baselines and the forward passes")
    p.add_argument("--json")
    args = p.parse_args()

    from reslab.rundir import RunDir
    from reslab.workflows.analyze import analyze_landscape, eval_precision, landscape_grid_file
    from reslab.workflows.restore import analysis_batch, heldout_batches, restore_run
    if args.run:
        restored = restore_run(Path(args.run))
        model = restored.model
        batches, _, y = heldout_batches(restored, args.images, channels_last=True)
        name = restored.config.model.name
    else:
        x, y, data = analysis_batch(DataConfig(dataset="sample", val_size=args.images), n=args.images)
        torch.manual_seed(0)
        model, name = create_model(args.model, num_classes=data.num_classes), args.model
        model.to(memory_format=torch.channels_last)
        batches = fixed_batches(x.contiguous(memory_format=torch.channels_last), y, 500)
    g = torch.Generator().manual_seed(0)  # the directions analyze_landscape draws
    d1, d2 = filter_normalized_direction(model, generator=g), filter_normalized_direction(model, generator=g)
    coords = np.linspace(-1, 1, args.resolution).tolist()
    points = args.resolution ** 2
    forward_points = args.forward_points or points

    _, context = eval_precision(args.precision)
    with context:
        evaluate(model, batches)  # warm-up
        t = time.perf_counter()
        for _ in range(forward_points):
            evaluate(model, batches)
        forward_only = (time.perf_counter() - t) * points / forward_points

        if args.no_grid:
            ours = None
        elif args.run:  # the analysis itself, from scratch (its resumable grid file removed first)
            (RunDir(args.run).analysis_dir / landscape_grid_file(args.resolution, args.images, args.precision, 0)
             ).unlink(missing_ok=True)
            _, result = analyze_landscape(args.run, resolution=args.resolution, images=args.images,
                                          precision=args.precision, jobs=args.jobs)
            ours = result["surface"]["seconds"]
        else:
            t = time.perf_counter()
            surface(model, d1, d2, coords, batches, jobs=args.jobs)
            ours = time.perf_counter() - t

        names = [n for n, _ in model.named_parameters()]
        origin = {n: p.detach().clone() for n, p in model.named_parameters()}
        k = args.straightforward_points
        t = time.perf_counter()
        for i in range(k):
            point_straightforward(model, names, origin, d1, d2, coords[i % args.resolution],
                                  coords[i // args.resolution], batches)
        straight_per_point = (time.perf_counter() - t) / k

    naive_per_point = None
    if args.naive_points:  # fp32, contiguous model and images, outside the autocast context
        plain_batches = [(x.contiguous(), yy) for x, yy in batches]
        base = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
        evaluate(base, plain_batches)  # warm-up, as the other two had
        t = time.perf_counter()
        for i in range(args.naive_points):
            a, b = coords[i % args.resolution], coords[i // args.resolution]
            point_straightforward(base, names, origin, d1, d2, a, b, plain_batches)
        naive_per_point = (time.perf_counter() - t) / args.naive_points

    rounds = (interleaved(model, d1, d2, coords, batches, args.interleaved, eval_precision(args.precision)[1],
                          naive=bool(args.naive_points)) if args.interleaved else None)
    result = {"model": name, "run": args.run, "resolution": args.resolution, "images": len(y),
              "precision": args.precision, "jobs": args.jobs,
              "threads": torch.get_num_threads(), "forward_points_timed": forward_points,
              "forward_only_s": forward_only, "forward_only_s_per_point": forward_only / points,
              "reslab_s": ours, "ratio_to_forward_only": ours / forward_only if ours else None,
              "straightforward_s_per_point": straight_per_point,
              "straightforward_grid_s_estimated": straight_per_point * points,
              "speedup_over_straightforward": straight_per_point * points / ours if ours else None,
              "naive_points_timed": args.naive_points, "naive_s_per_point": naive_per_point,
              "speedup_over_naive": naive_per_point * points / ours if naive_per_point and ours else None,
              "naive_over_straightforward": naive_per_point / straight_per_point if naive_per_point else None,
              "interleaved": rounds,
              "command": " ".join(["python"] + sys.argv), "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
