"""The audit trail as the governance pages show and export it (auditors and admins; the store checks).

Reading the trail records a ``view_audit`` event and exporting it an ``export`` event, both written by the
store itself, so the trail shows who looked at it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from mmdx.review.context import ReviewContext
from mmdx.store import AuditAction, AuditEvent, Principal

AUDIT_COLUMNS = ("time (UTC)", "user", "action", "run", "case", "detail")


@dataclass(frozen=True)
class AuditQuery:
    """Filters of the audit page; ``None`` means "any". ``this_run_only`` restricts to the served run."""

    since: datetime | None = None
    user: str | None = None
    case_id: str | None = None
    action: AuditAction | None = None
    this_run_only: bool = False

    def arguments(self, context: ReviewContext) -> dict:
        return {
            "since": self.since,
            "user": self.user or None,
            "case_id": self.case_id or None,
            "run_id": context.run_id if self.this_run_only else None,
            "action": self.action,
        }


def _frame(events: list[AuditEvent]) -> pd.DataFrame:
    rows = [
        {
            "time (UTC)": e.time.strftime("%Y-%m-%d %H:%M:%S"),
            "user": e.user,
            "action": e.action.value,
            "run": e.run_id or "",
            "case": e.case_id or "",
            "detail": json.dumps(dict(e.detail), sort_keys=True) if e.detail else "",
        }
        for e in events
    ]
    return pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))


def audit_trail(
    context: ReviewContext, principal: Principal, query: AuditQuery, limit: int = 1000
) -> pd.DataFrame:
    """The newest ``limit`` events matching ``query``, newest first (records ``view_audit``)."""
    events = context.store.audit_events(principal, limit=limit, **query.arguments(context))
    return _frame(events)


def audit_csv(context: ReviewContext, principal: Principal, query: AuditQuery) -> tuple[bytes, int]:
    """Every event matching ``query`` as CSV, oldest first (records ``export``); returns the bytes and the
    number of events."""
    buffer = io.StringIO()
    count = context.store.export_audit_csv(principal, buffer, **query.arguments(context))
    return buffer.getvalue().encode("utf-8"), count
