"""The review store: accounts, clinicians' verdicts and the audit trail, with roles checked on every call.

Every method that reads or writes patient-related data takes a :class:`Principal`, which only
:meth:`ReviewStore.authenticate` hands out. Each call re-reads the account, so deactivating a user or
changing their role takes effect on their very next call, and checks the role against
:data:`mmdx.store.permissions.ROLE_PERMISSIONS`. A refused call raises :class:`PermissionDenied` after
recording a ``permission_denied`` event.

Verdicts and audit events are append-only (see :mod:`mmdx.store.schema`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import numbers
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, aliased

from mmdx.errors import MmdxError, look_up_option
from mmdx.store.csv_export import CsvTarget, write_csv
from mmdx.store.engine import (
    DEFAULT_BUSY_TIMEOUT_S,
    WRITE_OPTION,
    create_store_engine,
    display_url,
    initialise_schema,
    parse_store_url,
)
from mmdx.store.errors import AccountError, PermissionDenied, SignInLocked, StoreError
from mmdx.store.passwords import (
    DEFAULT_BCRYPT_ROUNDS,
    check_password_policy,
    check_rounds,
    hash_password,
    verify_password,
)
from mmdx.store.permissions import (
    NAME_ONLY_ACTIONS,
    RECORDABLE_ACTIONS,
    ROLE_PERMISSIONS,
    Permission,
    allows,
)
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
from mmdx.store.schema import (
    COMMENT_LENGTH,
    DIAGNOSIS_LENGTH,
    ID_LENGTH,
    NAME_LENGTH,
    AuditEventRow,
    UserRow,
    VerdictRow,
)
from mmdx.store.throttle import COUNTED_REASONS, LOCKED_REASON, LockScope, SignInLock, ThrottlePolicy

#: How failed sign-ins under a name that has no account appear in the trail. The attempted name itself is
#: not stored: people type their password into the name field often enough.
UNKNOWN_USER = "(unknown)"

USER_NAME_PATTERN = re.compile(rf"[a-z0-9][a-z0-9._@-]{{0,{NAME_LENGTH - 1}}}")
MAX_DETAIL_BYTES = 10_000
_SUBMIT_ATTEMPTS = 8  # a retry happens only when one user submits on one case from two places at once
_IN_CHUNK = 500  # case ids per IN (...) list
_UNKNOWN_NAMES_KEPT = 10_000  # names without an account whose failures are remembered (in memory)

# A process-wide key seals principals: any ReviewStore object of this process opened on the same database
# accepts the principals of another (the dashboard may hold several), nothing built by hand passes.
_SEAL_KEY = secrets.token_bytes(32)

Actor = Principal | Operator

# "A later verdict supersedes this one": built once, since building an alias per call is costly.
_NEWER = aliased(VerdictRow, name="newer")


@dataclass
class _Denied(Exception):
    reason: str


def canonical_user_name(name: object) -> str:
    """The stored form of a user name (trimmed, lower case); raises :class:`AccountError` if invalid."""
    if not isinstance(name, str):
        raise AccountError(f"a user name must be a string, got {type(name).__name__}")
    canonical = name.strip().lower()
    if not USER_NAME_PATTERN.fullmatch(canonical):
        raise AccountError(
            f"invalid user name {name!r}: expected 1 to {NAME_LENGTH} characters from a-z, 0-9 and . _ @ -, "
            "starting with a letter or digit (e.g. 'j.smith' or 'jsmith@hospital.org')"
        )
    return canonical


def _check_text(value: object, what: str, max_length: int, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise MmdxError(f"{what} must be a string, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise MmdxError(f"{what} is empty; give a non-empty value")
    if len(value) > max_length:
        raise MmdxError(f"{what} is too long: {len(value)} characters, at most {max_length} are accepted")
    if required and any(ord(c) < 32 for c in value):
        raise MmdxError(f"{what} {value!r} contains control characters; identifiers must be plain text")
    return value


def _check_id(value: object, what: str) -> str:
    checked = _check_text(value, what, ID_LENGTH, required=True)
    if checked != value:
        # Identifiers are matched exactly; quietly trimming one would file the verdict under another case.
        raise MmdxError(f"{what} {value!r} has leading or trailing whitespace; pass the identifier exactly")
    return checked


def _check_optional_id(value: object, what: str) -> str | None:
    return None if value is None else _check_id(value, what)


def _check_confidence(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= int(value) <= 5:
        raise MmdxError(
            f"confidence must be an integer from 1 (a guess) to 5 (certain), got {value!r}; "
            "pick one of 1, 2, 3, 4, 5"
        )
    return int(value)


def _check_helpful(values: object) -> list[str]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise MmdxError(
            f"helpful explanations must be a list of names, got {values!r}; e.g. ['image', 'shapley'] or []"
        )
    kinds: list[str] = []
    for value in values:
        kind = look_up_option(str(value), [k.value for k in ExplanationKind], "explanation kind")
        if kind not in kinds:
            kinds.append(kind)
    return kinds


def _check_detail(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    if detail is None:
        return {}
    if not isinstance(detail, Mapping):
        raise MmdxError(f"event detail must be a mapping (a JSON object), got {type(detail).__name__}")
    try:
        encoded = json.dumps(dict(detail), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise MmdxError(f"event detail must be JSON-serialisable with string keys: {exc}") from None
    if len(encoded.encode("utf-8")) > MAX_DETAIL_BYTES:
        raise MmdxError(
            f"event detail is {len(encoded)} bytes as JSON; at most {MAX_DETAIL_BYTES} are stored"
        )
    return json.loads(encoded)


def _check_since(since: datetime | None) -> datetime | None:
    if since is not None and (not isinstance(since, datetime) or since.utcoffset() is None):
        raise MmdxError(f"since must be a timezone-aware datetime, got {since!r}; e.g. datetime.now(UTC)")
    return since


def _check_limit(limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise MmdxError(f"limit must be a positive integer or None, got {limit!r}")
    return limit


def _verdict_record(row: VerdictRow) -> VerdictRecord:
    return VerdictRecord(
        id=row.id,
        run_id=row.run_id,
        case_id=row.case_id,
        user=row.user_name,
        created_at=row.created_at,
        verdict=Verdict(row.verdict),
        diagnosis=row.diagnosis,
        confidence=row.confidence,
        comment=row.comment,
        helpful_explanations=tuple(ExplanationKind(k) for k in row.helpful_explanations),
        model_version=row.model_version,
        explanation_version=row.explanation_version,
        supersedes=row.supersedes,
    )


def _event_record(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        time=row.time,
        user=row.user_name,
        action=AuditAction(row.action),
        run_id=row.run_id,
        case_id=row.case_id,
        detail=MappingProxyType(dict(row.detail or {})),
    )


def _user_info(row: UserRow) -> UserInfo:
    return UserInfo(name=row.name, role=Role(row.role), active=row.active, created_at=row.created_at)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


class ReviewStore:
    """Accounts, verdicts and the audit trail of one review database.

    One object may be shared by all threads of a process (e.g. held in ``st.cache_resource``): each call
    runs in its own short transaction on a pooled connection.

    Args:
        url: a SQLAlchemy URL: ``sqlite:///PATH`` (see :func:`default_store_url`) or
            ``postgresql+psycopg://user:password@host:port/database``. Tables are created on first open.
        bcrypt_rounds: cost of new password hashes (log2 of bcrypt's work factor), 4 to 20.
        busy_timeout_s: SQLite only: how long a writer waits for another process's write lock (seconds).
        throttle: failed sign-ins allowed before backoff, and the lock lengths (:mod:`mmdx.store.throttle`).

    Raises:
        StoreError: the URL is unusable or the database cannot be reached.
        SchemaVersionError: the database was written by another store schema version.
    """

    def __init__(
        self,
        url: str,
        *,
        bcrypt_rounds: int = DEFAULT_BCRYPT_ROUNDS,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        throttle: ThrottlePolicy | None = None,
    ) -> None:
        self.url = parse_store_url(url)
        self._display = display_url(self.url)
        self._rounds = check_rounds(bcrypt_rounds)
        self._engine = create_store_engine(self.url, busy_timeout_s)
        self._write_engine = self._engine.execution_options(**{WRITE_OPTION: True})
        try:
            initialise_schema(self._engine)
        except BaseException:
            self._engine.dispose()
            raise
        self._dummy_hash: str | None = None
        self._throttle = throttle or ThrottlePolicy()
        # Failures under names without an account are kept here, keyed by a keyed hash of the name (the
        # trail does not store attempted names): such names lock like real ones, so a lock does not tell
        # which names exist.
        self._unknown_failures: dict[bytes, list[datetime]] = {}

    def __repr__(self) -> str:
        return f"ReviewStore({self._display!r})"

    def close(self) -> None:
        """Release the store's database connections."""
        self._engine.dispose()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Session]:
        engine = self._write_engine if write else self._engine
        try:
            with Session(engine, expire_on_commit=False) as session, session.begin():
                yield session
        except OperationalError as exc:
            raise StoreError(
                f"the review store {self._display} could not complete the operation: {exc.orig}; "
                "if the database is locked or unreachable, retry, and check the server or file"
            ) from exc

    def _seal(self, name: str, role: Role) -> bytes:
        message = f"{self._display}\x00{name}\x00{Role(role).value}".encode()
        return hmac.new(_SEAL_KEY, message, hashlib.sha256).digest()

    def _check_principal(
        self,
        session: Session,
        principal: object,
        permission: Permission | None,
        *,
        require_active: bool = True,
    ) -> UserRow | None:
        if not isinstance(principal, Principal):
            raise _Denied(f"expected a Principal from authenticate(), got {type(principal).__name__}")
        try:
            genuine = hmac.compare_digest(principal.seal, self._seal(principal.name, principal.role))
        except (TypeError, ValueError):  # a hand-made principal with a role or seal of the wrong kind
            genuine = False
        if not genuine:
            raise _Denied("the principal was not issued by this store's authenticate(); sign in again")
        user = session.scalar(select(UserRow).where(UserRow.name == principal.name))
        if not require_active:
            return user
        if user is None or not user.active:
            raise _Denied(f"the account '{principal.name}' is deactivated")
        if Role(user.role) != principal.role:
            raise _Denied(
                f"the role of '{principal.name}' changed to {user.role} since sign-in; sign in again"
            )
        if permission is not None and not allows(principal.role, permission):
            holders = ", ".join(r.value for r, perms in ROLE_PERMISSIONS.items() if permission in perms)
            raise _Denied(f"the role '{principal.role}' does not allow it (only {holders} may)")
        return user

    @contextmanager
    def _authorized(
        self,
        principal: object,
        permission: Permission | None,
        operation: str,
        *,
        write: bool,
        run_id: str | None = None,
        case_id: str | None = None,
        require_active: bool = True,
    ) -> Iterator[Session]:
        denial: _Denied | None = None
        with self._session(write=write) as session:
            try:
                self._check_principal(session, principal, permission, require_active=require_active)
            except _Denied as exc:
                denial = exc
            else:
                yield session
        if denial is not None:
            raise self._deny(principal, operation, denial.reason, run_id, case_id)

    def _deny(
        self, actor: object, operation: str, reason: str, run_id: str | None, case_id: str | None
    ) -> PermissionDenied:
        name = actor.name if isinstance(actor, Principal) else "(invalid principal)"
        role = str(actor.role) if isinstance(actor, Principal) else None
        with self._session(write=True) as session:
            session.add(
                AuditEventRow(
                    time=datetime.now(UTC),
                    user_name=str(name)[: NAME_LENGTH + 20],
                    action=AuditAction.PERMISSION_DENIED,
                    run_id=run_id,
                    case_id=case_id,
                    detail={"operation": operation, "role": role, "reason": reason},
                )
            )
        return PermissionDenied(f"permission denied: {name} may not {operation}: {reason}")

    @staticmethod
    def _event(
        user: str,
        action: AuditAction,
        run_id: str | None = None,
        case_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEventRow:
        return AuditEventRow(
            time=datetime.now(UTC),
            user_name=user,
            action=action,
            run_id=run_id,
            case_id=case_id,
            detail=dict(detail or {}),
        )

    # ------------------------------------------------------------------ accounts

    def authenticate(self, name: str, password: str, *, client: str | None = None) -> Principal | None:
        """Check a user's password; return a :class:`Principal` or ``None``.

        Records ``sign_in`` or ``sign_in_failed`` (with the reason and the client, never the password). An
        unknown name still costs one bcrypt check, so the answer time does not tell which names exist.
        ``client`` (the address the attempt came from) is throttled like the account (see
        :mod:`mmdx.store.throttle`).

        Raises:
            SignInLocked: too many recent failures for the account or from the client; the password was
                not checked, and the refusal was recorded.
        """
        try:
            canonical: str | None = canonical_user_name(name)
        except AccountError:
            canonical = None
        now = datetime.now(UTC)
        unknown_key = self._unknown_key(canonical if canonical is not None else str(name))
        with self._session(write=False) as session:
            user = session.scalar(select(UserRow).where(UserRow.name == canonical)) if canonical else None
            account = self._account_failures(session, user.name, now) if user is not None else None
            clients = self._client_failures(session, client, now) if client else []
        if account is None:
            account = self._remembered_failures(unknown_key, now)
        lock = self._lock(account, clients, user.name if user is not None else "", client, now)
        if lock is not None:
            self._record_sign_in(
                user.name if user is not None else UNKNOWN_USER,
                AuditAction.SIGN_IN_FAILED,
                {"reason": LOCKED_REASON, "lock_scope": lock.scope.value, "locked_until": _iso(lock.until)},
                client,
            )
            raise SignInLocked(
                f"too many failed sign-ins {'for this account' if lock.scope is LockScope.ACCOUNT else 'from this client'}; "
                f"try again in {math.ceil(lock.retry_after_s)} s",
                lock.retry_after_s,
                lock.until,
            )
        # bcrypt runs outside any transaction: a SQLite write lock held for its ~0.2 s would stall writers.
        matches = verify_password(password, user.password_hash if user is not None else self._dummy())
        if user is None:
            outcome, reason = AuditAction.SIGN_IN_FAILED, "unknown_user"
        elif not matches:
            outcome, reason = AuditAction.SIGN_IN_FAILED, "wrong_password"
        elif not user.active:
            outcome, reason = AuditAction.SIGN_IN_FAILED, "account_deactivated"
        else:
            outcome, reason = AuditAction.SIGN_IN, None
        detail: dict[str, Any] = {"reason": reason} if reason else {}
        if outcome is AuditAction.SIGN_IN_FAILED:
            if user is None:
                self._remember_failure(unknown_key, now)
            # the lock this failure starts goes on the record with it
            after = self._lock(account + [now], clients + [now] if client else [], "", client, now)
            if after is not None:
                detail.update(lock_scope=after.scope.value, locked_until=_iso(after.until))
        self._record_sign_in(user.name if user is not None else UNKNOWN_USER, outcome, detail, client)
        if outcome is not AuditAction.SIGN_IN or user is None:
            return None
        role = Role(user.role)
        return Principal(name=user.name, role=role, seal=self._seal(user.name, role))

    # ------------------------------------------------------------------ sign-in throttling

    def _record_sign_in(
        self, name: str, action: AuditAction, detail: dict[str, Any], client: str | None
    ) -> None:
        if client:
            detail = {**detail, "client": str(client)[:100]}
        with self._session(write=True) as session:
            session.add(self._event(name, action, detail=detail or None))

    def _unknown_key(self, name: str) -> bytes:
        return hmac.new(_SEAL_KEY, f"{self._display}\x00{name}".encode(), hashlib.sha256).digest()

    def _remembered_failures(self, key: bytes, now: datetime) -> list[datetime]:
        start = now - timedelta(seconds=self._throttle.window_s)
        return [t for t in self._unknown_failures.get(key, []) if t >= start]

    def _remember_failure(self, key: bytes, now: datetime) -> None:
        self._unknown_failures[key] = [*self._remembered_failures(key, now), now]
        if len(self._unknown_failures) > _UNKNOWN_NAMES_KEPT:  # forget the names whose last failure is oldest
            ordered = sorted(self._unknown_failures, key=lambda k: self._unknown_failures[k][-1])
            for stale in ordered[: len(ordered) - _UNKNOWN_NAMES_KEPT]:
                del self._unknown_failures[stale]

    def _failed_sign_ins(
        self, session: Session, now: datetime, name: str | None = None
    ) -> list[AuditEventRow]:
        query = select(AuditEventRow).where(
            AuditEventRow.action == AuditAction.SIGN_IN_FAILED,
            AuditEventRow.time >= now - timedelta(seconds=self._throttle.window_s),
        )
        if name is not None:
            query = query.where(AuditEventRow.user_name == name)
        return list(session.scalars(query.order_by(AuditEventRow.time, AuditEventRow.id)))

    def _account_resets(self, session: Session, now: datetime) -> dict[str, datetime]:
        """When each account's count last started afresh: its last sign-in, password change or unlock."""
        rows = session.execute(
            select(
                AuditEventRow.time, AuditEventRow.action, AuditEventRow.user_name, AuditEventRow.detail
            ).where(
                AuditEventRow.action.in_(
                    [AuditAction.SIGN_IN, AuditAction.PASSWORD_CHANGED, AuditAction.USER_ACTIVATED]
                ),
                AuditEventRow.time >= now - timedelta(seconds=self._throttle.window_s),
            )
        )
        resets: dict[str, datetime] = {}
        for time, action, user_name, detail in rows:
            subject = user_name if action == AuditAction.SIGN_IN else (detail or {}).get("name")
            if isinstance(subject, str) and (subject not in resets or resets[subject] < time):
                resets[subject] = time
        return resets

    def _account_failures(self, session: Session, name: str, now: datetime) -> list[datetime]:
        reset = self._account_resets(session, now).get(name)
        return [
            e.time
            for e in self._failed_sign_ins(session, now, name)
            if (e.detail or {}).get("reason") in COUNTED_REASONS and (reset is None or e.time > reset)
        ]

    def _client_failures(self, session: Session, client: str, now: datetime) -> list[datetime]:
        return [
            e.time
            for e in self._failed_sign_ins(session, now)
            if (e.detail or {}).get("client") == str(client)[:100]
            and (e.detail or {}).get("reason") in COUNTED_REASONS
        ]

    def _lock(
        self, account: list[datetime], clients: list[datetime], name: str, client: str | None, now: datetime
    ) -> SignInLock | None:
        policy = self._throttle
        candidates = [
            (LockScope.ACCOUNT, name, account, policy.locked_until(account, policy.free_failures)),
            (
                LockScope.CLIENT,
                client or "",
                clients,
                policy.locked_until(clients, policy.client_free_failures),
            ),
        ]
        active = [
            (scope, subject, times, until)
            for scope, subject, times, until in candidates
            if until and until > now
        ]
        if not active:
            return None
        scope, subject, times, until = max(active, key=lambda c: c[3])
        return SignInLock(scope, subject, until, len(times), (until - now).total_seconds())

    def sign_in_locks(self, actor: Actor) -> list[SignInLock]:
        """The sign-in locks in force now, of accounts and of clients (admins and operators only)."""
        now = datetime.now(UTC)
        with self._managing(actor, "list sign-in locks", Permission.MANAGE_USERS) as session:
            failures = self._failed_sign_ins(session, now)
            resets = self._account_resets(session, now)
        by_account: dict[str, list[datetime]] = {}
        by_client: dict[str, list[datetime]] = {}
        for event in failures:
            detail = event.detail or {}
            if detail.get("reason") not in COUNTED_REASONS:
                continue
            reset = resets.get(event.user_name)
            if event.user_name != UNKNOWN_USER and (reset is None or event.time > reset):
                by_account.setdefault(event.user_name, []).append(event.time)
            if isinstance(detail.get("client"), str):
                by_client.setdefault(detail["client"], []).append(event.time)
        locks = [self._lock(times, [], name, None, now) for name, times in by_account.items()]
        locks += [self._lock([], times, "", client, now) for client, times in by_client.items()]
        return sorted(
            (lock for lock in locks if lock is not None), key=lambda lock: (lock.scope, lock.subject)
        )

    def clear_sign_in_lock(self, name: str, *, actor: Actor) -> None:
        """End an account's sign-in lock now and start its count afresh (recorded as ``user_activated`` with
        ``cleared: sign_in_lock``). A client's lock is not cleared: it ends by itself."""
        canonical = canonical_user_name(name)
        with self._managing(actor, "clear a sign-in lock", Permission.MANAGE_USERS) as session:
            if session.scalar(select(UserRow).where(UserRow.name == canonical)) is None:
                raise AccountError(f"no user named '{canonical}'; list the accounts with `mmdx users list`")
            session.add(
                self._event(
                    self._actor_name(actor),
                    AuditAction.USER_ACTIVATED,
                    detail={"name": canonical, "cleared": "sign_in_lock"},
                )
            )

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = hash_password(secrets.token_urlsafe(24), self._rounds)
        return self._dummy_hash

    @contextmanager
    def _managing(self, actor: object, operation: str, permission: Permission | None) -> Iterator[Session]:
        """A write transaction on behalf of an operator or of a principal holding ``permission``."""
        if isinstance(actor, Operator):
            if not isinstance(actor.name, str) or not actor.name.strip():
                raise MmdxError(f"an Operator needs a non-empty name, got {actor.name!r}")
            with self._session(write=True) as session:
                yield session
        else:
            with self._authorized(actor, permission, operation, write=True) as session:
                yield session

    @staticmethod
    def _actor_name(actor: Actor) -> str:
        return actor.audit_name[: NAME_LENGTH + 20] if isinstance(actor, Operator) else actor.name

    def add_user(self, name: str, role: Role | str, password: str, *, actor: Actor) -> UserInfo:
        """Create an active account. ``actor``: an admin :class:`Principal`, or an :class:`Operator`.

        Raises:
            AccountError: invalid name, unknown role, password shorter than 8 characters, name taken.
            PermissionDenied: ``actor`` is a principal without the admin role.
        """
        operation = "add a user"
        if not isinstance(actor, Operator):
            # refuse a non-admin before telling them anything about the new account's input
            with self._authorized(actor, Permission.MANAGE_USERS, operation, write=False):
                pass
        canonical = canonical_user_name(name)
        try:
            role = Role(look_up_option(str(role), [r.value for r in Role], "role"))
        except MmdxError as exc:
            raise AccountError(str(exc)) from None
        password_hash = hash_password(check_password_policy(password), self._rounds)
        try:
            with self._managing(actor, operation, Permission.MANAGE_USERS) as session:
                existing = session.scalar(select(UserRow).where(UserRow.name == canonical))
                if existing is not None:
                    state = "active" if existing.active else "deactivated"
                    raise AccountError(
                        f"user '{canonical}' already exists ({existing.role}, {state}); choose another name, "
                        "or change that account's password instead"
                    )
                row = UserRow(
                    name=canonical,
                    role=role,
                    password_hash=password_hash,
                    created_at=datetime.now(UTC),
                    active=True,
                )
                session.add(row)
                session.add(
                    self._event(
                        self._actor_name(actor),
                        AuditAction.USER_ADDED,
                        detail={"name": canonical, "role": role},
                    )
                )
                session.flush()
                return _user_info(row)
        except IntegrityError:
            raise AccountError(f"user '{canonical}' already exists; choose another name") from None

    def set_password(
        self, name: str, new_password: str, *, actor: Actor, current_password: str | None = None
    ) -> None:
        """Change a password. Admins and operators may change anyone's; any signed-in user may change their
        own by also giving ``current_password``."""
        canonical = canonical_user_name(name)
        self_service = isinstance(actor, Principal) and actor.name == canonical and actor.role != Role.ADMIN
        operation = "change the password"
        permission = None if self_service else Permission.MANAGE_USERS
        with self._managing(actor, operation, permission) as session:
            user = session.scalar(select(UserRow).where(UserRow.name == canonical))
            if user is None:
                raise AccountError(f"no user named '{canonical}'; list the accounts with `mmdx users list`")
            stored_hash = user.password_hash
        if self_service and not verify_password(current_password or "", stored_hash):
            raise self._deny(actor, operation, "the current password is wrong", None, None)
        new_hash = hash_password(check_password_policy(new_password), self._rounds)
        with self._managing(actor, operation, permission) as session:
            user = session.scalar(select(UserRow).where(UserRow.name == canonical))
            if user is None:
                raise AccountError(f"no user named '{canonical}'")
            user.password_hash = new_hash
            session.add(
                self._event(self._actor_name(actor), AuditAction.PASSWORD_CHANGED, detail={"name": canonical})
            )

    def deactivate(self, name: str, *, actor: Actor) -> UserInfo:
        """Stop an account from signing in; its principals are refused from their next call. Verdicts and
        events it made stay. Deactivating a deactivated account changes nothing."""
        return self._set_active(name, False, actor)

    def activate(self, name: str, *, actor: Actor) -> UserInfo:
        """Let a deactivated account sign in again."""
        return self._set_active(name, True, actor)

    def _set_active(self, name: str, active: bool, actor: Actor) -> UserInfo:
        canonical = canonical_user_name(name)
        operation = "activate a user" if active else "deactivate a user"
        with self._managing(actor, operation, Permission.MANAGE_USERS) as session:
            if not active and isinstance(actor, Principal) and actor.name == canonical:
                raise AccountError(
                    "you cannot deactivate your own account while signed in with it; ask another admin, "
                    "or use `mmdx users deactivate`"
                )
            user = session.scalar(select(UserRow).where(UserRow.name == canonical))
            if user is None:
                raise AccountError(f"no user named '{canonical}'; list the accounts with `mmdx users list`")
            if user.active != active:
                user.active = active
                action = AuditAction.USER_ACTIVATED if active else AuditAction.USER_DEACTIVATED
                session.add(self._event(self._actor_name(actor), action, detail={"name": canonical}))
            session.flush()
            return _user_info(user)

    def list_users(self, actor: Actor) -> list[UserInfo]:
        """All accounts, by name (admins and operators only)."""
        with self._managing(actor, "list users", Permission.MANAGE_USERS) as session:
            return [_user_info(u) for u in session.scalars(select(UserRow).order_by(UserRow.name))]

    # ------------------------------------------------------------------ verdicts

    def submit_verdict(
        self,
        principal: Principal,
        run_id: str,
        case_id: str,
        verdict: Verdict | str,
        diagnosis: str,
        confidence: int,
        comment: str,
        helpful: Iterable[ExplanationKind | str],
        model_version: str,
        explanation_version: str,
    ) -> VerdictRecord:
        """Append a verdict on one case of one run (clinicians and admins).

        A user's earlier verdict on the same case and run is not changed; the new record's ``supersedes``
        names it. Also records a ``submit_verdict`` audit event in the same transaction.

        Args:
            verdict: ``agree``, ``disagree`` or ``unsure`` about the model's prediction.
            diagnosis: the clinician's own diagnosis, free text (may be empty), at most 500 characters.
            confidence: 1 (a guess) to 5 (certain).
            comment: free text (may be empty), at most 5000 characters.
            helpful: which explanations helped: any of ``image``, ``tabular``, ``text``, ``shapley``.
            model_version, explanation_version: versions of what the clinician was shown.

        Raises:
            PermissionDenied: the principal may not submit verdicts (auditors).
            MmdxError: an invalid value, with what was expected.
        """
        run_id_safe = run_id if isinstance(run_id, str) else None
        case_id_safe = case_id if isinstance(case_id, str) else None
        if not isinstance(helpful, str | bytes) and isinstance(helpful, Iterable):
            helpful = list(helpful)  # a retry must see the same items again
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._authorized(
                    principal,
                    Permission.SUBMIT_VERDICT,
                    "submit a verdict",
                    write=True,
                    run_id=run_id_safe,
                    case_id=case_id_safe,
                ) as session:
                    row = VerdictRow(
                        run_id=_check_id(run_id, "run_id"),
                        case_id=_check_id(case_id, "case_id"),
                        user_name=principal.name,
                        created_at=datetime.now(UTC),
                        verdict=Verdict(look_up_option(str(verdict), [v.value for v in Verdict], "verdict")),
                        diagnosis=_check_text(diagnosis, "diagnosis", DIAGNOSIS_LENGTH, required=False),
                        confidence=_check_confidence(confidence),
                        comment=_check_text(comment, "comment", COMMENT_LENGTH, required=False),
                        helpful_explanations=_check_helpful(helpful),
                        model_version=_check_id(model_version, "model_version"),
                        explanation_version=_check_id(explanation_version, "explanation_version"),
                    )
                    row.supersedes = self._latest_id(session, row.run_id, row.case_id, row.user_name)
                    session.add(row)
                    session.flush()
                    session.add(
                        self._event(
                            principal.name,
                            AuditAction.SUBMIT_VERDICT,
                            row.run_id,
                            row.case_id,
                            {
                                "verdict_id": row.id,
                                "verdict": row.verdict.value,
                                "supersedes": row.supersedes,
                            },
                        )
                    )
                    return _verdict_record(row)
            except IntegrityError:
                # Another session of the same user appended to this chain first (PostgreSQL; SQLite writers
                # are serialised by BEGIN IMMEDIATE): re-read the chain's end and append after it.
                if attempt >= _SUBMIT_ATTEMPTS:
                    raise StoreError(
                        f"could not append the verdict on case '{case_id}' of run '{run_id}' after "
                        f"{_SUBMIT_ATTEMPTS} attempts: the same user kept submitting on it concurrently"
                    ) from None

    @staticmethod
    def _latest_id(session: Session, run_id: str, case_id: str, user: str) -> int | None:
        return session.scalar(
            select(VerdictRow.id).where(
                VerdictRow.run_id == run_id,
                VerdictRow.case_id == case_id,
                VerdictRow.user_name == user,
                ~exists().where(_NEWER.supersedes == VerdictRow.id),
            )
        )

    def verdict_history(self, principal: Principal, run_id: str, case_id: str) -> list[VerdictRecord]:
        """Every verdict of every user on one case of one run, oldest first (superseded ones included)."""
        run_id, case_id = _check_id(run_id, "run_id"), _check_id(case_id, "case_id")
        with self._authorized(
            principal, Permission.READ_VERDICTS, "read verdicts", write=False, run_id=run_id, case_id=case_id
        ) as session:
            rows = session.scalars(
                select(VerdictRow)
                .where(VerdictRow.run_id == run_id, VerdictRow.case_id == case_id)
                .order_by(VerdictRow.created_at, VerdictRow.id)
            )
            return [_verdict_record(r) for r in rows]

    def _latest_rows(self, session: Session, run_id: str, case_ids: list[str] | None) -> list[VerdictRow]:
        base = select(VerdictRow).where(
            VerdictRow.run_id == run_id, ~exists().where(_NEWER.supersedes == VerdictRow.id)
        )
        if case_ids is None:
            return list(session.scalars(base))
        rows: list[VerdictRow] = []
        for start in range(0, len(case_ids), _IN_CHUNK):
            rows.extend(
                session.scalars(base.where(VerdictRow.case_id.in_(case_ids[start : start + _IN_CHUNK])))
            )
        return rows

    def latest_verdicts(self, principal: Principal, run_id: str) -> dict[str, list[VerdictRecord]]:
        """Each user's current (not superseded) verdict per reviewed case of the run; lists sorted by user."""
        run_id = _check_id(run_id, "run_id")
        with self._authorized(
            principal, Permission.READ_VERDICTS, "read verdicts", write=False, run_id=run_id
        ) as session:
            rows = self._latest_rows(session, run_id, None)
        latest: dict[str, list[VerdictRecord]] = {}
        for row in sorted(rows, key=lambda r: (r.case_id, r.user_name)):
            latest.setdefault(row.case_id, []).append(_verdict_record(row))
        return latest

    def review_status(
        self, principal: Principal, run_id: str, case_ids: Iterable[str]
    ) -> dict[str, ReviewStatus]:
        """The :class:`ReviewStatus` of each given case for this principal (see its definition)."""
        run_id = _check_id(run_id, "run_id")
        if isinstance(case_ids, str):
            raise MmdxError(f"case_ids must be a list of case ids, got the single string {case_ids!r}")
        wanted = list(dict.fromkeys(_check_id(c, "case_id") for c in case_ids))
        with self._authorized(
            principal, Permission.READ_VERDICTS, "read verdicts", write=False, run_id=run_id
        ) as session:
            rows = self._latest_rows(session, run_id, wanted)
        by_case: dict[str, list[VerdictRow]] = {}
        for row in rows:
            by_case.setdefault(row.case_id, []).append(row)
        return {case_id: _status(by_case.get(case_id, []), principal.name) for case_id in wanted}

    def export_verdicts_csv(self, principal: Principal, run_id: str, target: CsvTarget) -> int:
        """Write every verdict of a run (full history, oldest first) as CSV; auditors and admins. Records an
        ``export`` event. Returns the number of verdict rows written."""
        run_id = _check_id(run_id, "run_id")
        with self._authorized(
            principal, Permission.EXPORT, "export verdicts", write=True, run_id=run_id
        ) as session:
            rows = session.scalars(
                select(VerdictRow)
                .where(VerdictRow.run_id == run_id)
                .order_by(VerdictRow.created_at, VerdictRow.id)
            )
            count = write_csv(
                target,
                VERDICT_CSV_COLUMNS,
                (
                    (
                        r.id,
                        r.run_id,
                        r.case_id,
                        r.user_name,
                        _iso(r.created_at),
                        Verdict(r.verdict).value,
                        r.diagnosis,
                        r.confidence,
                        r.comment,
                        ";".join(r.helpful_explanations),
                        r.model_version,
                        r.explanation_version,
                        "" if r.supersedes is None else r.supersedes,
                    )
                    for r in rows
                ),
            )
            session.add(
                self._event(
                    principal.name, AuditAction.EXPORT, run_id, None, {"what": "verdicts", "rows": count}
                )
            )
        return count

    # ------------------------------------------------------------------ audit trail

    def record_event(
        self,
        principal_or_name: Principal | str,
        action: AuditAction | str,
        run_id: str | None = None,
        case_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Record what the dashboard saw a user do: ``open_case`` (needs ``run_id`` and ``case_id``),
        ``export`` (auditors and admins), ``sign_out`` and ``session_timeout``.

        The last two may be recorded under a bare user name when the principal is gone (the event then
        carries ``"unauthenticated": true`` in its detail). Other actions are written by the store itself.
        """
        action = AuditAction(look_up_option(str(action), [a.value for a in AuditAction], "audit action"))
        if action not in RECORDABLE_ACTIONS:
            raise MmdxError(
                f"audit action '{action}' is recorded by the review store itself and cannot be recorded "
                f"directly; record_event accepts: {', '.join(sorted(RECORDABLE_ACTIONS))}"
            )
        run_id = _check_optional_id(run_id, "run_id")
        case_id = _check_optional_id(case_id, "case_id")
        if action is AuditAction.OPEN_CASE and (run_id is None or case_id is None):
            raise MmdxError("an open_case event needs both run_id and case_id")
        detail = _check_detail(detail)
        if isinstance(principal_or_name, str):
            if action not in NAME_ONLY_ACTIONS:
                raise MmdxError(
                    f"audit action '{action}' needs the signed-in Principal, not a bare name; only "
                    f"{', '.join(sorted(NAME_ONLY_ACTIONS))} may be recorded by name"
                )
            name = canonical_user_name(principal_or_name)
            with self._session(write=True) as session:
                if session.scalar(select(UserRow.id).where(UserRow.name == name)) is None:
                    raise AccountError(f"no user named '{name}'; cannot record '{action}' for them")
                row = self._event(name, action, run_id, case_id, {**detail, "unauthenticated": True})
                session.add(row)
                session.flush()
                return _event_record(row)
        permission = RECORDABLE_ACTIONS[action]
        with self._authorized(
            principal_or_name,
            permission,
            f"record '{action}'",
            write=True,
            run_id=run_id,
            case_id=case_id,
            require_active=permission is not None,
        ) as session:
            row = self._event(principal_or_name.name, action, run_id, case_id, detail)
            session.add(row)
            session.flush()
            return _event_record(row)

    @staticmethod
    def _audit_query(
        since: datetime | None,
        user: str | None,
        case_id: str | None,
        run_id: str | None,
        action: AuditAction | str | None,
    ) -> tuple[Any, dict[str, Any]]:
        since = _check_since(since)
        stmt = select(AuditEventRow)
        filters: dict[str, Any] = {}
        if since is not None:
            stmt = stmt.where(AuditEventRow.time >= since)
            filters["since"] = _iso(since)
        if user is not None:
            user = str(user).strip()
            stmt = stmt.where(AuditEventRow.user_name == user)
            filters["user"] = user
        if case_id is not None:
            case_id = _check_id(case_id, "case_id")
            stmt = stmt.where(AuditEventRow.case_id == case_id)
            filters["case_id"] = case_id
        if run_id is not None:
            run_id = _check_id(run_id, "run_id")
            stmt = stmt.where(AuditEventRow.run_id == run_id)
            filters["run_id"] = run_id
        if action is not None:
            action = AuditAction(look_up_option(str(action), [a.value for a in AuditAction], "audit action"))
            stmt = stmt.where(AuditEventRow.action == action)
            filters["action"] = action.value
        return stmt, filters

    def audit_events(
        self,
        principal: Principal,
        since: datetime | None = None,
        user: str | None = None,
        case_id: str | None = None,
        limit: int | None = None,
        *,
        run_id: str | None = None,
        action: AuditAction | str | None = None,
    ) -> list[AuditEvent]:
        """Audit events, newest first, optionally filtered (auditors and admins).

        ``since`` is inclusive and timezone-aware; ``limit`` keeps the newest ``limit`` events. Each call
        records a ``view_audit`` event (after reading, so it is not among the events returned).
        """
        limit = _check_limit(limit)
        stmt, filters = self._audit_query(since, user, case_id, run_id, action)
        with self._authorized(
            principal, Permission.READ_AUDIT, "read the audit trail", write=True
        ) as session:
            stmt = stmt.order_by(AuditEventRow.time.desc(), AuditEventRow.id.desc())
            if limit is not None:
                stmt = stmt.limit(limit)
            events = [_event_record(r) for r in session.scalars(stmt)]
            session.add(self._event(principal.name, AuditAction.VIEW_AUDIT, detail={"filters": filters}))
        return events

    def export_audit_csv(
        self,
        principal: Principal,
        target: CsvTarget,
        since: datetime | None = None,
        user: str | None = None,
        case_id: str | None = None,
        *,
        run_id: str | None = None,
        action: AuditAction | str | None = None,
    ) -> int:
        """Write the (filtered) audit trail as CSV, oldest first, to a path or text handle (auditors and
        admins). Cells a spreadsheet would run as formulas are neutralised (see :mod:`csv_export`).
        Records an ``export`` event. Returns the number of events written."""
        stmt, filters = self._audit_query(since, user, case_id, run_id, action)
        with self._authorized(principal, Permission.EXPORT, "export the audit trail", write=True) as session:
            rows = session.scalars(stmt.order_by(AuditEventRow.time, AuditEventRow.id))
            count = write_csv(
                target,
                AUDIT_CSV_COLUMNS,
                (
                    (
                        r.id,
                        _iso(r.time),
                        r.user_name,
                        AuditAction(r.action).value,
                        r.run_id or "",
                        r.case_id or "",
                        json.dumps(r.detail or {}, sort_keys=True),
                    )
                    for r in rows
                ),
            )
            session.add(
                self._event(
                    principal.name,
                    AuditAction.EXPORT,
                    detail={"what": "audit_trail", "rows": count, "filters": filters},
                )
            )
        return count


AUDIT_CSV_COLUMNS = ("id", "time", "user", "action", "run_id", "case_id", "detail")
VERDICT_CSV_COLUMNS = (
    "id",
    "run_id",
    "case_id",
    "user",
    "created_at",
    "verdict",
    "diagnosis",
    "confidence",
    "comment",
    "helpful_explanations",
    "model_version",
    "explanation_version",
    "supersedes",
)


def _status(latest: list[VerdictRow], me: str) -> ReviewStatus:
    if not latest:
        return ReviewStatus.UNREVIEWED
    values = {Verdict(r.verdict) for r in latest}
    if Verdict.DISAGREE in values or len(values) > 1:
        return ReviewStatus.DISPUTED
    if any(r.user_name == me for r in latest):
        return ReviewStatus.REVIEWED_BY_ME
    return ReviewStatus.REVIEWED_BY_OTHERS
