"""The review store: clinicians' verdicts on model predictions, user accounts and the audit trail.

One database per deployment, reached through a SQLAlchemy URL: SQLite in the run directory by default
(:func:`default_store_url`), PostgreSQL for several users on several machines. Typical use::

    store = ReviewStore(default_store_url("runs/demo"))
    me = store.authenticate("j.smith", password, client="10.0.0.7")  # Principal, None, or SignInLocked
    store.record_event(me, AuditAction.OPEN_CASE, run_id="demo", case_id="c0042")
    store.submit_verdict(me, "demo", "c0042", Verdict.DISAGREE, "pneumonia", 4, "", ["image"], "m1", "e1")
    store.review_status(me, "demo", ["c0042", "c0043"])     # {"c0042": "disputed", "c0043": "unreviewed"}

Roles are checked by the store on every call (:mod:`mmdx.store.permissions`).
"""

from mmdx.store.csv_export import neutralise_cell
from mmdx.store.engine import STORE_ENV, default_store_url, require_store_url, resolve_store_url
from mmdx.store.errors import AccountError, PermissionDenied, SchemaVersionError, SignInLocked, StoreError
from mmdx.store.passwords import MIN_PASSWORD_LENGTH
from mmdx.store.permissions import ROLE_PERMISSIONS, Permission
from mmdx.store.records import (
    AuditAction,
    AuditEvent,
    ExplanationKind,
    Operator,
    Principal,
    ReviewStatus,
    Role,
    UserInfo,
    Verdict,
    VerdictRecord,
)
from mmdx.store.review_store import AUDIT_CSV_COLUMNS, UNKNOWN_USER, VERDICT_CSV_COLUMNS, ReviewStore
from mmdx.store.schema import SCHEMA_VERSION
from mmdx.store.sessions import DEFAULT_IDLE_TIMEOUT_S, SessionClock, is_session_expired
from mmdx.store.throttle import SignInLock, ThrottlePolicy

__all__ = [
    "AUDIT_CSV_COLUMNS",
    "DEFAULT_IDLE_TIMEOUT_S",
    "MIN_PASSWORD_LENGTH",
    "ROLE_PERMISSIONS",
    "SCHEMA_VERSION",
    "STORE_ENV",
    "UNKNOWN_USER",
    "VERDICT_CSV_COLUMNS",
    "AccountError",
    "AuditAction",
    "AuditEvent",
    "ExplanationKind",
    "Operator",
    "Permission",
    "PermissionDenied",
    "Principal",
    "ReviewStatus",
    "ReviewStore",
    "Role",
    "SchemaVersionError",
    "SessionClock",
    "SignInLock",
    "SignInLocked",
    "StoreError",
    "ThrottlePolicy",
    "UserInfo",
    "Verdict",
    "VerdictRecord",
    "default_store_url",
    "require_store_url",
    "resolve_store_url",
    "is_session_expired",
    "neutralise_cell",
]
