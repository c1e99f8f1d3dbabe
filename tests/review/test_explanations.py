"""Reading a run's explanations for the dashboard, and the offer to compute a missing one."""

from __future__ import annotations

import pytest

from mmdx.review import ExplanationStatus, ReviewContext, authorize_explaining, explanation_offer
from mmdx.store import Permission, PermissionDenied, Role
from mmdx.store.permissions import allows
from tests.support.review_runs import TestRun


def test_explaining_is_a_permission_of_clinicians_and_admins_only() -> None:
    assert allows(Role.CLINICIAN, Permission.EXPLAIN_CASES)
    assert allows(Role.ADMIN, Permission.EXPLAIN_CASES)
    assert not allows(Role.AUDITOR, Permission.EXPLAIN_CASES)


def test_an_unexplained_case_is_offered_to_a_role_that_may_explain(
    context: ReviewContext, accounts, review_run: TestRun
) -> None:
    case_id = review_run.unexplained[0]
    offer = explanation_offer(context, accounts.clinician, case_id, ExplanationStatus.NOT_FOR_CASE)
    assert offer is not None and offer.allowed
    # mmdx explain writes the run's explanations as a whole: the explained cases are kept by explaining them too
    assert offer.cases[-1] == case_id and set(offer.cases[:-1]) == set(review_run.explained)
    assert offer.command.startswith(f"mmdx explain {context.run.root}") and "--cases" in offer.command
    assert offer.method == "ig"  # the placeholder method is not a registered one
    assert explanation_offer(context, accounts.clinician, case_id, ExplanationStatus.AVAILABLE) is None
    authorize_explaining(context, accounts.clinician)


def test_a_role_that_may_not_explain_is_told_why(
    context: ReviewContext, accounts, review_run: TestRun
) -> None:
    case_id = review_run.unexplained[0]
    offer = explanation_offer(context, accounts.auditor, case_id, ExplanationStatus.NOT_FOR_CASE)
    assert offer is not None and not offer.allowed
    assert "auditor" in offer.reason and "explain_cases" in offer.reason and offer.command in offer.reason
    with pytest.raises(PermissionDenied, match="explain_cases"):
        authorize_explaining(context, accounts.auditor)


def test_without_the_cohort_nothing_can_be_computed(
    context: ReviewContext, accounts, review_run: TestRun
) -> None:
    import dataclasses

    cohortless = dataclasses.replace(context, cohort_dir=None)
    offer = explanation_offer(
        cohortless, accounts.admin, review_run.unexplained[0], ExplanationStatus.NOT_FOR_CASE
    )
    assert offer is not None and not offer.allowed and "--cohort" in offer.reason


@pytest.mark.slow
def test_computing_the_offered_explanation_explains_the_case(run_copy, accounts, review_run: TestRun) -> None:
    """What the dashboard's button runs: the offered cases through the explain workflow; the case then has
    its explanation, and the others offered with it keep theirs."""
    import shutil

    from mmdx.review import build_case_view, open_review_context
    from mmdx.workflows.explain import explain_run

    shutil.rmtree(run_copy / "explanations")
    context = open_review_context(run_copy, accounts.store)
    case_id = review_run.unexplained[0]
    offer = explanation_offer(context, accounts.clinician, case_id, ExplanationStatus.NONE_IN_RUN)
    assert offer is not None and offer.allowed and offer.cases == (case_id,)
    explain_run(run_copy, cases=[*offer.cases], method=offer.method, n_steps=4, check_cases=0, workers=1)
    view = build_case_view(context, accounts.clinician, case_id, record_open=False)
    assert view.explanation.status is ExplanationStatus.AVAILABLE
    again = explanation_offer(
        context, accounts.clinician, review_run.unexplained[1], ExplanationStatus.NOT_FOR_CASE
    )
    assert again is not None and again.cases == (case_id, review_run.unexplained[1])
    assert again.settings["n_steps"] == 4
