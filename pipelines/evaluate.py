"""``mmdx evaluate``: predictions for every case of the cohort, and metrics per split and per modality pattern.

The workflow is :func:`mmdx.workflows.evaluate.evaluate_run`; this module parses the arguments and prints.
"""

from __future__ import annotations

import argparse

HELP = """\
Predict every usable case of the cohort with the run's bundle and write RUN/predictions.parquet (case_id,
split, label, calibrated probability, per-modality gate values and presence) and RUN/metrics.json: AUROC,
AUPRC, Brier, ECE and sensitivity/specificity/PPV/NPV at the operating threshold for each split and for
each modality-presence pattern of the test split, calibration before and after temperature scaling, and the
test AUROC with each modality removed at test time. The cohort defaults to the one the run was trained on.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="predict a cohort and compute metrics", description=HELP)
    p.add_argument("run", help="run directory (from mmdx train)")
    p.add_argument("--cohort", help="cohort directory (default: the cohort the run was trained on)")
    p.add_argument("--workers", type=int, default=2, help="processes decoding images (default 2)")
    p.add_argument("--batch-size", type=int, default=64)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mmdx.workflows.evaluate import evaluate_run

    with tqdm(desc="caching images", unit="image", leave=False, disable=None) as bar:
        result = evaluate_run(
            args.run,
            args.cohort,
            args.workers,
            args.batch_size,
            progress=lambda done, total: (setattr(bar, "total", total), bar.update(done - bar.n)),
        )
    metrics = result.metrics
    print(f"predictions: {result.predictions_path}\nmetrics: {result.metrics_path}")
    for split, m in metrics["splits"].items():
        print(
            f"  {split:5s} n={m['n']:4d}  AUROC {m['auroc']:.4f}  AUPRC {m['auprc']:.4f}  Brier {m['brier']:.4f}  "
            f"ECE {m['ece']:.4f}  sens {m['sensitivity']:.3f}  spec {m['specificity']:.3f}"
        )
    if "bayes_auroc" in metrics:
        print(f"  Bayes-optimal test AUROC of this synthetic cohort: {metrics['bayes_auroc']:.4f}")
    for name, value in metrics["modality_removed"].items():
        if name != "none":
            print(f"  test AUROC without {name}: {value['auroc']:.4f}")
    return 0
