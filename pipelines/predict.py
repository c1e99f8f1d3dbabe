"""``mmdx predict``: apply a trained bundle to a cohort (labels not needed) and write its predictions.

The workflow is :func:`mmdx.workflows.predict.predict_cohort`; this module parses the arguments and prints.
"""

from __future__ import annotations

import argparse

HELP = """\
Predict every usable case of COHORT with a trained bundle (a bundle folder or a run directory). The cohort
is validated first -- unlabelled cases (empty label) are fine -- and rejected cases are listed. Writes a
table with case_id, calibrated probability, the decision at the bundle's operating threshold, per-modality
gate values and which modalities were present: CSV or Parquet by the extension of --out. The split column
is the cohort's own (empty for cases without one: new cases belong to no training split). Images are
preprocessed with the bundle's own plan; images it does not fit are reported as validation warnings.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="predict a cohort with a trained bundle", description=HELP)
    p.add_argument("bundle", help="bundle folder (RUN/bundle) or run directory")
    p.add_argument("cohort", help="cohort directory")
    p.add_argument(
        "--out", default="predictions.csv", help="output file, .csv or .parquet (default predictions.csv)"
    )
    p.add_argument("--workers", type=int, default=2, help="processes decoding images (default 2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--calibration",
        metavar="DIR",
        help="apply a local recalibration (RUN/calibrations/SITE-vK from 'mmdx evaluate --name SITE'); the "
        "bundle's own probability is kept in probability_home",
    )


def run(args: argparse.Namespace) -> int:
    from mmdx.workflows.predict import predict_cohort
    from pipelines.progress import caching_progress

    with caching_progress() as progress:
        result = predict_cohort(
            args.bundle,
            args.cohort,
            args.out,
            workers=args.workers,
            batch_size=args.batch_size,
            calibration=args.calibration,
            progress=progress,
        )
    frame = result.predictions
    print(
        f"predicted {len(frame)} cases with model {result.model_version} (threshold {result.threshold:.3f}): "
        f"{int(frame['predicted'].sum())} above the threshold -> {result.out}"
    )
    if result.calibration is not None:
        print(f"probabilities recalibrated locally with {result.calibration}")
    if result.rejected:
        print(
            f"{len(result.rejected)} case rows were rejected by validation and not predicted: "
            f"{', '.join(result.rejected[:10])}"
        )
    return 0
