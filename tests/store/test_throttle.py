"""Sign-in throttling: exponential backoff and a temporary lock per account and per client, written to the
audit trail, visible to admins, and never a permanent lock-out."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mmdx.store import AuditAction, Operator, PermissionDenied, ReviewStore, Role, SignInLocked
from mmdx.store import passwords as password_module
from mmdx.store.throttle import ThrottlePolicy

#: fast enough to wait out in a test: 2 free failures, then 0.3 s, 0.6 s, capped at 1.2 s
FAST = ThrottlePolicy(free_failures=2, client_free_failures=4, base_delay_s=0.3, max_delay_s=1.2)


@pytest.mark.parametrize(
    ("failures", "free", "delay"),
    [
        (0, 5, 0.0),
        (4, 5, 0.0),
        (5, 5, 2.0),
        (6, 5, 4.0),
        (9, 5, 32.0),
        (13, 5, 512.0),
        (14, 5, 900.0),
        (99, 5, 900.0),
    ],
)
def test_the_delay_doubles_after_the_free_failures_up_to_its_cap(
    failures: int, free: int, delay: float
) -> None:
    assert ThrottlePolicy().delay_s(failures, free) == delay


@pytest.fixture
def fast_store(store_url: str, operator, password) -> Iterator[ReviewStore]:
    with ReviewStore(store_url, bcrypt_rounds=4, throttle=FAST) as store:
        store.add_user("adm", Role.ADMIN, password, actor=operator)
        store.add_user("clin", Role.CLINICIAN, password, actor=operator)
        yield store


def test_thirty_wrong_passwords_then_the_right_one(store_url: str, operator, password, monkeypatch) -> None:
    checks = []
    real = password_module.verify_password
    monkeypatch.setattr("mmdx.store.review_store.verify_password", lambda *a: checks.append(1) or real(*a))
    with ReviewStore(store_url, bcrypt_rounds=4) as store:  # the default policy
        store.add_user("adm", Role.ADMIN, password, actor=operator)
        refused = 0
        for i in range(30):
            try:
                assert store.authenticate("adm", f"guess number {i}", client="203.0.113.9") is None
            except SignInLocked as locked:
                refused += 1
                assert 0 < locked.retry_after_s <= 900
        with pytest.raises(SignInLocked):
            store.authenticate("adm", password, client="203.0.113.9")
        assert refused == 25 and len(checks) == 5  # bcrypt ran for the free attempts only
        admin = admin_principal(store)
        failed = store.audit_events(admin, action=AuditAction.SIGN_IN_FAILED)
        assert sum(e.detail.get("reason") == "locked" for e in failed) == 26
        assert any("locked_until" in e.detail for e in failed if e.detail.get("reason") == "wrong_password")


def admin_principal(store: ReviewStore):
    """An admin principal of another account than the locked one."""
    store.add_user("auditing-admin", Role.ADMIN, "another long passphrase", actor=Operator("tests"))
    principal = store.authenticate("auditing-admin", "another long passphrase")
    assert principal is not None
    return principal


def test_a_lock_expires_so_an_admin_is_never_locked_out_for_good(fast_store: ReviewStore, password) -> None:
    for _ in range(3):
        try:
            fast_store.authenticate("adm", "wrong password!")
        except SignInLocked:
            pass
    with pytest.raises(SignInLocked) as info:
        fast_store.authenticate("adm", password)
    time.sleep(info.value.retry_after_s + 0.05)
    assert fast_store.authenticate("adm", password) is not None
    # a success starts the account's count afresh
    assert fast_store.authenticate("adm", "wrong password!") is None


def test_an_operator_clears_an_account_lock_at_once(fast_store: ReviewStore, operator, password) -> None:
    for _ in range(4):
        try:
            fast_store.authenticate("adm", "wrong password!")
        except SignInLocked:
            pass
    with pytest.raises(SignInLocked):
        fast_store.authenticate("adm", password)
    fast_store.clear_sign_in_lock("adm", actor=operator)
    assert fast_store.authenticate("adm", password) is not None


def test_a_client_is_throttled_across_accounts(fast_store: ReviewStore, password) -> None:
    for name in ("nobody", "clin", "someone", "adm", "x.y"):
        try:
            fast_store.authenticate(name, "wrong password!", client="198.51.100.7")
        except SignInLocked:
            pass
    with pytest.raises(SignInLocked):
        fast_store.authenticate("clin", password, client="198.51.100.7")
    assert fast_store.authenticate("clin", password, client="192.0.2.1") is not None


def test_unknown_names_are_throttled_like_accounts(fast_store: ReviewStore) -> None:
    outcomes = []
    for name in ("adm", "ghost"):
        seen = []
        for _ in range(4):
            try:
                seen.append(fast_store.authenticate(name, "wrong password!"))
            except SignInLocked:
                seen.append("locked")
        outcomes.append(seen)
    assert outcomes[0] == outcomes[1] == [None, None, "locked", "locked"]


def test_admins_see_the_locks(fast_store: ReviewStore, password) -> None:
    admin = fast_store.authenticate("adm", password)
    for _ in range(2):
        fast_store.authenticate("clin", "wrong password!", client="198.51.100.8")
    locks = {(lock.scope, lock.subject): lock for lock in fast_store.sign_in_locks(admin)}
    assert locks[("account", "clin")].failures == 2 and locks[("account", "clin")].retry_after_s > 0
    with pytest.raises(SignInLocked):
        fast_store.authenticate("clin", password)
    fast_store.add_user("clin2", Role.CLINICIAN, password, actor=Operator("tests"))
    clinician = fast_store.authenticate("clin2", password)
    with pytest.raises(PermissionDenied):
        fast_store.sign_in_locks(clinician)
