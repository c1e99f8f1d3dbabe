"""Audit trail, sessions and accounts as the dashboard uses them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from mmdx.errors import MmdxError
from mmdx.review import (
    AuditQuery,
    ReviewContext,
    audit_csv,
    audit_trail,
    build_case_view,
    ensure_demo_account,
    expire_if_idle,
    sign_in,
    sign_out,
    users_frame,
)
from mmdx.store import AuditAction, Operator, PermissionDenied, ReviewStore, Role
from tests.support.review_runs import TestRun


def test_audit_trail_shows_who_opened_which_case(
    context: ReviewContext, accounts, review_run: TestRun
) -> None:
    case_id = review_run.explained[0]
    build_case_view(context, accounts.clinician, case_id)
    trail = audit_trail(context, accounts.auditor, AuditQuery(case_id=case_id, this_run_only=True))
    assert trail[["user", "action", "run", "case"]].values.tolist() == [
        ["clin", "open_case", context.run_id, case_id]
    ]
    opened = audit_trail(context, accounts.admin, AuditQuery(action=AuditAction.OPEN_CASE, user="clin"))
    assert len(opened) == 1
    later = audit_trail(context, accounts.admin, AuditQuery(since=datetime.now(UTC) + timedelta(hours=1)))
    assert later.empty
    with pytest.raises(PermissionDenied):
        audit_trail(context, accounts.clinician, AuditQuery())


def test_audit_export_is_csv_and_is_itself_recorded(
    context: ReviewContext, accounts, review_run: TestRun
) -> None:
    build_case_view(context, accounts.clinician, review_run.explained[0])
    data, count = audit_csv(context, accounts.auditor, AuditQuery(action=AuditAction.OPEN_CASE))
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert count == len(rows) == 1 and rows[0]["user"] == "clin"
    exports = accounts.store.audit_events(accounts.admin, action=AuditAction.EXPORT)
    assert [e.user for e in exports] == ["aud"]
    with pytest.raises(PermissionDenied):
        audit_csv(context, accounts.clinician, AuditQuery())


def test_sign_in_and_idle_timeout(accounts, password: str) -> None:
    store = accounts.store
    assert sign_in(store, "clin", "wrong password") is None
    assert sign_in(store, "", "") is None
    session = sign_in(store, "clin", password, idle_timeout_s=60)
    assert session is not None and session.principal.role is Role.CLINICIAN
    now = session.clock.last_activity
    assert not expire_if_idle(store, session, now + timedelta(seconds=59))
    assert not store.audit_events(accounts.admin, action=AuditAction.SESSION_TIMEOUT)
    assert expire_if_idle(store, session, now + timedelta(seconds=61))
    (event,) = store.audit_events(accounts.admin, action=AuditAction.SESSION_TIMEOUT)
    assert event.user == "clin" and event.detail["idle_timeout_s"] == 60
    sign_out(store, session)
    assert [e.user for e in store.audit_events(accounts.admin, action=AuditAction.SIGN_OUT)] == ["clin"]


def test_demo_account(store_url: str) -> None:
    name, password = ensure_demo_account(store_url)
    with ReviewStore(store_url) as store:
        principal = store.authenticate(name, password)
        assert principal is not None and principal.role is Role.CLINICIAN
        store.deactivate(name, actor=Operator("tests"))
    again_name, again = ensure_demo_account(store_url)
    assert again_name == name and again != password  # a fresh password each time; reactivated
    with ReviewStore(store_url) as store:
        assert store.authenticate(name, password) is None
        assert store.authenticate(name, again) is not None
    with pytest.raises(MmdxError, match="another name"):
        ensure_demo_account(store_url, role=Role.ADMIN)


def test_users_frame_for_admins_only(accounts) -> None:
    frame = users_frame(accounts.store, accounts.admin)
    assert sorted(frame["name"]) == ["adm", "aud", "clin", "colleague"]
    assert "password" not in " ".join(frame.columns)
    with pytest.raises(PermissionDenied):
        users_frame(accounts.store, accounts.clinician)
