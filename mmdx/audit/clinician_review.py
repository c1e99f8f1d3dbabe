"""The clinician-review section: what reviewers said about the model's predictions in the review store.

Only each reviewer's latest verdict on a case counts (earlier ones were superseded), and only verdicts given
on this run's model version: a verdict on another version judged another model. Reviewers appear as
``R1``, ``R2``, ... (ordered by account name), never by name; free-text comments and diagnoses are passed
through the note scrubber of :mod:`mmdx.deid.text` before they enter the report, so that an identifier a
reviewer typed (a name after a title, a date, a phone number, an e-mail, a record number) does not.

Reading verdicts for a report is an export of review data: :func:`read_verdicts` records an ``export``
audit event first, so an account that may not export (a clinician) gets nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmdx.audit.sections import (
    AUDIT_SECTIONS,
    DEFAULT_MIN_REVIEW_GROUP,
    AuditInputs,
    Column,
    Section,
    SectionSpec,
    SectionUnavailable,
    group_labels,
    subgroup_columns,
)
from mmdx.deid.text import NoteScrubber
from mmdx.keys import Keys
from mmdx.metrics import MISSING_GROUP
from mmdx.statistics import wilson_interval
from mmdx.store import AuditAction, PermissionDenied, Principal, ReviewStore, Verdict, VerdictRecord


@dataclass
class ReviewAccess:
    """Where the audit reads verdicts: an open store and a signed-in principal (auditor or admin).

    ``principal`` is None when no account was given; ``reason`` then says how to give one.
    """

    store: ReviewStore
    principal: Principal | None = None
    reason: str | None = None

    @property
    def label(self) -> str:
        """The store's URL without its password."""
        return self.store.url.render_as_string(hide_password=True)


def read_verdicts(access: ReviewAccess | None, run_id: str) -> list[VerdictRecord]:
    """Every reviewer's latest verdict on each case of ``run_id``, after recording an ``export`` event.

    Raises :class:`SectionUnavailable` when no store or no account was given, or the account may not export.
    """
    if access is None:
        raise SectionUnavailable("no review store given (--store URL)")
    if access.principal is None:
        raise SectionUnavailable(
            access.reason
            or f"no account to read the review store {access.label}: pass --user NAME (an auditor or admin)"
        )
    try:
        access.store.record_event(
            access.principal, AuditAction.EXPORT, run_id=run_id, detail={"what": "audit_report"}
        )
        latest = access.store.latest_verdicts(access.principal, run_id)
    except PermissionDenied as exc:
        raise SectionUnavailable(f"{exc}; sign in with an auditor or admin account (--user NAME)") from None
    return [record for records in latest.values() for record in records]


def _rate(successes: int, n: int, alpha: float) -> dict[str, Any]:
    low, high = wilson_interval(successes, n, alpha) if n else (None, None)
    return {
        "estimate": successes / n if n else None,
        "low": low,
        "high": high,
        "n": n,
        "method": "Wilson score",
    }


def _verdict_counts(verdicts: pd.Series) -> dict[str, int]:
    counts = Counter(verdicts.tolist())
    return {v.value: int(counts.get(v.value, 0)) for v in Verdict}


def _breakdown(table: pd.DataFrame, column: str, alpha: float, min_n: int) -> list[dict[str, Any]]:
    rows = []
    for group, part in table.groupby(column, sort=True, dropna=False):
        counts = _verdict_counts(part["verdict"])
        n = int(len(part))
        flag = f"n={n} verdicts < min_n={min_n}" if n < min_n else None
        rows.append(
            {
                "group": str(group),
                "n_verdicts": n,
                "n_cases": int(part[Keys.CASE_ID].nunique()),
                **counts,
                "disagree_rate": _rate(counts[Verdict.DISAGREE.value], n, alpha),
                "too_small": flag is not None,
                "reason": flag,
            }
        )
    return rows


def _protected_ids(case_ids: list[str]) -> re.Pattern | None:
    ids = sorted({c for c in case_ids if c}, key=len, reverse=True)
    if not ids:
        return None
    return re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(c) for c in ids) + r")(?![\w-])")


