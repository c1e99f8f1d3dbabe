"""Calibration fitted on out-of-fold logits against the validation split, on unseen cases.

    .venv/bin/python -m benchmarks.oof_calibration TRAIN_COHORT TEST_COHORT RUN [RUN ...]

Each RUN was trained with ``train.cross_validation_folds`` (it holds ``out_of_fold.json``), or
``--folds-from DIR`` names a folder holding a run of the same name that was (the same settings and seed
give the same model, so the folds of one may be paired with the other's bundle). RUN's model
predicts the training cohort (for its validation split's logits) and TEST_COHORT; Platt scaling
(:class:`mmdx.training.calibration.TemperatureScaler`) is fitted on three sets of logits: the validation
split's (what ``mmdx train`` does), the out-of-fold logits of the fold models alone, and both pooled. Each
is scored on the test cohort's labelled cases: calibration slope and intercept with bootstrap intervals,
ECE (15 bins) beside a perfectly calibrated model's (``benchmarks.balance``'s definitions). Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.balance import calibration_summary


def calibration_sets(
    val_logits: np.ndarray, val_labels: np.ndarray, oof_logits: np.ndarray, oof_labels: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The (logits, labels) each calibration is fitted on: ``validation``, ``out-of-fold`` and ``pooled``."""
    return {
        "validation": (val_logits, val_labels),
        "out-of-fold": (oof_logits, oof_labels),
        "pooled": (np.concatenate([oof_logits, val_logits]), np.concatenate([oof_labels, val_labels])),
    }


def _labelled_logits(bundle, cohort: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split, label and logit of every labelled, usable case of ``cohort`` under ``bundle``."""
    from mmdx.predict import predict_with_removed, prepare_inputs

    inputs = prepare_inputs(bundle, cohort, workers=1)
    out = predict_with_removed(bundle.model, inputs.dataset, None)
    split = inputs.cohort.cases.drop_duplicates("case_id").set_index("case_id")["split"]
    keep = ~np.isnan(out.labels)
    return split.reindex(np.asarray(out.case_ids)[keep]).to_numpy(), out.labels[keep], out.logits[keep]


def score_run(
    run: Path, train: Path, test: Path, resamples: int = 200, folds_from: Path | None = None
) -> dict[str, dict]:
    """Each calibration of :func:`calibration_sets` for ``run``, scored on ``test``."""
    from mmdx.bundle import load_bundle
    from mmdx.run import RunPaths
    from mmdx.training.calibration import TemperatureScaler
    from mmdx.training.cross_fit import OutOfFold

    source = folds_from / run.name if folds_from is not None else run
    record = RunPaths(source).read_out_of_fold()
    if record is None:
        raise SystemExit(
            f"{source} has no out_of_fold.json: train it with --set train.cross_validation_folds=5"
        )
    folds = OutOfFold.from_dict(record)
    bundle = load_bundle(run / "bundle")
    split, labels, logits = _labelled_logits(bundle, train)
    val = split == "val"
    _, test_labels, test_logits = _labelled_logits(bundle, test)
    out = {}
    for name, (fit_logits, fit_labels) in calibration_sets(
        logits[val], labels[val], folds.logits, folds.labels
    ).items():
        scaler = TemperatureScaler(method="platt").fit(fit_logits, fit_labels)
        scored = calibration_summary(
            test_labels.astype(int), scaler.transform(test_logits), resamples, seed=0
        )
        out[name] = {"temperature": scaler.temperature_, "offset": scaler.offset_, **scored}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("train", type=Path)
    parser.add_argument("test", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument(
        "--folds-from", type=Path, help="folder of runs with the same names holding the folds"
    )
    args = parser.parse_args(argv)
    print("| run | fitted on | temperature | offset | slope [95%] | intercept [95%] | ECE (reference) |")
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        for name, row in score_run(run, args.train, args.test, args.resamples, args.folds_from).items():
            slope, intercept = row["slope"], row["intercept"]
            print(
                f"| {run.name} | {name} | {row['temperature']:.2f} | {row['offset']:+.2f} | "
                f"{slope['estimate']:.2f} [{slope['low']:.2f}, {slope['high']:.2f}] | "
                f"{intercept['estimate']:+.2f} [{intercept['low']:+.2f}, {intercept['high']:+.2f}] | "
                f"{row['ece']:.3f} ({row['ece_reference']['mean']:.3f}) |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
