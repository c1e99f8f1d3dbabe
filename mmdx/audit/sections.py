"""The vocabulary shared by the audit report's sections: their names, their status and the predictions table.

Every section of the report is a dict ``{"status": "ok", ...content}`` or ``{"status": "not_available",
"reason": "..."}``. A section builder returns its content, or raises :class:`SectionUnavailable` with the
reason a reader should see (e.g. "no review store given (--store URL)"); :func:`build_section` turns either
into the section dict. Anything else a builder raises is a bug or a user error and propagates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmdx.keys import Keys
from mmdx.registry import Registry
from mmdx.run import RunPaths

if TYPE_CHECKING:
    from mmdx.audit.clinician_review import ReviewAccess
    from mmdx.audit.report import AuditOptions
    from mmdx.bundle import Bundle


class SectionUnavailable(Exception):
    """A section cannot be computed from what the run holds; the message says why and how to fix it."""


class SectionStatus(StrEnum):
    OK = "ok"
    NOT_AVAILABLE = "not_available"


class Section(StrEnum):
    """The report's sections, in reading order."""

    PROVENANCE = "provenance"
    MODEL_CARD = "model_card"
    COHORT_FLOW = "cohort_flow"
    DISCRIMINATION = "discrimination"
    OPERATING_POINT = "operating_point"
    CALIBRATION = "calibration"
    SUBGROUPS = "subgroups"
    ROBUSTNESS = "robustness"
    EXPLANATIONS = "explanations"
    CLINICIAN_REVIEW = "clinician_review"
    COMPARISON = "comparison"
    EXTERNAL_VALIDATION = "external_validation"


#: Headings of the sections in the HTML report.
SECTION_TITLES: dict[Section, str] = {
    Section.PROVENANCE: "Provenance",
    Section.MODEL_CARD: "Model card",
    Section.COHORT_FLOW: "Cohort flow",
    Section.DISCRIMINATION: "Discrimination",
    Section.OPERATING_POINT: "Operating point",
    Section.CALIBRATION: "Calibration",
    Section.SUBGROUPS: "Subgroups",
    Section.ROBUSTNESS: "Robustness",
    Section.EXPLANATIONS: "Explanations",
    Section.CLINICIAN_REVIEW: "Clinician review",
    Section.COMPARISON: "Comparison with another run",
    Section.EXTERNAL_VALIDATION: "External validation",
}


@dataclass(frozen=True)
class AuditInputs:
    """What a section builder may read: the run (its paths, id, bundle, predictions, validation report),
    the report's options, and the optional review store access, second run and moved cohort."""

    run: RunPaths
    run_id: str
    bundle: Bundle
    frame: pd.DataFrame
    options: AuditOptions
    attributes: list[str]
    validation_report: dict[str, Any] | None
    bayes_auroc: float | None
    review: ReviewAccess | None
    other: tuple[pd.DataFrame, Bundle, str] | None
    cohort_dir: str | Path | None
    created: datetime
    progress: bool


@dataclass(frozen=True)
class SectionSpec:
    """One computed section of the audit report: its name, what the progress bar says while it is built
    (formatted with the options, e.g. ``"discrimination (bootstrap x{n_resamples})"``), and its builder,
    which returns the section's content or raises :class:`SectionUnavailable`. Its heading is in
    :data:`SECTION_TITLES`, its HTML in :mod:`mmdx.audit.template`, its JSON Schema in
    ``data_schemas/audit_report.schema.json``."""

    name: Section
    label: str
    build: Callable[[AuditInputs], dict[str, Any]]


#: The computed sections, registered by the module that computes each; :mod:`mmdx.audit.report` imports
#: them all and builds them in :class:`Section` order (the model card, computed from the others, last).
AUDIT_SECTIONS: Registry[SectionSpec] = Registry("audit section")


class Column(StrEnum):
    """Columns of ``predictions.parquet`` beyond the sample keys of :class:`~mmdx.keys.Keys`."""

    LOGIT = "logit"
    PROBABILITY = "probability"  # calibrated (Platt or temperature scaling)
    PROBABILITY_UNCALIBRATED = "probability_uncalibrated"  # sigmoid(logit)
    PREDICTED = "predicted"  # 0/1 at the bundle's threshold
    MODALITIES = "modalities"  # presence pattern, e.g. "image+tabular"


