"""Speed of the leaderboard intervals: one model, 76 classification cells (clean + 15 corruptions × 5).

Times :func:`robench.report.tables.overall` with per-image outcomes — Wilson for the clean errors, the
image bootstrap (B = 2,000, multinomial resampling per replicate) for mCE — at 2,000 and 50,000 images.
Targets (issue #14): < 2 s and < 60 s on two cores. Synthetic outcomes are drawn before the clock starts.

Usage::

    python benchmarks/bench_stats.py [--replicates 2000 --sizes 2000 50000 --repeats 1]
"""

from __future__ import annotations

import argparse
import time

from robench.corruptions import CORRUPTIONS
from robench.report.evidence import Evidence
from robench.report.synthetic import SyntheticModel, synthetic_results
from robench.report.tables import overall
from robench.stats import Bootstrap

TARGETS = {2000: 2.0, 50000: 60.0}


def time_intervals(n: int, replicates: int) -> tuple[float, float, tuple[float, float]]:
    names = sorted(name for name, c in CORRUPTIONS.items() if c.test)
    data = synthetic_results([SyntheticModel("bench-gap", "gap", 0.1)], n=n, corruptions=names,
                             severities=(1, 2, 3, 4, 5), perturbations=())
    cells = len(data.cells)
    start = time.perf_counter()
    board = overall(data.cells, data.suites, evidence=Evidence(data.reader, Bootstrap(replicates)))
    elapsed = time.perf_counter() - start
    return elapsed, cells, (float(board.mCE_lo.iloc[0]), float(board.mCE_hi.iloc[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 50000])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    for n in args.sizes:
        best, cells, bounds = min(time_intervals(n, args.replicates) for _ in range(args.repeats))
        target = TARGETS.get(n)
        verdict = "" if target is None else f"  (target < {target:g} s: {'ok' if best < target else 'MISSED'})"
        print(f"{n:>6} images × {cells} cells, B = {args.replicates}: {best:.2f} s{verdict}  "
              f"mCE interval [{bounds[0]:.2f}, {bounds[1]:.2f}]")


if __name__ == "__main__":
    main()
