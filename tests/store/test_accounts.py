"""Accounts: salted bcrypt hashes, sign-in outcomes and their audit events, account management."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import create_engine, select, text

import mmdx.store.review_store as review_store_module
from mmdx.store import (
    UNKNOWN_USER,
    AccountError,
    AuditAction,
    PermissionDenied,
    Principal,
    ReviewStore,
    Role,
)
from mmdx.store.schema import UserRow


def _hashes(store: ReviewStore) -> dict[str, str]:
    engine = create_engine(store.url)
    try:
        with engine.connect() as conn:
            return {
                name: stored for name, stored in conn.execute(select(UserRow.name, UserRow.password_hash))
            }
    finally:
        engine.dispose()


def _actions(store: ReviewStore, auditor: Principal) -> list[tuple[str, AuditAction, dict]]:
    """(user, action, detail) of every event, oldest first; reading adds a view_audit event afterwards."""
    return [(e.user, e.action, dict(e.detail)) for e in reversed(store.audit_events(auditor))]


def test_same_password_gives_different_salted_hashes(store: ReviewStore, operator, password) -> None:
    store.add_user("ann", "clinician", password, actor=operator)
    store.add_user("ben", "clinician", password, actor=operator)
    hashes = _hashes(store)
    assert hashes["ann"] != hashes["ben"]
    for stored in hashes.values():
        assert stored.startswith("$2b$04$")  # bcrypt, with the store's cost
        assert password not in stored
        assert stored != password


def test_authenticate_returns_principal_only_for_the_right_password(
    store: ReviewStore, operator, password
) -> None:
    store.add_user("ann", Role.AUDITOR, password, actor=operator)
    principal = store.authenticate("ann", password)
    assert principal is not None
    assert (principal.name, principal.role) == ("ann", Role.AUDITOR)
    assert store.authenticate("ann", password + "x") is None
    assert store.authenticate("ann", password[:-1]) is None
    assert store.authenticate("ann", "") is None
    assert store.authenticate("nobody", password) is None
    assert store.authenticate("not a valid name!", password) is None


def test_names_are_case_insensitive_and_trimmed(store: ReviewStore, operator, password) -> None:
    info = store.add_user("  J.Smith@Hospital.org ", "clinician", password, actor=operator)
    assert info.name == "j.smith@hospital.org"
    assert store.authenticate("J.SMITH@hospital.org", password) is not None
    with pytest.raises(AccountError, match="already exists"):
        store.add_user("j.smith@HOSPITAL.org", "auditor", password, actor=operator)


def test_sign_in_outcomes_are_audited_without_the_password(
    store: ReviewStore, operator, password, sign_up
) -> None:
    auditor = sign_up(store, "carol", "auditor")
    store.add_user("ann", "clinician", password, actor=operator)
    secret_typo = "hunter2-typo-" + password
    store.authenticate("ann", secret_typo)
    store.authenticate(secret_typo, password)  # a password typed into the name field
    store.authenticate("ann", password)
    store.deactivate("ann", actor=operator)
    store.authenticate("ann", password)

    events = [
        e for e in _actions(store, auditor) if e[1] in (AuditAction.SIGN_IN, AuditAction.SIGN_IN_FAILED)
    ]
    assert events[1:] == [
        ("ann", AuditAction.SIGN_IN_FAILED, {"reason": "wrong_password"}),
        (UNKNOWN_USER, AuditAction.SIGN_IN_FAILED, {"reason": "unknown_user"}),
        ("ann", AuditAction.SIGN_IN, {}),
        ("ann", AuditAction.SIGN_IN_FAILED, {"reason": "account_deactivated"}),
    ]
    assert events[0] == ("carol", AuditAction.SIGN_IN, {})
    assert secret_typo not in repr(store.audit_events(auditor))


def test_password_appears_nowhere_in_the_database(store: ReviewStore, sign_up) -> None:
    secret = "Very-Distinctive-Passphrase-4711"
    auditor = sign_up(store, "carol", "auditor", password=secret)
    store.authenticate("carol", secret + "?")
    store.authenticate(secret, secret)
    store.export_audit_csv(auditor, _null_writer())
    engine = create_engine(store.url)
    try:
        with engine.connect() as conn:
            for table in ("users", "verdicts", "audit_events", "mmdx_meta"):
                dump = repr(conn.execute(text(f"SELECT * FROM {table}")).all())
                assert secret not in dump and secret.lower() not in dump, table
    finally:
        engine.dispose()


class _null_writer:  # noqa: N801 - reads like a value at the call site
    def write(self, data: str) -> int:
        return len(data)


def test_unknown_user_costs_a_bcrypt_check_too(
    store: ReviewStore, monkeypatch: pytest.MonkeyPatch, operator, password
) -> None:
    store.add_user("ann", "clinician", password, actor=operator)
    checked: list[str] = []
    real = review_store_module.verify_password

    def counting(password: str, stored: str) -> bool:
        checked.append(stored)
        return real(password, stored)

    monkeypatch.setattr(review_store_module, "verify_password", counting)
    store.authenticate("nobody", password)
    store.authenticate("ann", "wrong password")
    assert len(checked) == 2
    # the dummy hash has the same cost as a real one, so both answers take about as long
    assert checked[0][:7] == checked[1][:7] == "$2b$04$"


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "too short: got 5 characters, need at least 8"),
        ("        ", "only whitespace"),
        ("x" * 1025, "too long"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(
    store: ReviewStore, password: str, message: str, operator
) -> None:
    with pytest.raises(AccountError, match=message):
        store.add_user("ann", "clinician", password, actor=operator)
    assert store.list_users(operator) == []


@pytest.mark.parametrize(
    ("name", "role", "message"),
    [
        ("", "clinician", "invalid user name"),
        ("has space", "clinician", "invalid user name"),
        ("-dash", "clinician", "invalid user name"),
        ("x" * 65, "clinician", "invalid user name"),
        ("ann", "clinican", "did you mean 'clinician'"),
        ("ann", "superuser", "unknown role"),
    ],
)
def test_bad_names_and_roles_are_refused(
    store: ReviewStore, name: str, role: str, message: str, operator, password
) -> None:
    with pytest.raises(AccountError, match=message):
        store.add_user(name, role, password, actor=operator)


def test_long_passphrases_count_beyond_bcrypts_72_bytes(store: ReviewStore, operator) -> None:
    long = "a" * 100
    store.add_user("ann", "clinician", long, actor=operator)
    assert store.authenticate("ann", long) is not None
    # differs only after byte 72: a truncating scheme would accept it
    assert store.authenticate("ann", "a" * 99 + "b") is None


def test_list_deactivate_activate(store: ReviewStore, operator, password) -> None:
    store.add_user("zed", "admin", password, actor=operator)
    store.add_user("ann", "clinician", password, actor=operator)
    users = store.list_users(operator)
    assert [(u.name, u.role, u.active) for u in users] == [
        ("ann", Role.CLINICIAN, True),
        ("zed", Role.ADMIN, True),
    ]
    assert all(u.created_at.tzinfo is not None for u in users)
    assert not any("hash" in f.name for f in dataclasses.fields(users[0]))

    assert store.deactivate("ann", actor=operator).active is False
    assert store.authenticate("ann", password) is None
    assert store.deactivate("ann", actor=operator).active is False  # idempotent
    assert store.activate("ann", actor=operator).active is True
    assert store.authenticate("ann", password) is not None
    with pytest.raises(AccountError, match="no user named 'nobody'"):
        store.deactivate("nobody", actor=operator)


def test_deactivation_applies_to_principals_already_signed_in(store: ReviewStore, operator, sign_up) -> None:
    ann = sign_up(store, "ann", "clinician")
    assert store.latest_verdicts(ann, "run1") == {}
    store.deactivate("ann", actor=operator)
    with pytest.raises(PermissionDenied, match="deactivated"):
        store.latest_verdicts(ann, "run1")


def test_account_changes_are_audited_with_the_actor(store: ReviewStore, operator, password, sign_up) -> None:
    admin = sign_up(store, "dave", "admin")
    store.add_user("ann", "clinician", password, actor=admin)
    store.set_password("ann", "a new passphrase", actor=admin)
    store.deactivate("ann", actor=admin)
    store.activate("ann", actor=operator)
    events = [e for e in _actions(store, admin) if e[1].value.startswith(("user_", "password_"))]
    assert events == [
        ("operator:test-operator", AuditAction.USER_ADDED, {"name": "dave", "role": "admin"}),
        ("dave", AuditAction.USER_ADDED, {"name": "ann", "role": "clinician"}),
        ("dave", AuditAction.PASSWORD_CHANGED, {"name": "ann"}),
        ("dave", AuditAction.USER_DEACTIVATED, {"name": "ann"}),
        ("operator:test-operator", AuditAction.USER_ACTIVATED, {"name": "ann"}),
    ]


def test_set_password_by_admin_and_by_the_user_themself(store: ReviewStore, password, sign_up) -> None:
    admin = sign_up(store, "dave", "admin")
    ann = sign_up(store, "ann", "clinician")
    bob = sign_up(store, "bob", "clinician")
    before = _hashes(store)["ann"]

    store.set_password("ann", "second passphrase", actor=admin)
    assert _hashes(store)["ann"] != before
    assert store.authenticate("ann", password) is None
    assert store.authenticate("ann", "second passphrase") is not None

    store.set_password("ann", "third passphrase", actor=ann, current_password="second passphrase")
    assert store.authenticate("ann", "third passphrase") is not None

    with pytest.raises(PermissionDenied, match="current password is wrong"):
        store.set_password("ann", "fourth passphrase", actor=ann, current_password="wrong")
    with pytest.raises(PermissionDenied, match="only admin may"):
        store.set_password("ann", "fourth passphrase", actor=bob, current_password="third passphrase")
    with pytest.raises(AccountError, match="too short"):
        store.set_password("ann", "short", actor=admin)
    assert store.authenticate("ann", "third passphrase") is not None


def test_admin_cannot_deactivate_themself_while_signed_in(store: ReviewStore, password, sign_up) -> None:
    admin = sign_up(store, "dave", "admin")
    with pytest.raises(AccountError, match="your own account"):
        store.deactivate("dave", actor=admin)
    assert store.authenticate("dave", password) is not None


def test_principals_cannot_be_forged(store: ReviewStore, sign_up) -> None:
    ann = sign_up(store, "ann", "clinician")
    forgeries = [
        Principal("ann", Role.CLINICIAN),
        Principal("ann", Role.ADMIN, seal=ann.seal),
        dataclasses.replace(ann, role=Role.ADMIN),
        dataclasses.replace(ann, name="dave"),
        Principal("ann", "superuser", seal=ann.seal),  # type: ignore[arg-type]
        Principal("ann", Role.CLINICIAN, seal="not bytes"),  # type: ignore[arg-type]
    ]
    for forged in forgeries:
        with pytest.raises(PermissionDenied, match="not issued by this store"):
            store.latest_verdicts(forged, "run1")
    with pytest.raises(PermissionDenied, match="expected a Principal"):
        store.latest_verdicts("ann", "run1")  # type: ignore[arg-type]


def test_a_principal_is_accepted_by_another_store_object_on_the_same_database(
    store: ReviewStore, sign_up
) -> None:
    ann = sign_up(store, "ann", "clinician")
    with ReviewStore(str(store.url.render_as_string(hide_password=False)), bcrypt_rounds=4) as other:
        assert other.latest_verdicts(ann, "run1") == {}


def test_role_change_behind_a_principals_back_is_refused(store: ReviewStore, sign_up) -> None:
    ann = sign_up(store, "ann", "clinician")
    engine = create_engine(store.url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE users SET role = 'auditor' WHERE name = 'ann'"))
    finally:
        engine.dispose()
    with pytest.raises(PermissionDenied, match="role of 'ann' changed to auditor"):
        store.latest_verdicts(ann, "run1")
