"""A signed-in dashboard session: who, since when, and the idle clock that ends it.

The dashboard keeps one :class:`ReviewSession` per browser session (in ``st.session_state``, never in a
cache shared between users) and calls :func:`expire_if_idle` before it shows anything: a session idle for
longer than its timeout is ended and a ``session_timeout`` event recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from mmdx.errors import MmdxError
from mmdx.store import (
    DEFAULT_IDLE_TIMEOUT_S,
    AuditAction,
    Principal,
    ReviewStore,
    SessionClock,
)
from mmdx.store.sessions import utc_now

log = logging.getLogger(__name__)


@dataclass
class ReviewSession:
    """A signed-in user of the dashboard and the idle clock of their session."""

    principal: Principal
    clock: SessionClock
    signed_in_at: datetime = field(default_factory=utc_now)

    @property
    def name(self) -> str:
        return self.principal.name


def sign_in(
    store: ReviewStore,
    name: str,
    password: str,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    client: str | None = None,
) -> ReviewSession | None:
    """Check the password (the store records ``sign_in`` or ``sign_in_failed``); a session or ``None``.

    The caller must not say why a sign-in failed: "unknown user" would tell a stranger which names exist.
    ``client`` is the address the attempt came from; it is throttled with the account and raises
    :class:`~mmdx.store.SignInLocked` while locked (the caller says to wait, which tells nothing about names).
    """
    if not name or not password:
        return None
    principal = store.authenticate(name, password, client=client)
    if principal is None:
        return None
    return ReviewSession(principal, SessionClock(timeout_s=idle_timeout_s))


def _record(store: ReviewStore, session: ReviewSession, action: AuditAction, detail: dict) -> None:
    try:
        store.record_event(session.principal, action, detail=detail)
    except MmdxError as exc:  # the session ends whatever the store says; the failure is logged
        log.warning("could not record %s for %s: %s", action, session.name, exc)


def expire_if_idle(store: ReviewStore, session: ReviewSession, now: datetime | None = None) -> bool:
    """True (and ``session_timeout`` recorded) when the session has been idle past its timeout; the caller
    then forgets the session. False leaves the session untouched (it is not a sign of activity)."""
    if not session.clock.expired(now):
        return False
    _record(
        store,
        session,
        AuditAction.SESSION_TIMEOUT,
        {"idle_timeout_s": session.clock.timeout_s, "last_activity": session.clock.last_activity.isoformat()},
    )
    return True


def sign_out(store: ReviewStore, session: ReviewSession) -> None:
    """Record ``sign_out``; the caller forgets the session."""
    _record(store, session, AuditAction.SIGN_OUT, {})
