"""The cohort-flow section: how many cases came in, which were excluded and why, and what reached each split.

Built from the run's ``validation_report.json`` (written by ``mmdx evaluate`` for the cohort it predicted)
and ``predictions.parquet``. Only counts appear, never case identifiers.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from mmdx.audit.sections import (
    AUDIT_SECTIONS,
    AuditInputs,
    Column,
    Section,
    SectionSpec,
    SectionUnavailable,
    group_labels,
)
from mmdx.data.issues import DESCRIPTIONS, IssueCode
from mmdx.data.splits import SPLITS
from mmdx.data.validation import REJECTING
from mmdx.keys import MODALITIES, Keys
from mmdx.metrics import MISSING_GROUP

#: Split name under which rejected rows without a valid split are counted.
UNASSIGNED = "unassigned"


def _describe(code: str) -> str:
    try:
        return DESCRIPTIONS[IssueCode(code)]
    except ValueError:
        return "reason code not known to this mmdx version"


def _primary_reason(issues: list[dict[str, Any]]) -> str:
    """The first issue code that rejects a case (the validator checks in a fixed order, so the first one
    is the reason the case stopped); the first code at all when none is in the rejecting set."""
    codes = [str(i.get("code")) for i in issues]
    for code in codes:
        if code in REJECTING:
            return code
    return codes[0] if codes else "UNKNOWN"


def _split_counts(part: pd.DataFrame, attributes: list[str]) -> dict[str, Any]:
    labels = part[Keys.LABEL]
    labelled = labels.notna()
    positives = int((labels[labelled] == 1).sum())
    n_labelled = int(labelled.sum())
    patterns = Counter(part[Column.MODALITIES].astype(str).tolist())
    characteristics = {}
    for attribute in attributes:
        values = [MISSING_GROUP if v is None else v for v in group_labels(part[attribute])]
        characteristics[attribute] = dict(sorted(Counter(values).items()))
    return {
        "predicted": int(len(part)),
        "labelled": n_labelled,
        "unlabelled": int(len(part)) - n_labelled,
        "positive": positives,
        "negative": n_labelled - positives,
        "prevalence": positives / n_labelled if n_labelled else None,
        "modality_patterns": dict(sorted(patterns.items(), key=lambda kv: (-kv[1], kv[0]))),
        "characteristics": characteristics,
    }


def cohort_flow_section(
    frame: pd.DataFrame, validation_report: dict[str, Any] | None, attributes: list[str]
) -> dict[str, Any]:
    """Cases in, excluded by validation reason code (overall and per split), and per split the cases
    predicted, labelled, positive (prevalence), their modality-presence patterns and subgroup make-up.

    ``validation_report``: the parsed ``validation_report.json``; None raises :class:`SectionUnavailable`.
    ``attributes``: subgroup columns of ``frame`` whose distribution per split is shown.
    """
    if validation_report is None:
        raise SectionUnavailable(
            "validation_report.json is missing from the run; run 'mmdx evaluate RUN' to write it"
        )
    summary = validation_report.get("summary") or {}
    cases = validation_report.get("cases") or []
    splits_present = [s for s in SPLITS if (frame[Keys.SPLIT] == s).any()]
    extra = sorted(set(frame[Keys.SPLIT].astype(str)) - set(SPLITS))

    excluded: Counter[str] = Counter()
    excluded_by_split: dict[str, Counter[str]] = {}
    kept_issues: Counter[str] = Counter()
    for case in cases:
        issues = case.get("issues") or []
        if case.get("status") == "rejected":
            reason = _primary_reason(issues)
            split = case.get("split") if case.get("split") in SPLITS else UNASSIGNED
            excluded[reason] += 1
            excluded_by_split.setdefault(reason, Counter())[split] += 1
        else:
            # a kept case counts once per code, however many rows or files the code concerned
            kept_issues.update({str(i.get("code")) for i in issues})
    file_issues = Counter(str(i.get("code")) for i in validation_report.get("files") or [])

    split_names = [*splits_present, *extra]
    per_split = {s: _split_counts(frame[frame[Keys.SPLIT].astype(str) == s], attributes) for s in split_names}
    validated_splits = summary.get("splits") or {}
    for name, counts in per_split.items():
        counts["usable"] = (validated_splits.get(name) or {}).get("cases")
    excluded_rows = [
        {
            "code": code,
            "description": _describe(code),
            "cases": n,
            "by_split": dict(sorted(excluded_by_split[code].items())),
        }
        for code, n in sorted(excluded.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    rows_in = int(summary.get("rows", len(cases)))
    usable = int(summary.get("usable_cases", rows_in - sum(excluded.values())))
    labelled = frame[Keys.LABEL].notna()
    return {
        "cohort": {k: validation_report.get("cohort", {}).get(k) for k in ("name", "version")},
        "validated": validation_report.get("created"),
        "rows_in": rows_in,
        "accepted": int(summary.get("accepted", 0)),
        "accepted_with_warnings": int(summary.get("warning", 0)),
        "rejected": int(summary.get("rejected", sum(excluded.values()))),
        "usable": usable,
        "predicted": int(len(frame)),
        "not_predicted": usable - int(len(frame)),
        "labelled": int(labelled.sum()),
        "prevalence": float((frame.loc[labelled, Keys.LABEL] == 1).mean()) if labelled.any() else None,
        "excluded_by_reason": excluded_rows,
        "issues_in_kept_cases": [
            {"code": code, "description": _describe(code), "cases": n}
            for code, n in sorted(kept_issues.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "file_issues": [
            {"code": code, "description": _describe(code), "count": n}
            for code, n in sorted(file_issues.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "observation_rows": summary.get("observation_rows"),
        "observation_rows_used": summary.get("observation_rows_used"),
        "splits_assigned_by_mmdx": summary.get("splits_assigned_by_mmdx"),
        "splits": per_split,
        "modality_presence": {
            m.value: int(np.count_nonzero(frame[f"has_{m.value}"].to_numpy(dtype=bool)))
            for m in MODALITIES
            if f"has_{m.value}" in frame.columns
        },
        "attributes": list(attributes),
    }


def _build(inputs: AuditInputs) -> dict[str, Any]:
    return cohort_flow_section(inputs.frame, inputs.validation_report, inputs.attributes)


AUDIT_SECTIONS.register(SectionSpec(Section.COHORT_FLOW, "cohort flow", _build))
