"""How often the ablation's tests call an effect where no lever does anything (the family-wise error rate).

Simulates ablations in which every arm is the base (normal final errors, one spread), with the ablation's
shape: a base and ``--arms`` arms of ``--seeds`` seeds each, and counts the ablations in which at least one
arm is called an effect at 5% by (a) Welch's t-test of each arm against the base, as the verdict's word,
and (b) Dunnett's many-to-one test, as its adjusted p. Also the size of one Welch test alone.

Usage: python benchmarks/ablation_null.py [--ablations 20000] [--dunnett 2000] [--arms 7] [--seeds 3]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ablations", type=int, default=20_000)
    p.add_argument("--dunnett", type=int, default=2_000, help="ablations for Dunnett's test (slower: an integral each)")
    p.add_argument("--arms", type=int, default=7)
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    errors = rng.normal(size=(args.ablations, args.arms + 1, args.seeds))  # [:, 0] is the base
    welch = np.stack([stats.ttest_ind(errors[:, k], errors[:, 0], axis=1, equal_var=False).pvalue < 0.05
                      for k in range(1, args.arms + 1)], axis=1)
    dunnett = [min(stats.dunnett(*e[1:], control=e[0], random_state=0).pvalue) < 0.05
               for e in errors[:args.dunnett]]
    n = args.dunnett
    print(f"{args.arms} arms and a base, {args.seeds} seeds each, no effect anywhere:")
    print(f"  one Welch test alone calls an effect in {welch.mean():.1%} of arms ({args.ablations:,} ablations)")
    print(f"  Welch, some arm called an effect: {welch.any(axis=1).mean():.1%} of ablations "
          f"(+- {1.96 * np.sqrt(welch.any(axis=1).mean() * (1 - welch.any(axis=1).mean()) / args.ablations):.1%})")
    rate = float(np.mean(dunnett))
    print(f"  Dunnett, some arm called an effect: {rate:.1%} of ablations (+- {1.96 * np.sqrt(rate * (1 - rate) / n):.1%}, "
          f"{n:,} ablations)")


if __name__ == "__main__":
    main()
