"""Verdicts: validated, append-only, linked by ``supersedes``; history, latest verdicts and review status."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DatabaseError

from mmdx.errors import MmdxError
from mmdx.store import AuditAction, ExplanationKind, ReviewStatus, ReviewStore, Verdict, VerdictRecord


def test_submit_stores_every_field(store: ReviewStore, people) -> None:
    before = datetime.now(UTC)
    record = store.submit_verdict(
        people.alice,
        "run1",
        "c1",
        Verdict.DISAGREE,
        "community-acquired pneumonia",
        4,
        "consolidation in the left lower lobe",
        ["image", ExplanationKind.SHAPLEY, "image"],
        "model-7",
        "ig-2",
    )
    assert record.created_at.tzinfo is not None and record.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= record.created_at <= datetime.now(UTC) + timedelta(seconds=1)
    expected = VerdictRecord(
        id=record.id,
        run_id="run1",
        case_id="c1",
        user="alice",
        created_at=record.created_at,
        verdict=Verdict.DISAGREE,
        diagnosis="community-acquired pneumonia",
        confidence=4,
        comment="consolidation in the left lower lobe",
        helpful_explanations=(ExplanationKind.IMAGE, ExplanationKind.SHAPLEY),
        model_version="model-7",
        explanation_version="ig-2",
        supersedes=None,
    )
    assert record == expected
    assert store.verdict_history(people.bob, "run1", "c1") == [expected]  # read back identically
    event = store.audit_events(people.carol, action="submit_verdict")[0]
    assert (event.user, event.run_id, event.case_id) == ("alice", "run1", "c1")
    assert dict(event.detail) == {"verdict_id": record.id, "verdict": "disagree", "supersedes": None}


def test_records_are_frozen(store: ReviewStore, people, submit) -> None:
    record = submit(store, people.alice, "c1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.verdict = Verdict.DISAGREE  # type: ignore[misc]


def test_a_change_of_mind_is_a_new_row_linked_to_the_previous(store: ReviewStore, people, submit) -> None:
    first = submit(store, people.alice, "c1", "agree", comment="looks right")
    other_case = submit(store, people.alice, "c2", "agree")
    other_user = submit(store, people.bob, "c1", "unsure")
    other_run = submit(store, people.alice, "c1", "agree", run_id="run2")
    second = submit(store, people.alice, "c1", "disagree", comment="missed the effusion")
    third = submit(store, people.alice, "c1", "unsure")

    assert (first.supersedes, second.supersedes, third.supersedes) == (None, first.id, second.id)
    assert other_case.supersedes is None and other_user.supersedes is None and other_run.supersedes is None
    history = store.verdict_history(people.bob, "run1", "c1")
    assert history == [first, other_user, second, third]  # oldest first, all users, nothing overwritten
    assert history[0].comment == "looks right" and history[0].verdict == Verdict.AGREE
    assert len({r.id for r in history}) == 4


def test_there_is_no_update_or_delete_in_the_api() -> None:
    names = [n for n in dir(ReviewStore) if not n.startswith("_")]
    assert not [
        n for n in names if any(word in n for word in ("update", "delete", "remove", "edit", "purge"))
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE verdicts SET verdict = 'agree'",
        "DELETE FROM verdicts",
        "UPDATE audit_events SET user_name = 'mallory'",
        "DELETE FROM audit_events",
    ],
)
def test_the_database_refuses_changes_to_append_only_tables(
    store: ReviewStore, people, statement: str, submit
) -> None:
    submit(store, people.alice, "c1", "disagree")
    engine = create_engine(store.url)
    try:
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()
    assert [r.verdict for r in store.verdict_history(people.alice, "run1", "c1")] == [Verdict.DISAGREE]
    assert all(e.user != "mallory" for e in store.audit_events(people.carol))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"verdict": "agreed"}, "unknown verdict 'agreed'; did you mean 'agree'?"),
        ({"verdict": "maybe"}, "unknown verdict 'maybe'"),
        ({"confidence": 0}, "confidence must be an integer from 1"),
        ({"confidence": 6}, "got 6"),
        ({"confidence": 3.5}, "got 3.5"),
        ({"confidence": "4"}, "got '4'"),
        ({"confidence": True}, "got True"),
        ({"helpful": ["imaging"]}, "unknown explanation kind 'imaging'; did you mean 'image'?"),
        ({"helpful": "image"}, "must be a list"),
        ({"run_id": ""}, "run_id is empty"),
        ({"case_id": " c1"}, "leading or trailing whitespace"),
        ({"case_id": None}, "case_id must be a string"),
        ({"model_version": "   "}, "model_version is empty"),
        ({"explanation_version": "x" * 201}, "too long"),
        ({"diagnosis": "d" * 501}, "diagnosis is too long: 501 characters, at most 500"),
        ({"comment": 42}, "comment must be a string"),
    ],
)
def test_invalid_input_is_refused_and_nothing_is_stored(
    store: ReviewStore, people, overrides: dict, message: str, submit
) -> None:
    fields = {"case_id": "c1", **overrides}
    case_id = fields.pop("case_id")
    with pytest.raises(MmdxError, match=message.replace("?", r"\?")):
        submit(store, people.alice, case_id, **fields)
    assert store.latest_verdicts(people.alice, "run1") == {}
    assert store.audit_events(people.carol, action="submit_verdict") == []


def test_confidence_bounds_are_accepted(store: ReviewStore, people, submit) -> None:
    assert [submit(store, people.alice, f"c{c}", confidence=c).confidence for c in (1, 5)] == [1, 5]


def test_latest_verdicts_keeps_each_users_newest(store: ReviewStore, people, submit) -> None:
    submit(store, people.alice, "c1", "agree")
    a2 = submit(store, people.alice, "c1", "disagree")
    b1 = submit(store, people.bob, "c1", "unsure")
    a3 = submit(store, people.alice, "c2", "agree")
    submit(store, people.bob, "c9", "agree", run_id="other-run")
    latest = store.latest_verdicts(people.carol, "run1")
    assert latest == {"c1": [a2, b1], "c2": [a3]}


# Each case: verdicts submitted in order as (user, verdict); the expected status for alice and for carol.
STATUS_CASES = [
    ([], ReviewStatus.UNREVIEWED, ReviewStatus.UNREVIEWED),
    ([("alice", "agree")], ReviewStatus.REVIEWED_BY_ME, ReviewStatus.REVIEWED_BY_OTHERS),
    ([("bob", "agree")], ReviewStatus.REVIEWED_BY_OTHERS, ReviewStatus.REVIEWED_BY_OTHERS),
    ([("alice", "unsure")], ReviewStatus.REVIEWED_BY_ME, ReviewStatus.REVIEWED_BY_OTHERS),
    ([("alice", "agree"), ("bob", "agree")], ReviewStatus.REVIEWED_BY_ME, ReviewStatus.REVIEWED_BY_OTHERS),
    (
        [("bob", "unsure"), ("dave", "unsure")],
        ReviewStatus.REVIEWED_BY_OTHERS,
        ReviewStatus.REVIEWED_BY_OTHERS,
    ),
    # any latest disagree is a dispute, even a single reviewer's
    ([("bob", "disagree")], ReviewStatus.DISPUTED, ReviewStatus.DISPUTED),
    ([("alice", "disagree"), ("bob", "disagree")], ReviewStatus.DISPUTED, ReviewStatus.DISPUTED),
    # different users' latest verdicts differ
    ([("alice", "agree"), ("bob", "unsure")], ReviewStatus.DISPUTED, ReviewStatus.DISPUTED),
    # only latest verdicts count: a withdrawn disagreement is no longer a dispute ...
    (
        [("bob", "disagree"), ("bob", "agree")],
        ReviewStatus.REVIEWED_BY_OTHERS,
        ReviewStatus.REVIEWED_BY_OTHERS,
    ),
    (
        [("alice", "agree"), ("bob", "unsure"), ("bob", "agree")],
        ReviewStatus.REVIEWED_BY_ME,
        ReviewStatus.REVIEWED_BY_OTHERS,
    ),
    # ... and an agreement changed later becomes one
    (
        [("alice", "agree"), ("bob", "agree"), ("alice", "disagree")],
        ReviewStatus.DISPUTED,
        ReviewStatus.DISPUTED,
    ),
]


def test_review_status_cases(store: ReviewStore, people, submit) -> None:
    principals = {"alice": people.alice, "bob": people.bob, "dave": people.dave}
    case_ids = []
    for index, (submissions, _, _) in enumerate(STATUS_CASES):
        case_id = f"case-{index}"
        case_ids.append(case_id)
        for user, verdict in submissions:
            submit(store, principals[user], case_id, verdict)
    submit(store, people.bob, "case-0", "disagree", run_id="another-run")  # other runs never count

    for viewer, column in ((people.alice, 1), (people.carol, 2)):
        statuses = store.review_status(viewer, "run1", case_ids)
        expected = {f"case-{i}": case[column] for i, case in enumerate(STATUS_CASES)}
        assert statuses == expected, viewer.name
    assert store.review_status(people.alice, "run1", ["case-1", "case-1", "nope"]) == {
        "case-1": ReviewStatus.REVIEWED_BY_ME,
        "nope": ReviewStatus.UNREVIEWED,
    }
    assert ReviewStatus.DISPUTED == "disputed"  # plain strings for the dashboard


def test_review_status_handles_more_cases_than_one_query_takes(store: ReviewStore, people, submit) -> None:
    submit(store, people.bob, "c-0999", "disagree")
    case_ids = [f"c-{i:04d}" for i in range(1200)]
    statuses = store.review_status(people.alice, "run1", case_ids)
    assert list(statuses) == case_ids
    assert statuses["c-0999"] == ReviewStatus.DISPUTED
    assert sum(s == ReviewStatus.UNREVIEWED for s in statuses.values()) == 1199


def test_review_status_refuses_a_bare_string(store: ReviewStore, people) -> None:
    with pytest.raises(MmdxError, match="list of case ids"):
        store.review_status(people.alice, "run1", "c1")


def test_verdict_history_orders_oldest_first_across_users(store: ReviewStore, people, submit) -> None:
    submitted = [submit(store, p, "c1", v) for p, v in [(people.bob, "agree"), (people.alice, "unsure")] * 3]
    history = store.verdict_history(people.alice, "run1", "c1")
    assert [r.id for r in history] == [r.id for r in submitted]
    assert all(a.created_at <= b.created_at for a, b in zip(history, history[1:], strict=False))
    assert store.verdict_history(people.alice, "run1", "unknown-case") == []


def test_admin_can_submit_and_is_counted_like_a_clinician(store: ReviewStore, people, submit) -> None:
    record = submit(store, people.dave, "c1", "agree")
    assert record.user == "dave"
    assert store.review_status(people.dave, "run1", ["c1"]) == {"c1": ReviewStatus.REVIEWED_BY_ME}
    assert store.audit_events(people.dave, action=AuditAction.SUBMIT_VERDICT)[0].user == "dave"
