"""Roles are enforced by the store itself: every operation against every role."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from mmdx.store import (
    ROLE_PERMISSIONS,
    AuditAction,
    Permission,
    PermissionDenied,
    Principal,
    ReviewStore,
    Role,
)

# The dashboard spec, written out: who may do what.
EXPECTED = {
    Role.CLINICIAN: {"submit": True, "read": True, "audit": False, "export": False, "users": False},
    Role.AUDITOR: {"submit": False, "read": True, "audit": True, "export": True, "users": False},
    Role.ADMIN: {"submit": True, "read": True, "audit": True, "export": True, "users": True},
}

Operation = Callable[[ReviewStore, Principal], object]

OPERATIONS: dict[str, tuple[str, Operation]] = {
    "submit_verdict": (
        "submit",
        lambda s, p: s.submit_verdict(p, "run1", "c1", "agree", "", 3, "", [], "model-1", "expl-1"),
    ),
    "verdict_history": ("read", lambda s, p: s.verdict_history(p, "run1", "c1")),
    "latest_verdicts": ("read", lambda s, p: s.latest_verdicts(p, "run1")),
    "review_status": ("read", lambda s, p: s.review_status(p, "run1", ["c1"])),
    "record_open_case": ("read", lambda s, p: s.record_event(p, AuditAction.OPEN_CASE, "run1", "c1")),
    "audit_events": ("audit", lambda s, p: s.audit_events(p)),
    "export_audit_csv": ("export", lambda s, p: s.export_audit_csv(p, io.StringIO())),
    "export_verdicts_csv": ("export", lambda s, p: s.export_verdicts_csv(p, "run1", io.StringIO())),
    "record_export": ("export", lambda s, p: s.record_event(p, "export", detail={"what": "report.pdf"})),
    "add_user": ("users", lambda s, p: s.add_user("newcomer", "clinician", "newcomer passphrase", actor=p)),
    "list_users": ("users", lambda s, p: s.list_users(p)),
    "deactivate": ("users", lambda s, p: s.deactivate("bob", actor=p)),
    "set_password_of_other": ("users", lambda s, p: s.set_password("bob", "new passphrase", actor=p)),
}

PERMISSION_OF = {
    "submit": Permission.SUBMIT_VERDICT,
    "read": Permission.READ_VERDICTS,
    "audit": Permission.READ_AUDIT,
    "export": Permission.EXPORT,
    "users": Permission.MANAGE_USERS,
}


def test_permission_matrix_matches_the_spec() -> None:
    for role, expected in EXPECTED.items():
        granted = {kind: PERMISSION_OF[kind] in ROLE_PERMISSIONS[role] for kind in expected}
        assert granted == expected, role


def _denials(store: ReviewStore, admin: Principal) -> list[tuple[str, dict]]:
    return [(e.user, dict(e.detail)) for e in store.audit_events(admin, action=AuditAction.PERMISSION_DENIED)]


@pytest.mark.parametrize("role", list(Role))
def test_every_operation_is_allowed_or_denied_by_role(store: ReviewStore, people, role: Role) -> None:
    principal = people.of_role(role)
    for name, (kind, operation) in OPERATIONS.items():
        before = len(_denials(store, people.dave))
        if EXPECTED[role][kind]:
            operation(store, principal)
            assert len(_denials(store, people.dave)) == before, name
        else:
            with pytest.raises(PermissionDenied, match=f"permission denied: {principal.name} may not"):
                operation(store, principal)
            denials = _denials(store, people.dave)
            assert len(denials) == before + 1, name
            user, detail = denials[0]  # newest first
            assert user == principal.name
            assert detail["role"] == role.value
            assert "does not allow" in detail["reason"]


def test_clinician_reading_the_audit_trail_is_denied_and_recorded(store: ReviewStore, people) -> None:
    with pytest.raises(PermissionDenied) as caught:
        store.audit_events(people.alice)
    assert "read the audit trail" in str(caught.value)
    assert "only auditor, admin may" in str(caught.value)
    [event] = store.audit_events(people.carol, action="permission_denied")
    assert (event.user, event.action) == ("alice", AuditAction.PERMISSION_DENIED)
    assert event.detail["operation"] == "read the audit trail"


def test_auditor_cannot_submit_and_nothing_is_stored(store: ReviewStore, people, submit) -> None:
    with pytest.raises(PermissionDenied, match="submit a verdict"):
        submit(store, people.carol, "c7")
    assert store.verdict_history(people.dave, "run1", "c7") == []
    [event] = store.audit_events(people.dave, action="permission_denied")
    assert (event.user, event.run_id, event.case_id) == ("carol", "run1", "c7")
    assert store.audit_events(people.dave, action="submit_verdict") == []


def test_denied_call_with_invalid_input_is_still_a_denial(store: ReviewStore, people, submit) -> None:
    # the role is checked before the input, so an auditor learns nothing from validation messages
    with pytest.raises(PermissionDenied):
        submit(store, people.carol, "c1", verdict="nonsense", confidence=99)
    with pytest.raises(PermissionDenied):
        store.add_user("not a name", "superuser", "short", actor=people.alice)
