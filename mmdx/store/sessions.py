"""Idle timeout of a signed-in dashboard session.

The dashboard keeps a :class:`SessionClock` per browser session, calls :meth:`SessionClock.touch` on each
interaction and :meth:`SessionClock.expired` before showing anything; when it has expired it records a
``session_timeout`` event (``store.record_event(principal, AuditAction.SESSION_TIMEOUT)``) and forgets the
principal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from mmdx.errors import MmdxError

DEFAULT_IDLE_TIMEOUT_S = 15 * 60.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def _require_aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise MmdxError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise MmdxError(
            f"{what} must be timezone-aware, got the naive datetime {value.isoformat()}; "
            "use datetime.now(UTC) or attach a tzinfo"
        )
    return value


def _check_timeout(timeout_s: float) -> float:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not timeout_s > 0:
        raise MmdxError(f"idle timeout must be a positive number of seconds, got {timeout_s!r}")
    return float(timeout_s)


def is_session_expired(
    last_activity: datetime, now: datetime | None = None, timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
) -> bool:
    """True when more than ``timeout_s`` seconds passed between ``last_activity`` and ``now`` (default: the
    current time). Both must be timezone-aware. A ``last_activity`` in the future (clock skew) does not
    expire the session."""
    last_activity = _require_aware(last_activity, "last_activity")
    now = utc_now() if now is None else _require_aware(now, "now")
    return (now - last_activity).total_seconds() > _check_timeout(timeout_s)


@dataclass
class SessionClock:
    """The last activity time of one dashboard session and its idle timeout in seconds."""

    timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    last_activity: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        self.timeout_s = _check_timeout(self.timeout_s)
        _require_aware(self.last_activity, "last_activity")

    def touch(self, now: datetime | None = None) -> None:
        """Record activity at ``now`` (default: the current time)."""
        self.last_activity = utc_now() if now is None else _require_aware(now, "now")

    def expired(self, now: datetime | None = None) -> bool:
        return is_session_expired(self.last_activity, now, self.timeout_s)

    def remaining_s(self, now: datetime | None = None) -> float:
        """Seconds left before the session expires (0 once it has)."""
        now = utc_now() if now is None else _require_aware(now, "now")
        return max(0.0, self.timeout_s - (now - self.last_activity).total_seconds())
