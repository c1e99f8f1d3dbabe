"""The evaluate workflow: predict every usable case of a cohort with a run's bundle, and score the run.

Writes ``RUN/validation_report.json``, ``RUN/predictions.parquet`` and ``RUN/metrics.json`` (through
:class:`mmdx.run.RunPaths`): AUROC, AUPRC, Brier, ECE and the operating point per split and per
modality-presence pattern, calibration before and after the bundle's calibration, and the test AUROC with each
modality removed at test time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmdx.bundle import Bundle, load_bundle
from mmdx.data.dataset import MultimodalDataset
from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES
from mmdx.metrics import auroc, binary_metrics, brier, expected_calibration_error, metrics_by_group
from mmdx.predict import (
    CohortInputs,
    predict_with_removed,
    predictions_frame,
    prepare_inputs,
    run_predictions,
)
from mmdx.run import RunPaths

#: ``progress(done, total)`` while images are decoded
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EvaluationResult:
    """What ``mmdx evaluate`` wrote: the run and the metrics (``metrics.json`` holds them with NaN as null)."""

    run: RunPaths
    metrics: dict[str, Any]

    @property
    def predictions_path(self) -> Path:
        return self.run.predictions

    @property
    def metrics_path(self) -> Path:
        return self.run.metrics


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["label"].notna()]


def split_metrics(frame: pd.DataFrame, threshold: float, metrics: dict[str, Any]) -> None:
    """Fill ``splits``, ``calibration`` and ``by_modality_pattern`` of ``metrics`` from the predictions."""
    for split in ("train", "val", "test"):
        part = _labelled(frame[frame["split"] == split])
        if len(part) == 0:
            continue
        y, p = part["label"].to_numpy(), part["probability"].to_numpy()
        metrics["splits"][split] = binary_metrics(y, p, threshold)
        if len(np.unique(y)) == 2:
            p_raw = part["probability_uncalibrated"].to_numpy()
            metrics["calibration"][split] = {
                "ece_before": expected_calibration_error(y, p_raw),
                "ece_after": expected_calibration_error(y, p),
                "brier_before": brier(y, p_raw),
                "brier_after": brier(y, p),
                "ece_bins": 15,
            }
        metrics["by_modality_pattern"][split] = metrics_by_group(
            y, p, part["modalities"].to_numpy(), threshold
        )


def modality_removed_auroc(
    bundle: Bundle, inputs: CohortInputs, frame: pd.DataFrame, batch_size: int
) -> dict[str, dict[str, float]]:
    """Test AUROC with each of the model's modalities removed from every case, and with none removed;
    empty unless the labelled test cases hold both classes."""
    test = _labelled(frame[frame["split"] == "test"])
    if not (len(test) and len(np.unique(test["label"])) == 2):
        return {}
    test_ids = set(test["case_id"])
    index = [i for i, c in enumerate(inputs.table.case_ids) if c in test_ids]
    subset = MultimodalDataset(inputs.table.subset(index), bundle.preprocessing, inputs.cache)
    out: dict[str, dict[str, float]] = {}
    for modality in MODALITIES:
        if modality.value not in bundle.preprocessing.modalities:
            continue
        removed = predict_with_removed(bundle.model, subset, modality, batch_size)
        out[modality.value] = {"auroc": auroc(removed.labels, 1 / (1 + np.exp(-removed.logits)))}
    out["none"] = {"auroc": auroc(test["label"].to_numpy(), test["probability"].to_numpy())}
    return out


def cohort_metrics(
    frame: pd.DataFrame, bundle: Bundle, inputs: CohortInputs, batch_size: int, **extra: Any
) -> dict[str, Any]:
    """The metrics every evaluation of a cohort has (per split, per presence pattern, with each modality
    removed), with ``extra`` entries after the model's identity."""
    metrics: dict[str, Any] = {
        "threshold": bundle.threshold,
        "temperature": bundle.calibration.temperature_,
        "offset": bundle.calibration.offset_,
        "model_version": bundle.version,
        "cohort": str(inputs.cohort.root),
        "splits": {},
        "calibration": {},
        "by_modality_pattern": {},
        "modality_removed": {},
        **extra,
    }
    split_metrics(frame, bundle.threshold, metrics)
    metrics["modality_removed"] = modality_removed_auroc(bundle, inputs, frame, batch_size)
    return metrics


def _refuse_overwriting_own_evaluation(run: RunPaths, cohort: Path, own: Path) -> None:
    """A run whose own cohort was evaluated keeps that evaluation: another cohort goes under ``--name``."""
    if run.predictions.exists() and cohort.resolve() != own.resolve():
        raise MmdxError(
            f"{run.root} holds the evaluation of its own cohort ({own}); evaluating {cohort} here would "
            "overwrite it: add --name SITE to evaluate it as an external site under "
            f"{run.root}/external/SITE/"
        )


def evaluate_run(
    run_dir: str | Path,
    cohort_dir: str | Path | None = None,
    workers: int = 2,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Predict the cohort (default: the one the run was trained on) and write the run's predictions and
    metrics. ``progress(done, total)`` is called while images are decoded."""
    run = RunPaths(Path(run_dir))
    run.require("bundle")
    bundle = load_bundle(run.bundle)
    own = bundle.card["cohort"]["path"]
    cohort_dir = cohort_dir or own
    if not Path(cohort_dir).is_dir():
        raise MmdxError(f"cohort {cohort_dir} not found; pass --cohort DIR")
    _refuse_overwriting_own_evaluation(run, Path(cohort_dir), Path(own))
    inputs = prepare_inputs(bundle, cohort_dir, workers=workers, progress=progress)
    run.write_validation_report(inputs.cohort.report)
    start = time.perf_counter()
    preds = run_predictions(bundle, inputs, batch_size)
    latency = (time.perf_counter() - start) / max(1, len(preds.case_ids))
    frame = predictions_frame(bundle, inputs, preds)
    run.write_predictions(frame)

    metrics = cohort_metrics(frame, bundle, inputs, batch_size, latency_seconds_per_case=latency)
    bayes = inputs.cohort.spec.get("bayes_auroc")
    if bayes is not None:
        metrics["bayes_auroc"] = bayes
        metrics["modality_auroc_bayes"] = inputs.cohort.spec.get("modality_auroc")
    run.write_metrics(metrics)
    return EvaluationResult(run, metrics)
