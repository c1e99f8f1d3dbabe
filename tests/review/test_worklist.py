"""The worklist: one row per predicted case, no label, review status, filters and sort orders."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from mmdx.review import (
    WORKLIST_COLUMNS,
    ReviewContext,
    SortOrder,
    WorklistFilter,
    build_worklist,
    filter_worklist,
    sort_worklist,
)
from mmdx.store import AuditAction, PermissionDenied, Principal, Role, Verdict
from tests.support.review_runs import TestRun


def _verdict(store, principal, run_id, case_id, verdict: Verdict) -> None:
    store.submit_verdict(principal, run_id, case_id, verdict, "", 3, "", [], "m", "e")


def test_one_row_per_prediction_and_no_label(context: ReviewContext, accounts, review_run: TestRun) -> None:
    worklist = build_worklist(context, accounts.clinician)
    predictions = pd.read_parquet(review_run.path / "predictions.parquet")
    assert list(worklist.columns) == list(WORKLIST_COLUMNS)
    assert "label" not in worklist.columns
    assert worklist["case_id"].tolist() == predictions["case_id"].tolist()
    np.testing.assert_allclose(worklist["probability"], predictions["probability"])
    expected = np.where(predictions["probability"] >= context.threshold, "positive", "negative")
    assert worklist["predicted"].tolist() == expected.tolist()
    assert set(worklist.loc[worklist["explained"], "case_id"]) == set(review_run.explained)
    for modality in ("image", "tabular", "text"):
        present = worklist[f"has_{modality}"].to_numpy()
        assert (worklist["modalities"].str.contains(modality).to_numpy() == present).all()


def test_review_status_follows_the_store(context: ReviewContext, accounts) -> None:
    cases = build_worklist(context, accounts.clinician)["case_id"].tolist()
    store, run_id = accounts.store, context.run_id
    _verdict(store, accounts.clinician, run_id, cases[0], Verdict.AGREE)
    _verdict(store, accounts.colleague, run_id, cases[1], Verdict.AGREE)
    _verdict(store, accounts.colleague, run_id, cases[2], Verdict.DISAGREE)
    status = build_worklist(context, accounts.clinician).set_index("case_id")["status"]
    assert status[cases[0]] == "reviewed_by_me"
    assert status[cases[1]] == "reviewed_by_others"
    assert status[cases[2]] == "disputed"
    assert status[cases[3]] == "unreviewed"


@pytest.fixture
def worklist(context: ReviewContext, accounts) -> pd.DataFrame:
    return build_worklist(context, accounts.clinician)


def test_sort_orders(worklist: pd.DataFrame, context: ReviewContext) -> None:
    shuffled = worklist.sample(frac=1.0, random_state=0)
    by_risk = sort_worklist(shuffled, SortOrder.HIGHEST_RISK, context.threshold)
    assert (np.diff(by_risk["probability"].to_numpy()) <= 0).all()
    by_uncertainty = sort_worklist(shuffled, SortOrder.MOST_UNCERTAIN, context.threshold)
    assert (np.diff(by_uncertainty["uncertainty"].to_numpy()) <= 0).all()
    assert sorted(by_risk["case_id"]) == sorted(worklist["case_id"])


def test_unreviewed_first(worklist: pd.DataFrame, context: ReviewContext) -> None:
    statuses = ["reviewed_by_me", "disputed", "reviewed_by_others", "unreviewed"]
    labelled = worklist.assign(status=[statuses[i % 4] for i in range(len(worklist))])
    ordered = sort_worklist(labelled, "unreviewed_first", context.threshold)
    rank = ordered["status"].map(
        {"unreviewed": 0, "disputed": 1, "reviewed_by_others": 2, "reviewed_by_me": 3}
    )
    assert (np.diff(rank.to_numpy()) >= 0).all()
    for _, group in ordered.groupby("status", sort=False):
        assert (np.diff(group["probability"].to_numpy()) <= 0).all()


@pytest.mark.parametrize(
    ("selection", "check"),
    [
        (
            WorklistFilter(require_modalities=["image", "text"]),
            lambda f: f["has_image"].all() and f["has_text"].all(),
        ),
        (WorklistFilter(predicted=["positive"]), lambda f: (f["predicted"] == "positive").all()),
        (WorklistFilter(splits=["test"]), lambda f: (f["split"] == "test").all()),
        (WorklistFilter(near_threshold_only=True), lambda f: f["near_threshold"].all()),
        (WorklistFilter(explained_only=True), lambda f: f["explained"].all()),
        (WorklistFilter(case_id_contains="c0000"), lambda f: f["case_id"].str.startswith("C0000").all()),
        (WorklistFilter(statuses=["unreviewed"]), lambda f: (f["status"] == "unreviewed").all()),
    ],
)
def test_filters_keep_exactly_the_matching_rows(worklist: pd.DataFrame, selection, check) -> None:
    kept = filter_worklist(worklist, selection)
    assert check(kept)
    rest = worklist[~worklist["case_id"].isin(kept["case_id"])]
    assert not rest.empty or len(kept) == len(worklist)
    # every dropped row fails the filter: filtering the complement keeps nothing of it that passes
    assert filter_worklist(rest, selection).empty


def test_no_filter_keeps_everything_and_unknown_status_is_refused(worklist: pd.DataFrame) -> None:
    assert filter_worklist(worklist, WorklistFilter()).equals(worklist)
    with pytest.raises(Exception, match="unknown review status"):
        filter_worklist(worklist, WorklistFilter(statuses=["seen"]))


def test_forged_or_deactivated_principals_read_nothing(context: ReviewContext, accounts) -> None:
    forged = Principal("clin", Role.ADMIN)
    with pytest.raises(PermissionDenied):
        build_worklist(context, forged)
    with pytest.raises(PermissionDenied):
        build_worklist(context, dataclasses.replace(accounts.clinician, role=Role.ADMIN))
    accounts.store.deactivate("colleague", actor=accounts.admin)
    with pytest.raises(PermissionDenied, match="deactivated"):
        build_worklist(context, accounts.colleague)
    with pytest.raises(PermissionDenied):
        build_worklist(context, "clin")  # type: ignore[arg-type]
    denied = accounts.store.audit_events(accounts.auditor, action=AuditAction.PERMISSION_DENIED)
    assert len(denied) >= 3


def test_by_default_the_worklist_holds_what_a_reviewer_judges(
    context: ReviewContext, accounts, review_run: TestRun
) -> None:
    """Test-split and unlabelled cases, explained ones first; training and validation cases only on request."""
    from mmdx.review import REVIEW_GROUPS, default_filter

    worklist = build_worklist(context, accounts.clinician)
    predictions = pd.read_parquet(review_run.path / "predictions.parquet")
    expected_group = np.where(predictions["label"].isna(), "unlabelled", predictions["split"].astype(str))
    assert worklist["group"].tolist() == expected_group.tolist()
    shown = sort_worklist(
        filter_worklist(worklist, default_filter()), SortOrder.HIGHEST_RISK, context.threshold, True
    )
    assert set(REVIEW_GROUPS) == {"test", "unlabelled"}
    assert set(shown["group"]) <= {"test", "unlabelled"} and len(shown) > 0
    assert not shown["case_id"].isin(predictions.loc[predictions["split"] == "train", "case_id"]).any()
    explained = shown["explained"].to_numpy()
    assert explained.any() and not explained.all()
    first_unexplained = int(np.argmin(explained))
    assert explained[:first_unexplained].all() and not explained[first_unexplained:].any()
    part = shown[shown["explained"]]
    assert part["probability"].is_monotonic_decreasing
    everything = filter_worklist(
        worklist, WorklistFilter(groups=("train", "val", "test", "unlabelled", "other"))
    )
    assert len(everything) == len(worklist)


def test_an_unlabelled_case_is_unlabelled_whatever_its_split() -> None:
    from mmdx.review.worklist import case_groups

    split = pd.Series(["train", "test", "", None, "val", "holdout"])
    label = pd.Series([1.0, None, None, 0.0, 0.0, 1.0])
    assert case_groups(split, label).tolist() == [
        "train",
        "unlabelled",
        "unlabelled",
        "other",
        "val",
        "other",
    ]
