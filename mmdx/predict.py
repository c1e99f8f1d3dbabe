"""Applying a trained bundle to a cohort: validated inputs, calibrated predictions, the predictions table.

The library side of ``mmdx predict`` and ``mmdx evaluate``, also used by ``mmdx explain`` and the audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from mmdx.bundle import Bundle
from mmdx.data.dataset import CaseTable, ImageCache, MultimodalDataset, build_case_table
from mmdx.data.plan import declared_modality, plan_cohort_images
from mmdx.data.validation import ValidatedCohort, validate_cohort
from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES, Modality
from mmdx.training.inference import Predictions, predict_dataset


@dataclass
class CohortInputs:
    """A cohort validated and turned into the bundle's inputs."""

    cohort: ValidatedCohort
    table: CaseTable
    dataset: MultimodalDataset
    cache: ImageCache | None

    def split_of(self) -> np.ndarray:
        return self.cohort.cases.set_index("case_id").loc[self.table.case_ids, "split"].to_numpy()


def prepare_inputs(
    bundle: Bundle, cohort_dir: str | Path, workers: int = 1, progress=None, check_images: bool = True
) -> CohortInputs:
    """Validate ``cohort_dir`` and build the bundle's inputs for every usable case.

    The bundle's image plan is applied as it is (never refitted): its warnings (an image far smaller than
    the grid, a modality the model never saw, ...) join the validation report, and images it cannot take
    are dropped from their cases.
    """
    cohort = validate_cohort(cohort_dir, workers=workers, check_images=check_images)
    preprocessing = bundle.preprocessing
    plan = bundle.image_plan
    if plan is not None and cohort.report.usable:
        plan_cohort_images(cohort, plan=plan)
    if not cohort.report.usable:
        raise MmdxError(f"no usable case in {cohort_dir}; run 'mmdx validate {cohort_dir}' for the reasons")
    table = build_case_table(cohort, preprocessing)
    cache = None
    if plan is not None:
        data = bundle.config.data.cache
        cache = ImageCache(plan, data.mode, data.dir, declared_modality(cohort))
        cache.warm(table.image_paths, workers=max(1, workers), progress=progress)
    return CohortInputs(cohort, table, MultimodalDataset(table, preprocessing, cache), cache)


def presence_pattern(presence: np.ndarray) -> list[str]:
    """``[N, M]`` bool -> "image+tabular+text"-style labels ("none" when nothing is present)."""
    return [
        "+".join(m.value for m, p in zip(MODALITIES, row, strict=True) if p) or "none" for row in presence
    ]


def predictions_frame(
    bundle: Bundle, inputs: CohortInputs, preds: Predictions, assigned_splits: bool = True
) -> pd.DataFrame:
    """The run directory's predictions table (``data_schemas/predictions.schema.json``): one row per case.

    ``assigned_splits``: keep the splits validation assigned to cases without one (evaluation of the
    training cohort needs them); ``False`` (new cases, ``mmdx predict``) writes an empty split unless the
    cohort gave one.

    Columns: ``case_id, patient_id, split, label, logit, probability`` (calibrated), ``probability_uncalibrated``,
    ``predicted`` (at the bundle's threshold), ``gate_<modality>`` and ``has_<modality>`` for each modality,
    ``modalities`` (the presence pattern), and the cohort's subgroup columns.
    """
    cases = inputs.cohort.cases.set_index("case_id").loc[preds.case_ids]
    probability = bundle.calibration.transform(preds.logits)
    frame = pd.DataFrame(
        {
            "case_id": preds.case_ids,
            "patient_id": cases["patient_id"].to_numpy(),
            "split": _splits(cases, assigned_splits),
            "label": preds.labels.astype(float),
            "logit": preds.logits.astype(float),
            "probability": probability,
            "probability_uncalibrated": 1.0 / (1.0 + np.exp(-preds.logits.astype(float))),
            "predicted": (probability >= bundle.threshold).astype(int),
        }
    )
    for j, modality in enumerate(MODALITIES):
        frame[f"gate_{modality.value}"] = preds.gates[:, j].astype(float)
        frame[f"has_{modality.value}"] = preds.presence[:, j].astype(bool)
    frame["modalities"] = presence_pattern(preds.presence)
    for column in inputs.cohort.spec.get("subgroups", []) or []:
        if column in cases.columns:
            frame[column] = cases[column].astype(str).to_numpy()
    return frame


def _splits(cases: pd.DataFrame, assigned: bool) -> np.ndarray:
    splits = cases["split"].astype(object).to_numpy()
    if assigned or "split_given" not in cases:
        return splits
    return np.where(cases["split_given"].astype(bool).to_numpy(), splits, "")


def run_predictions(bundle: Bundle, inputs: CohortInputs, batch_size: int = 64) -> Predictions:
    return predict_dataset(bundle.model, inputs.dataset, batch_size=batch_size, device="cpu")


def predict_with_removed(
    model: torch.nn.Module, dataset: Dataset, modality: Modality | None, batch_size: int = 64
) -> Predictions:
    """The model's predictions with ``modality`` removed from every case at test time (None: intact).

    The one definition of "AUROC with a modality removed" that ``mmdx evaluate`` (metrics.json) and the
    audit's robustness section (with intervals) both score."""
    return predict_dataset(
        model, dataset, batch_size=batch_size, remove=[] if modality is None else [modality]
    )
