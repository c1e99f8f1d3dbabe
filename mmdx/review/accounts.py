"""Accounts as the dashboard handles them: the demo account and the admin's user list."""

from __future__ import annotations

import getpass
import os
import secrets

import pandas as pd

from mmdx.errors import MmdxError
from mmdx.store import Operator, Principal, ReviewStore, Role

DEMO_ACCOUNT = "demo"


def _operator() -> Operator:
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        login = f"uid{os.getuid()}"
    return Operator(login)


def ensure_demo_account(
    store_url: str, name: str = DEMO_ACCOUNT, role: Role | str = Role.CLINICIAN
) -> tuple[str, str]:
    """Make sure the store has an active account ``name`` of ``role`` with a fresh random password, and
    return ``(name, password)``.

    The password is new on every call (an existing account's password is replaced), so no password is
    ever fixed in code or kept on disk; the caller prints it once for the person running the demo. Acts as
    an :class:`~mmdx.store.Operator` (recorded in the audit trail as ``operator:<login>``).

    Raises:
        MmdxError: an account ``name`` exists with another role (choose another name).
    """
    role = Role(role)
    password = secrets.token_urlsafe(12)
    operator = _operator()
    with ReviewStore(store_url) as store:
        existing = {u.name: u for u in store.list_users(operator)}
        account = existing.get(name.strip().lower())
        if account is None:
            info = store.add_user(name, role, password, actor=operator)
            return info.name, password
        if account.role != role:
            raise MmdxError(
                f"the store already has an account '{account.name}' with the role {account.role}, not {role}; "
                "pass another name for the demo account"
            )
        if not account.active:
            store.activate(account.name, actor=operator)
        store.set_password(account.name, password, actor=operator)
        return account.name, password


def users_frame(store: ReviewStore, principal: Principal) -> pd.DataFrame:
    """All accounts (admins only; the store refuses others): name, role, active, created."""
    users = store.list_users(principal)
    return pd.DataFrame(
        [
            {
                "name": u.name,
                "role": u.role.value,
                "active": u.active,
                "created (UTC)": u.created_at.strftime("%Y-%m-%d %H:%M"),
            }
            for u in users
        ],
        columns=["name", "role", "active", "created (UTC)"],
    )


def sign_in_locks_frame(store: ReviewStore, principal: Principal) -> pd.DataFrame:
    """The sign-in locks in force (admins only): scope (account or client), who, failures, locked until."""
    locks = store.sign_in_locks(principal)
    return pd.DataFrame(
        [
            {
                "scope": lock.scope.value,
                "account or client": lock.subject,
                "failed sign-ins": lock.failures,
                "locked until (UTC)": lock.until.strftime("%Y-%m-%d %H:%M:%S"),
            }
            for lock in locks
        ],
        columns=["scope", "account or client", "failed sign-ins", "locked until (UTC)"],
    )
