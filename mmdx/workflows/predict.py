"""The predict workflow: apply a trained bundle to a cohort (labels not needed) and write its predictions.

The table has the columns of the run directory's predictions table (``data_schemas/predictions.schema.json``),
written to a file of the caller's choice: CSV, or Parquet by the extension. Its ``split`` is the cohort's own,
empty for a case without one. Images are preprocessed with the bundle's own plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def predict_cohort(
    bundle_dir: str | Path,
    cohort_dir: str | Path,
    out: str | Path,
    workers: int = 2,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> PredictResult:
    """Predict every usable case of ``cohort_dir`` with the bundle (a bundle folder or a run directory)."""
    bundle = load_bundle(bundle_dir)
    inputs = prepare_inputs(bundle, cohort_dir, workers=workers, progress=progress)
    # new cases belong to no training split: only a split the cohort gave is written
    frame = predictions_frame(
        bundle, inputs, run_predictions(bundle, inputs, batch_size), assigned_splits=False
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table_owner_only(frame, out)  # patient-level rows: owner-only
    rejected = [c.case_id for c in inputs.cohort.report.cases if c.status == "rejected"]
    return PredictResult(out, frame, bundle.version, bundle.threshold, rejected)
