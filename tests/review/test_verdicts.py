"""Verdicts through the dashboard's library: versions recorded, history kept, roles enforced."""

from __future__ import annotations

import csv
import io

import pytest

from mmdx.errors import MmdxError
from mmdx.review import (
    ReviewContext,
    VerdictEntry,
    build_case_view,
    current_verdicts,
    helpful_options,
    submit_case_verdict,
    verdict_history,
    verdicts_csv,
)
from mmdx.store import AuditAction, ExplanationKind, PermissionDenied, Verdict
from tests.support.review_runs import TestRun


def test_verdict_records_model_and_explanation_versions(
    context: ReviewContext, accounts, review_run: TestRun
) -> None:
    explained = build_case_view(context, accounts.clinician, review_run.explained[0], record_open=False)
    record = submit_case_verdict(
        context,
        accounts.clinician,
        explained,
        VerdictEntry(
            Verdict.DISAGREE, 4, "viral pneumonia", "<b>not</b> bacterial", (ExplanationKind.SHAPLEY,)
        ),
    )
    assert (record.user, record.model_version, record.explanation_version) == (
        "clin",
        context.model_version,
        "placeholder-1",
    )
    assert record.helpful_explanations == (ExplanationKind.SHAPLEY,)
    plain = build_case_view(context, accounts.clinician, review_run.unexplained[0], record_open=False)
    assert helpful_options(plain) == []
    record = submit_case_verdict(context, accounts.clinician, plain, VerdictEntry(Verdict.AGREE, 2))
    assert record.explanation_version == "none"


def test_a_change_of_mind_is_a_new_row_and_history_keeps_both(
    context: ReviewContext, accounts, review_run: TestRun
) -> None:
    view = build_case_view(context, accounts.clinician, review_run.explained[1], record_open=False)
    first = submit_case_verdict(context, accounts.clinician, view, VerdictEntry(Verdict.AGREE, 3))
    second = submit_case_verdict(
        context, accounts.clinician, view, VerdictEntry(Verdict.UNSURE, 2, comment="on reflection")
    )
    other = submit_case_verdict(context, accounts.colleague, view, VerdictEntry(Verdict.AGREE, 5))
    assert second.supersedes == first.id and other.supersedes is None
    history = verdict_history(context, accounts.auditor, view.case_id)
    assert history["verdict"].tolist() == ["agree", "unsure", "agree"]
    assert history["state"].tolist() == ["superseded", "current", "current"]
    mine = current_verdicts(context, accounts.clinician, user="clin")
    assert mine["verdict"].tolist() == ["unsure"] and mine["case"].tolist() == [view.case_id]
    everyone = current_verdicts(context, accounts.auditor)
    assert sorted(everyone["user"]) == ["clin", "colleague"]


def test_auditors_cannot_submit_and_unshown_explanations_cannot_be_named(
    context: ReviewContext, accounts, review_run: TestRun
) -> None:
    view = build_case_view(context, accounts.auditor, review_run.explained[2], record_open=False)
    with pytest.raises(PermissionDenied):
        submit_case_verdict(context, accounts.auditor, view, VerdictEntry(Verdict.AGREE, 3))
    plain = build_case_view(context, accounts.clinician, review_run.unexplained[1], record_open=False)
    with pytest.raises(MmdxError, match="were not shown"):
        submit_case_verdict(
            context,
            accounts.clinician,
            plain,
            VerdictEntry(Verdict.AGREE, 3, helpful=(ExplanationKind.IMAGE,)),
        )
    assert verdict_history(context, accounts.clinician, plain.case_id).empty


def test_verdict_export_is_audited_and_refused_to_clinicians(
    context: ReviewContext, accounts, review_run: TestRun
) -> None:
    view = build_case_view(context, accounts.clinician, review_run.explained[3], record_open=False)
    submit_case_verdict(context, accounts.clinician, view, VerdictEntry(Verdict.AGREE, 3, comment="=cmd()"))
    data, count = verdicts_csv(context, accounts.auditor)
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert count == len(rows) == 1 and rows[0]["comment"] == "'=cmd()"
    assert accounts.store.audit_events(accounts.admin, action=AuditAction.EXPORT)
    with pytest.raises(PermissionDenied):
        verdicts_csv(context, accounts.clinician)
