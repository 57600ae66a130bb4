"""The optimizer playground: every optimizer on the lecture's 2-D surfaces, with pictures.

``play(out_dir)`` runs the line-ups, writes contour plots with trajectories, loss curves and an
animation per surface, and returns the steps-to-tolerance table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from reslab.playground.run import LINEUPS, Trajectory, run_surface
from reslab.playground.surfaces import SURFACES


def play(out_dir: str | Path, *, surfaces: list[str] | None = None, steps: int | None = None, tol: float = 1e-3,
         animate: bool = True, lr_overrides: dict[str, float] | None = None,
         progress: TextIO | None = None) -> dict[str, list[Trajectory]]:
    from reslab.playground import plots
    from reslab.progress import progress as progress_bar

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    names = surfaces or list(SURFACES)
    bar = progress_bar(progress, total=len(names), desc="surfaces", unit="surface")
    for name in names:
        lineup = [(label, opt, {**hp, **({"lr": lr_overrides[opt]} if lr_overrides and opt in lr_overrides else {})})
                  for label, opt, hp in LINEUPS[name]]
        if lr_overrides:
            lineup = [(f"{opt} eta={hp['lr']:g}" if opt in lr_overrides else label, opt, hp)
                      for label, opt, hp in lineup]
        trajs = run_surface(name, steps=steps, tol=tol, lineup=lineup)
        surface = SURFACES[name]
        plots.save(plots.contour_figure(surface, trajs), out / f"{name}_trajectories")
        plots.save(plots.loss_figure(surface, trajs), out / f"{name}_loss")
        if animate and surface.dims == 2:
            plots.animate(surface, trajs, out / f"{name}.gif")
        results[name] = trajs
        bar.update(1, last=name)
    bar.close()
    table = {name: [{"label": t.label, "optimizer": t.optimizer, "hyper": t.hyper, "steps_to_tol": t.steps_to_tol,
                     "final_loss": t.losses[-1], "diverged": t.diverged} for t in trajs]
             for name, trajs in results.items()}
    (out / "playground.json").write_text(json.dumps({"steps": steps, "tol": tol, "surfaces": table}, indent=2))
    return results


__all__ = ["LINEUPS", "SURFACES", "play", "run_surface"]
