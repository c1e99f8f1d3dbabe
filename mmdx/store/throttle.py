"""Sign-in throttling: exponential backoff and a temporary lock, per account and per client.

Failed sign-ins are counted from the audit trail itself (``sign_in_failed`` events), so the count survives
restarts, holds across every process sharing the store, and every lock is on the record. After
``free_failures`` failures of one account (``client_free_failures`` of one client, across accounts) each
further failure locks sign-in for ``base_delay_s * 2 ** (failures - free)`` seconds, at most
``max_delay_s``. While locked, an attempt is refused without checking the password (no bcrypt cost) and
recorded as ``sign_in_failed`` with reason ``locked``. Failures older than ``window_s`` are forgotten.

No lock is permanent, for an admin either: every lock ends after at most ``max_delay_s``. A successful
sign-in, a password change or :meth:`~mmdx.store.ReviewStore.clear_sign_in_lock` (``mmdx users unlock``)
starts an account's count afresh; a client's count only ages out, so that signing in to one's own account
does not reset the count of guesses at others'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class LockScope(StrEnum):
    ACCOUNT = "account"
    CLIENT = "client"


#: Reasons of ``sign_in_failed`` events that count as a failure (a refusal while locked does not, so a lock
#: cannot be prolonged by knocking on it).
COUNTED_REASONS = frozenset({"wrong_password", "unknown_user", "account_deactivated"})
LOCKED_REASON = "locked"


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures are free and how long the locks after them last (seconds)."""

    free_failures: int = 5
    client_free_failures: int = 20
    base_delay_s: float = 2.0
    max_delay_s: float = 900.0
    window_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.free_failures < 1 or self.client_free_failures < 1:
            raise ValueError("at least one failed sign-in must be free")
        if not 0 < self.base_delay_s <= self.max_delay_s <= self.window_s:
            raise ValueError("need 0 < base_delay_s <= max_delay_s <= window_s")

    def delay_s(self, failures: int, free: int) -> float:
        """The lock after the ``failures``-th failure when ``free`` are free: 0, then doubling, capped."""
        if failures < free:
            return 0.0
        exponent = min(failures - free, 60)  # 2**60 s is past any cap; keeps the float finite
        return min(self.max_delay_s, self.base_delay_s * 2.0**exponent)

    def locked_until(self, failures: list[datetime], free: int) -> datetime | None:
        """The end of the lock after these failure times (oldest first, already windowed), or None."""
        if not failures:
            return None
        delay = self.delay_s(len(failures), free)
        return failures[-1] + timedelta(seconds=delay) if delay > 0 else None


@dataclass(frozen=True)
class SignInLock:
    """A lock in force: on an account (``subject`` = user name) or a client (``subject`` = its address)."""

    scope: LockScope
    subject: str
    until: datetime
    failures: int
    retry_after_s: float
