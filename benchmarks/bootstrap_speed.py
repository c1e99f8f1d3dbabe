"""Time a stratified bootstrap interval of AUROC: 1,000 replicates of 2,000 cases.

Run from the repository root::

    .venv/bin/python -m benchmarks.bootstrap_speed            # the vectorised bootstrap
    .venv/bin/python -m benchmarks.bootstrap_speed --compare  # and scikit-learn called once per replicate

Prints the best wall-clock time in seconds over ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from mmdx.metrics import auroc
from mmdx.statistics import bootstrap_ci


def best_time(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--compare", action="store_true", help="also time sklearn's roc_auc_score per replicate"
    )
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    y = (rng.random(args.cases) < 0.3).astype(np.int64)
    p = 1.0 / (1.0 + np.exp(-(rng.normal(size=args.cases) + 1.2 * y - 0.5)))

    interval = bootstrap_ci(auroc, y, p, n_resamples=args.resamples, seed=0)
    seconds = best_time(lambda: bootstrap_ci(auroc, y, p, n_resamples=args.resamples, seed=0), args.repeats)
    print(
        f"bootstrap_ci(auroc): {args.resamples} resamples x {args.cases} cases: {seconds:.3f} s "
        f"(AUROC {interval.estimate:.4f}, 95% CI {interval.low:.4f}-{interval.high:.4f})"
    )
    if args.compare:
        from sklearn.metrics import roc_auc_score

        def sklearn_loop() -> None:
            for _ in range(args.resamples):
                index = np.r_[
                    rng.choice(np.flatnonzero(y == 1), int(y.sum())),
                    rng.choice(np.flatnonzero(y == 0), int(y.size - y.sum())),
                ]
                roc_auc_score(y[index], p[index])

        print(f"roc_auc_score once per replicate: {best_time(sklearn_loop, 1):.3f} s")


if __name__ == "__main__":
    main()
