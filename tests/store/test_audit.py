"""The audit trail: what may be recorded by whom, reading with filters, CSV export and its escaping."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mmdx.errors import MmdxError
from mmdx.store import (
    AUDIT_CSV_COLUMNS,
    VERDICT_CSV_COLUMNS,
    AccountError,
    AuditAction,
    PermissionDenied,
    ReviewStore,
)


def test_open_case_is_recorded_for_every_role(store: ReviewStore, people) -> None:
    for principal in (people.alice, people.carol, people.dave):
        event = store.record_event(principal, AuditAction.OPEN_CASE, run_id="run1", case_id="c3")
        assert (event.user, event.action, event.run_id, event.case_id) == (
            principal.name,
            "open_case",
            "run1",
            "c3",
        )
    opened = store.audit_events(people.carol, case_id="c3")
    assert [e.user for e in opened] == ["dave", "carol", "alice"]  # newest first


def test_record_event_validates_its_input(store: ReviewStore, people) -> None:
    with pytest.raises(MmdxError, match="needs both run_id and case_id"):
        store.record_event(people.alice, "open_case", run_id="run1")
    with pytest.raises(MmdxError, match="unknown audit action 'open_cse'; did you mean 'open_case'"):
        store.record_event(people.alice, "open_cse", run_id="run1", case_id="c1")
    with pytest.raises(MmdxError, match="JSON-serialisable"):
        store.record_event(people.alice, "sign_out", detail={"when": datetime.now(UTC)})
    with pytest.raises(MmdxError, match="at most 10000 are stored"):
        store.record_event(people.alice, "sign_out", detail={"blob": "x" * 20_000})


@pytest.mark.parametrize(
    "action",
    ["sign_in", "sign_in_failed", "submit_verdict", "view_audit", "permission_denied", "user_added"],
)
def test_store_internal_actions_cannot_be_recorded_directly(store: ReviewStore, people, action: str) -> None:
    before = len(store.audit_events(people.dave, action=action))
    with pytest.raises(MmdxError, match="recorded by the review store itself"):
        store.record_event(people.dave, action, run_id="run1", case_id="c1")
    assert len(store.audit_events(people.dave, action=action)) == before + (action == "view_audit")


def test_sign_out_and_timeout_may_be_recorded_by_name_when_the_session_is_gone(
    store: ReviewStore, people
) -> None:
    event = store.record_event("Alice", AuditAction.SESSION_TIMEOUT, detail={"idle_s": 901})
    assert (event.user, event.action) == ("alice", AuditAction.SESSION_TIMEOUT)
    assert dict(event.detail) == {"idle_s": 901, "unauthenticated": True}
    with pytest.raises(MmdxError, match="needs the signed-in Principal"):
        store.record_event("alice", AuditAction.OPEN_CASE, run_id="run1", case_id="c1")
    with pytest.raises(AccountError, match="no user named 'nobody'"):
        store.record_event("nobody", AuditAction.SIGN_OUT)


def test_a_deactivated_user_can_still_be_signed_out(store: ReviewStore, people, operator) -> None:
    store.deactivate("bob", actor=operator)
    event = store.record_event(people.bob, AuditAction.SIGN_OUT)
    assert event.user == "bob" and "unauthenticated" not in event.detail
    with pytest.raises(PermissionDenied, match="deactivated"):
        store.record_event(people.bob, AuditAction.OPEN_CASE, run_id="run1", case_id="c1")


def test_audit_events_filters_and_limit(store: ReviewStore, people, submit) -> None:
    store.record_event(people.alice, "open_case", run_id="run1", case_id="c1")
    submit(store, people.alice, "c1")
    store.record_event(people.bob, "open_case", run_id="run2", case_id="c2")
    midpoint = datetime.now(UTC)
    store.record_event(people.bob, "open_case", run_id="run1", case_id="c1")

    everything = store.audit_events(people.carol)
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
    assert all(e.time.tzinfo is not None for e in everything)

    by_alice = store.audit_events(people.carol, user="alice")
    assert {e.action for e in by_alice} == {
        AuditAction.SIGN_IN,
        AuditAction.OPEN_CASE,
        AuditAction.SUBMIT_VERDICT,
    }
    on_c1 = store.audit_events(people.carol, case_id="c1")
    assert [(e.user, e.action) for e in on_c1] == [
        ("bob", AuditAction.OPEN_CASE),
        ("alice", AuditAction.SUBMIT_VERDICT),
        ("alice", AuditAction.OPEN_CASE),
    ]
    assert {e.case_id for e in store.audit_events(people.carol, run_id="run2")} == {"c2"}
    recent = store.audit_events(people.carol, since=midpoint)
    assert [(e.user, e.case_id) for e in recent if e.action == AuditAction.OPEN_CASE] == [("bob", "c1")]
    assert store.audit_events(people.carol, since=datetime.now(UTC) + timedelta(hours=1)) == []
    latest_two = store.audit_events(people.carol, limit=2)
    assert [e.id for e in latest_two] == [e.id for e in store.audit_events(people.carol)][1:3]


TIMEZONE_PLUS_5 = timezone(timedelta(hours=5))


def test_since_is_the_same_instant_in_any_time_zone(store: ReviewStore, people) -> None:
    store.record_event(people.alice, "open_case", run_id="run1", case_id="c1")
    midpoint = datetime.now(UTC)
    store.record_event(people.alice, "open_case", run_id="run1", case_id="c2")
    in_utc = store.audit_events(people.carol, since=midpoint, action="open_case")
    elsewhere = store.audit_events(
        people.carol, since=midpoint.astimezone(TIMEZONE_PLUS_5), action="open_case"
    )
    assert [e.case_id for e in in_utc] == [e.case_id for e in elsewhere] == ["c2"]


def test_reading_the_trail_is_itself_audited(store: ReviewStore, people) -> None:
    store.audit_events(people.carol, user="alice", limit=5)
    [viewed] = store.audit_events(people.dave, action="view_audit")
    assert viewed.user == "carol"
    assert dict(viewed.detail) == {"filters": {"user": "alice"}}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": datetime(2024, 1, 1)}, "timezone-aware"),
        ({"limit": 0}, "positive integer"),
        ({"limit": "10"}, "positive integer"),
        ({"action": "viewed"}, "unknown audit action"),
    ],
)
def test_audit_events_validates_filters(store: ReviewStore, people, kwargs: dict, message: str) -> None:
    with pytest.raises(MmdxError, match=message):
        store.audit_events(people.carol, **kwargs)


def _read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_export_audit_csv_content(store: ReviewStore, people, tmp_path, submit) -> None:
    store.record_event(people.alice, "open_case", run_id="run1", case_id="c1", detail={"tab": "image"})
    submit(store, people.alice, "c1", "disagree")
    path = tmp_path / "audit.csv"
    count = store.export_audit_csv(people.carol, path)
    rows = _read_csv(path.read_text(encoding="utf-8"))
    assert count == len(rows) > 0
    assert tuple(rows[0]) == AUDIT_CSV_COLUMNS
    assert [int(r["id"]) for r in rows] == sorted(int(r["id"]) for r in rows)  # oldest first
    opened = next(r for r in rows if r["action"] == "open_case")
    assert (opened["user"], opened["run_id"], opened["case_id"]) == ("alice", "run1", "c1")
    assert json.loads(opened["detail"]) == {"tab": "image"}
    assert datetime.fromisoformat(opened["time"]).utcoffset() == timedelta(0)
    stored_ids = {e.id for e in store.audit_events(people.dave)}
    assert {int(r["id"]) for r in rows} <= stored_ids

    [export] = store.audit_events(people.dave, action="export")
    assert export.user == "carol"
    assert dict(export.detail) == {"what": "audit_trail", "rows": count, "filters": {}}


def test_export_audit_csv_with_filters_to_a_handle(store: ReviewStore, people) -> None:
    store.record_event(people.alice, "open_case", run_id="run1", case_id="c1")
    store.record_event(people.bob, "open_case", run_id="run1", case_id="c2")
    handle = io.StringIO()
    count = store.export_audit_csv(people.dave, handle, user="bob", action="open_case")
    rows = _read_csv(handle.getvalue())
    assert count == 1 and [(r["user"], r["case_id"]) for r in rows] == [("bob", "c2")]


FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)"]


def test_csv_exports_neutralise_formulas(store: ReviewStore, people, submit) -> None:
    for index, formula in enumerate(FORMULAS):
        submit(store, people.alice, f"c{index}", "disagree", diagnosis=formula, comment=formula)
        store.record_event(people.alice, "open_case", run_id="run1", case_id=formula)

    handle = io.StringIO()
    store.export_verdicts_csv(people.carol, "run1", handle)
    rows = _read_csv(handle.getvalue())
    assert tuple(rows[0]) == VERDICT_CSV_COLUMNS
    assert [r["comment"] for r in rows] == ["'" + f for f in FORMULAS]
    assert [r["diagnosis"] for r in rows] == ["'" + f for f in FORMULAS]
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row

    handle = io.StringIO()
    store.export_audit_csv(people.carol, handle, action="open_case")
    cells = [r["case_id"] for r in _read_csv(handle.getvalue())]
    assert cells == ["'" + f for f in FORMULAS]


def test_export_verdicts_csv_keeps_the_full_history(store: ReviewStore, people, submit) -> None:
    first = submit(store, people.alice, "c1", "agree", helpful=["image", "text"], diagnosis="normal")
    second = submit(store, people.alice, "c1", "disagree", confidence=5)
    submit(store, people.bob, "c1", "agree", run_id="other-run")
    handle = io.StringIO()
    assert store.export_verdicts_csv(people.dave, "run1", handle) == 2
    rows = _read_csv(handle.getvalue())
    assert [(int(r["id"]), r["verdict"], r["supersedes"]) for r in rows] == [
        (first.id, "agree", ""),
        (second.id, "disagree", str(first.id)),
    ]
    assert rows[0]["helpful_explanations"] == "image;text" and rows[0]["diagnosis"] == "normal"
    assert rows[1]["confidence"] == "5"
    [export] = store.audit_events(people.dave, action="export")
    assert (export.user, export.run_id, dict(export.detail)) == (
        "dave",
        "run1",
        {"what": "verdicts", "rows": 2},
    )
