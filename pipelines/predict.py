"""``mmdx predict``: apply a trained bundle to a cohort (labels not needed) and write its predictions."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from mmdx.bundle import load_bundle
from mmdx.predict import predictions_frame, prepare_inputs, run_predictions

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


def run(args: argparse.Namespace) -> int:
    bundle = load_bundle(args.bundle)
    with tqdm(desc="caching images", unit="image", leave=False, disable=None) as bar:
        inputs = prepare_inputs(
            bundle,
            args.cohort,
            workers=args.workers,
            progress=lambda done, total: (setattr(bar, "total", total), bar.update(done - bar.n)),
        )
    frame = predictions_frame(
        bundle, inputs, run_predictions(bundle, inputs, args.batch_size), assigned_splits=False
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    summary = inputs.cohort.report.summary
    print(
        f"predicted {len(frame)} cases with model {bundle.version} (threshold {bundle.threshold:.3f}): "
        f"{int(frame['predicted'].sum())} above the threshold -> {out}"
    )
    if summary["rejected"]:
        rejected = [c.case_id for c in inputs.cohort.report.cases if c.status == "rejected"]
        print(
            f"{summary['rejected']} case rows were rejected by validation and not predicted: {', '.join(rejected[:10])}"
        )
    return 0