def clinician_review_section(
    verdicts: list[VerdictRecord],
    frame: pd.DataFrame,
    model_version: str,
    attributes: list[str],
    *,
    run_id: str,
    store_label: str,
    alpha: float = 0.05,
    min_n: int = DEFAULT_MIN_REVIEW_GROUP,
) -> dict[str, Any]:
    """Verdict counts, agreement with the model (agree / (agree + disagree), Wilson interval), verdicts by
    whether the model was right, by its prediction and by subgroup, the helpful explanations, confidence,
    inter-reviewer unanimity, and the scrubbed comments."""
    current = [v for v in verdicts if v.model_version == model_version]
    other_versions = len(verdicts) - len(current)
    known = set(frame[Keys.CASE_ID])
    unknown_cases = sum(1 for v in current if v.case_id not in known)
    current = [v for v in current if v.case_id in known]
    if not current:
        extra = f"; {other_versions} verdict(s) concern other model versions" if other_versions else ""
        raise SectionUnavailable(
            f"the review store {store_label} holds no verdict on run '{run_id}' for model version "
            f"{model_version}{extra}"
        )
    names = sorted({v.user for v in current})
    reviewer = {name: f"R{i}" for i, name in enumerate(names, start=1)}
    cases = frame.set_index(Keys.CASE_ID)
    columns, _ = subgroup_columns(frame, attributes)
    table = pd.DataFrame(
        {
            Keys.CASE_ID: [v.case_id for v in current],
            "reviewer": [reviewer[v.user] for v in current],
            "verdict": [v.verdict.value for v in current],
            "confidence": [v.confidence for v in current],
        }
    )
    rows = cases.loc[table[Keys.CASE_ID]]
    label = rows[Keys.LABEL].to_numpy(dtype=np.float64)
    predicted = rows[Column.PREDICTED].to_numpy(dtype=np.int64) if Column.PREDICTED in rows else None
    table["split"] = rows[Keys.SPLIT].astype(str).to_numpy()
    if predicted is not None:
        table["prediction"] = np.where(predicted == 1, "predicted positive", "predicted negative")
        outcome = np.where(
            np.isnan(label), "unlabelled", np.where(label == predicted, "model right", "model wrong")
        )
        table["model_outcome"] = outcome
    for attribute, column in columns.items():
        values = group_labels(rows[column])
        table[attribute] = [MISSING_GROUP if v is None else v for v in values]

    counts = _verdict_counts(table["verdict"])
    decided = counts[Verdict.AGREE.value] + counts[Verdict.DISAGREE.value]
    per_case = table.groupby(Keys.CASE_ID)["verdict"].agg(["size", "nunique"])
    multi = per_case[per_case["size"] > 1]
    helpful = Counter(kind.value for v in current for kind in v.helpful_explanations)

    scrubber = NoteScrubber(protect=_protected_ids(sorted(known)))
    comments = []
    replaced = 0
    for v in sorted(current, key=lambda r: (r.case_id, reviewer[r.user], r.created_at)):
        if not (v.comment or v.diagnosis):
            continue
        comment = scrubber.scrub(v.comment) if v.comment else None
        diagnosis = scrubber.scrub(v.diagnosis) if v.diagnosis else None
        replaced += sum((comment.counts if comment else Counter()).values())
        replaced += sum((diagnosis.counts if diagnosis else Counter()).values())
        comments.append(
            {
                "case_id": v.case_id,
                "reviewer": reviewer[v.user],
                "date": v.created_at.date().isoformat(),
                "verdict": v.verdict.value,
                "confidence": v.confidence,
                "diagnosis": diagnosis.text if diagnosis else "",
                "comment": comment.text if comment else "",
            }
        )
    by_subgroup = [
        {"attribute": attribute, "groups": _breakdown(table, attribute, alpha, min_n)}
        for attribute in columns
    ]
    return {
        "store": store_label,
        "run_id": run_id,
        "model_version": model_version,
        "alpha": alpha,
        "min_n": min_n,
        "n_verdicts": int(len(table)),
        "n_cases_reviewed": int(table[Keys.CASE_ID].nunique()),
        "n_reviewers": len(names),
        "excluded_other_model_versions": other_versions,
        "excluded_unknown_cases": unknown_cases,
        "cases_reviewed_by_split": dict(
            sorted(Counter(table.drop_duplicates(Keys.CASE_ID)["split"]).items())
        ),
        "verdict_counts": counts,
        "agreement": _rate(counts[Verdict.AGREE.value], decided, alpha),
        "unsure_share": counts[Verdict.UNSURE.value] / len(table),
        "by_model_outcome": _breakdown(table, "model_outcome", alpha, 0) if predicted is not None else [],
        "by_prediction": _breakdown(table, "prediction", alpha, 0) if predicted is not None else [],
        "multiple_reviewers": {
            "cases": int(len(multi)),
            "unanimous": int((multi["nunique"] == 1).sum()),
        },
        "by_subgroup": by_subgroup,
        "helpful_explanations": dict(sorted(helpful.items())),
        "confidence": {
            "mean": float(table["confidence"].mean()),
            "counts": {str(k): int((table["confidence"] == k).sum()) for k in range(1, 6)},
        },
        "comments": comments,
        "comments_scrubbed_spans": replaced,
    }


def _build(inputs: AuditInputs) -> dict[str, Any]:
    review = inputs.review
    return clinician_review_section(
        read_verdicts(review, inputs.run_id),
        inputs.frame,
        inputs.bundle.version,
        inputs.attributes,
        run_id=inputs.run_id,
        store_label=review.label if review is not None else "",
        alpha=inputs.options.alpha,
        min_n=inputs.options.min_review_group_size,
    )


AUDIT_SECTIONS.register(SectionSpec(Section.CLINICIAN_REVIEW, "clinician review", _build))
