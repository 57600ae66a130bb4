"""How results look on a terminal: the tables and summaries the commands print."""

from __future__ import annotations

from typing import Any, Sequence


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


def run_result(result) -> str:
    final, summary = result.metrics, result.summary
    line = f"finished {summary['steps']} steps in {summary['train_time_s']:.0f} s"
    if "val_error" in final:
        line += f": validation error {100 * final['val_error']:.2f}% (loss {final['val_loss']:.3f})"
    if summary.get("stopped_early"):
        line += f" [{summary['stopped_early']}]"
    return line + f"\nresults in {result.run.path}/ (metrics, summary, checkpoints, TensorBoard events)"


def experiment(exp: dict) -> str:
    """The experiment's table (columns as recorded), its verdict and the report's path."""
    lines = []
    table = exp.get("table") or []
    if table:
        cols = list(table[0])
        widths = [max(len(str(c)), *(len(str(r.get(c))) for r in table)) for c in cols]
        lines.append("  ".join(f"{c:>{w}}" for c, w in zip(cols, widths)))
        lines += ["  ".join(f"{str(r.get(c)):>{w}}" for c, w in zip(cols, widths)) for r in table]
        lines.append("")
    lines.append("verdict:")
    lines += [f"  - {line}" for line in exp.get("verdict", [])]
    lines.append(f"\nreport: {exp['report']}")
    return "\n".join(lines)


def evaluation(report: dict[str, Any]) -> str:
    tta = "10-crop" if report.get("ten_crop") else ("flip TTA" if report["tta_flip"] else "no TTA")
    lines = [f"{report['model']} from {report['checkpoint']}",
             f"data: {report['data']}  ({report['images']:,} images evaluated; {report['precision']}, {tta})",
             f"loss {report['loss']:.4f}   error {100 * report['error']:.2f}% ({report['errors']:,} images)   "
             f"accuracy {100 * (1 - report['error']):.2f}%   top-5 error {100 * report['top5_error']:.2f}%"]
    classes = report["classes"]
    width = max(len(c) for c in classes)
    lines.append("\nper-class accuracy:")
    lines += [f"  {c:<{width}}  {100 * acc:6.2f}%" for c, acc in zip(classes, report["per_class_accuracy"])]
    lines.append("\nconfusion matrix (rows: true class, columns: predicted):")
    lines.append("  " + " " * width + " " + " ".join(f"{i:>5}" for i in range(len(classes))))
    lines += [f"  {c:<{width}} " + " ".join(f"{v:>5}" for v in row) for c, row in zip(classes, report["confusion"])]
    lines.append(f"\nwritten to {report['written_to']}")
    return "\n".join(lines)


def lesion(result: dict) -> str:
    single = [b for b in result["single"] if not b["downsampling"]]
    worst = max(single, key=lambda b: b["error"]) if single else None
    lines = [f"{result['model']}: error {100 * result['baseline_error']:.2f}% intact; deleting one block that keeps "
             f"its shape: mean {100 * sum(b['error'] for b in single) / max(1, len(single)):.2f}%"
             + (f", worst {100 * worst['error']:.2f}% (block {worst['block']})" if worst else "")]
    lines += [f"  delete {row['k']:>2} random blocks: {100 * row['mean']:6.2f}% +- {100 * row['std']:.2f}"
              for row in result["random_k"]]
    return "\n".join(lines)


def paths(result: dict) -> str:
    lo, hi = result["effective_range"]
    return (f"{result['model']}: {result['blocks']} blocks, 2^{result['blocks']} paths, mean length "
            f"{result['mean_path_length']:.1f}; most gradient from paths of length {result['peak_length']}, "
            f"90% from lengths {lo}-{hi}")


def playground(results: dict, surfaces: dict, tol: float, out: str) -> str:
    lines = []
    for name, trajs in results.items():
        surface = surfaces[name]
        lines.append(f"\n{surface.title}: {surface.lesson}")
        lines.append(f"  {'optimizer':<28} {'steps to loss-min < ' + format(tol, 'g'):>24} {'final loss':>12}")
        for t in trajs:
            steps = "diverged" if t.diverged else ("not reached" if t.steps_to_tol is None else str(t.steps_to_tol))
            lines.append(f"  {t.label:<28} {steps:>24} {t.losses[-1]:>12.4g}")
    lines.append(f"\nplots (PNG, SVG), animations (GIF) and playground.json in {out}/")
    return "\n".join(lines)


def export(report: dict[str, Any]) -> str:
    lines = [f"{report['model']} from {report['checkpoint']} -> {report['folder']}/ ({report['format']})"]
    lines += [f"  {path}" for path in report["files"]]
    lines.append(f"checked: {report['check']}")
    if "max_relative_error" in report:
        lines.append("  largest relative difference: " + ", ".join(
            f"batch {b}: {e:.1e}" for b, e in report["max_relative_error"].items()))
    return "\n".join(lines)