#: Columns every audit needs in ``predictions.parquet``.
REQUIRED_COLUMNS: tuple[str, ...] = (
    Keys.CASE_ID,
    Keys.SPLIT,
    Keys.LABEL,
    Column.LOGIT,
    Column.PROBABILITY,
    Column.PROBABILITY_UNCALIBRATED,
    Column.MODALITIES,
)

#: The JSON Schema of the report document, in ``data_schemas/``.
REPORT_SCHEMA = "audit_report.schema.json"
#: Review-section groups with fewer verdicts than this are flagged too small to judge, by default.
DEFAULT_MIN_REVIEW_GROUP = 10

#: The pseudo-attribute under which the modality-presence pattern is audited like a cohort subgroup.
MODALITY_PATTERN = "modality_pattern"

# Spellings a missing subgroup value takes once a column has gone through ``astype(str)``.
_MISSING_TEXT = frozenset({"", "nan", "none", "<na>", "nat"})


def build_section(builder: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``{"status": "ok", **builder()}``, or ``{"status": "not_available", "reason": ...}`` when the builder
    raises :class:`SectionUnavailable`."""
    try:
        content = builder()
    except SectionUnavailable as exc:
        return {"status": SectionStatus.NOT_AVAILABLE.value, "reason": str(exc)}
    return {"status": SectionStatus.OK.value, **content}


def is_ok(section: dict[str, Any] | None) -> bool:
    return bool(section) and section.get("status") == SectionStatus.OK


def labelled_split(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of ``split`` that carry a label (unlabelled cases cannot be scored)."""
    return frame[(frame[Keys.SPLIT] == split) & frame[Keys.LABEL].notna()]


def evaluation_arrays(frame: pd.DataFrame, split: str, column: str = Column.PROBABILITY) -> tuple:
    """``(y [n] int 0/1, p [n] float)`` of the labelled cases of ``split``; raises :class:`SectionUnavailable`
    unless both classes are present (discrimination, calibration and thresholds all need them)."""
    part = labelled_split(frame, split)
    y = part[Keys.LABEL].to_numpy(dtype=np.float64).astype(np.int64)
    n_pos = int(y.sum())
    if part.empty:
        present = ", ".join(sorted(frame[Keys.SPLIT].astype(str).unique())) or "none"
        raise SectionUnavailable(
            f"split '{split}' has no labelled case in predictions.parquet (splits present: {present}); "
            "choose another split with --split"
        )
    if n_pos in (0, len(y)):
        raise SectionUnavailable(
            f"split '{split}' holds one class only (n_positive={n_pos}, n_negative={len(y) - n_pos}); "
            "these statistics compare positive with negative cases"
        )
    return y, part[column].to_numpy(dtype=np.float64)


def group_labels(values: pd.Series) -> np.ndarray:
    """Subgroup values as strings, with missing values (NaN, None, "nan" after ``astype(str)``) as None,
    which :func:`mmdx.metrics.check_groups` reports as ``<missing>``."""
    out = []
    for value in values.tolist():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out.append(None)
        elif isinstance(value, str) and value.strip().lower() in _MISSING_TEXT:
            out.append(None)
        else:
            out.append(str(value))
    return np.array(out, dtype=object)


def subgroup_columns(frame: pd.DataFrame, attributes: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``({attribute: column}, {attribute: why it cannot be audited})`` for the cohort's subgroup attributes
    plus the modality-presence pattern."""
    available: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    for attribute in attributes:
        if attribute in frame.columns:
            available[attribute] = attribute
        else:
            unavailable[attribute] = (
                f"column '{attribute}' (a subgroup of cohort.yaml) is not in predictions.parquet; "
                "run 'mmdx evaluate RUN' again so that it is carried over from the cases table"
            )
    available[MODALITY_PATTERN] = Column.MODALITIES
    return available, unavailable
