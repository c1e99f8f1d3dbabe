"""Clinicians' verdicts on a case: what the form collects, how it is stored, and the history shown back.

A verdict is stored with the user, the time, the model version and the explanation version the clinician
saw (``"none"`` when the case had no explanation). Verdicts are never overwritten: a change of mind is a
new row that supersedes the previous one, and the history lists both.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from mmdx.errors import MmdxError
from mmdx.review.case import CaseView
from mmdx.review.context import ReviewContext
from mmdx.store import ExplanationKind, Principal, Verdict, VerdictRecord

VERDICT_LABELS: dict[Verdict, str] = {
    Verdict.AGREE: "Agree with the model",
    Verdict.DISAGREE: "Disagree with the model",
    Verdict.UNSURE: "Unsure",
}

EXPLANATION_LABELS: dict[ExplanationKind, str] = {
    ExplanationKind.IMAGE: "Image attribution map",
    ExplanationKind.TABULAR: "Vital signs & labs attributions",
    ExplanationKind.TEXT: "Highlighted note words",
    ExplanationKind.SHAPLEY: "Modality contributions (Shapley)",
}

CONFIDENCE_LABELS: dict[int, str] = {1: "1 (a guess)", 2: "2", 3: "3", 4: "4", 5: "5 (certain)"}


@dataclass(frozen=True)
class VerdictEntry:
    """What the reviewer entered in the verdict form."""

    verdict: Verdict
    confidence: int
    diagnosis: str = ""
    comment: str = ""
    helpful: Sequence[ExplanationKind] = field(default_factory=tuple)


def helpful_options(view: CaseView) -> list[ExplanationKind]:
    """The explanation views the case page actually showed, which the reviewer may name as helpful."""
    if not view.explained:
        return []
    options = []
    if view.image is not None and view.image.attribution is not None:
        options.append(ExplanationKind.IMAGE)
    if any(r.attribution is not None for r in view.tabular):
        options.append(ExplanationKind.TABULAR)
    if view.note_spans:
        options.append(ExplanationKind.TEXT)
    if any(c.shapley is not None for c in view.contributions):
        options.append(ExplanationKind.SHAPLEY)
    return options


def submit_case_verdict(
    context: ReviewContext, principal: Principal, view: CaseView, entry: VerdictEntry
) -> VerdictRecord:
    """Store the verdict on the viewed case (the store checks the role: clinicians and admins)."""
    offered = set(helpful_options(view))
    unknown = [str(k) for k in entry.helpful if ExplanationKind(k) not in offered]
    if unknown:
        raise MmdxError(
            f"explanation(s) {', '.join(unknown)} were not shown for case {view.case_id}; only "
            f"{', '.join(sorted(str(k) for k in offered)) or 'none'} can be named as helpful"
        )
    return context.store.submit_verdict(
        principal,
        context.run_id,
        view.case_id,
        entry.verdict,
        entry.diagnosis,
        entry.confidence,
        entry.comment,
        list(entry.helpful),
        context.model_version,
        view.explanation_version,
    )


def _records_frame(records: Sequence[VerdictRecord], superseded: set[int]) -> pd.DataFrame:
    columns = [
        "time (UTC)",
        "user",
        "case",
        "verdict",
        "own diagnosis",
        "confidence",
        "comment",
        "helpful explanations",
        "model version",
        "explanation version",
        "state",
    ]
    rows = [
        {
            "time (UTC)": r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            "user": r.user,
            "case": r.case_id,
            "verdict": r.verdict.value,
            "own diagnosis": r.diagnosis,
            "confidence": r.confidence,
            "comment": r.comment,
            "helpful explanations": ", ".join(k.value for k in r.helpful_explanations),
            "model version": r.model_version,
            "explanation version": r.explanation_version,
            "state": "superseded" if r.id in superseded else "current",
        }
        for r in records
    ]
    return pd.DataFrame(rows, columns=columns)


def verdict_history(context: ReviewContext, principal: Principal, case_id: str) -> pd.DataFrame:
    """Every verdict on the case, oldest first, superseded ones marked as such."""
    records = context.store.verdict_history(principal, context.run_id, case_id)
    superseded = {r.supersedes for r in records if r.supersedes is not None}
    return _records_frame(records, superseded)


def current_verdicts(context: ReviewContext, principal: Principal, user: str | None = None) -> pd.DataFrame:
    """Each reviewer's current verdict per case of the run (``user``: only that reviewer's), by case."""
    latest = context.store.latest_verdicts(principal, context.run_id)
    records = [r for case in sorted(latest) for r in latest[case] if user is None or r.user == user]
    return _records_frame(records, set())


def verdicts_csv(context: ReviewContext, principal: Principal) -> tuple[bytes, int]:
    """The run's full verdict history as CSV (auditors and admins; records an ``export`` event)."""
    buffer = io.StringIO()
    count = context.store.export_verdicts_csv(principal, context.run_id, buffer)
    return buffer.getvalue().encode("utf-8"), count
