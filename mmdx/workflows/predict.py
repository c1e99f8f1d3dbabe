"""The predict workflow: apply a trained bundle to a cohort (labels not needed) and write its predictions.

The table has the columns of the run directory's predictions table (``data_schemas/predictions.schema.json``),
written to a file of the caller's choice: CSV, or Parquet by the extension. Its ``split`` is the cohort's own,
empty for a case without one. Images are preprocessed with the bundle's own plan.

With ``calibration`` (a folder written by ``mmdx evaluate RUN --cohort DIR --name SITE``, checked against its
manifest and the bundle's model version), ``probability`` is the locally recalibrated probability and
``predicted`` is taken at the bundle's threshold on it; the bundle's own calibrated probability stays in
``probability_home``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmdx.bundle import load_bundle
from mmdx.owner_only import write_table_owner_only
from mmdx.predict import predictions_frame, prepare_inputs, run_predictions

#: ``progress(done, total)`` while images are decoded
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PredictResult:
    """The predictions written to ``out``, the model that made them, and the case rows validation rejected."""

    out: Path
    predictions: pd.DataFrame
    model_version: str
    threshold: float
    rejected: list[str]
    #: the local recalibration applied (its folder), or None
    calibration: Path | None = None


def predict_cohort(
    bundle_dir: str | Path,
    cohort_dir: str | Path,
    out: str | Path,
    workers: int = 2,
    batch_size: int = 64,
    progress: Progress | None = None,
    calibration: str | Path | None = None,
) -> PredictResult:
    """Predict every usable case of ``cohort_dir`` with the bundle (a bundle folder or a run directory),
    applying the local recalibration in the folder ``calibration`` when given."""
    from mmdx.training.recalibration import load_recalibration

    bundle = load_bundle(bundle_dir)
    recalibration = None if calibration is None else load_recalibration(calibration, bundle.version)
    inputs = prepare_inputs(bundle, cohort_dir, workers=workers, progress=progress)
    # new cases belong to no training split: only a split the cohort gave is written
    frame = predictions_frame(
        bundle, inputs, run_predictions(bundle, inputs, batch_size), assigned_splits=False
    )
    if recalibration is not None:
        frame.insert(frame.columns.get_loc("probability") + 1, "probability_home", frame["probability"])
        z = bundle.calibration.calibrated_logit(frame["logit"].to_numpy(dtype=np.float64))
        frame["probability"] = recalibration.transform(z)
        frame["predicted"] = (frame["probability"] >= bundle.threshold).astype(int)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table_owner_only(frame, out)  # patient-level rows: owner-only
    rejected = [c.case_id for c in inputs.cohort.report.cases if c.status == "rejected"]
    return PredictResult(
        out,
        frame,
        bundle.version,
        bundle.threshold,
        rejected,
        None if calibration is None else Path(calibration),
    )
