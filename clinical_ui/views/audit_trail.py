"""Audit trail page (auditors and admins): who opened, reviewed or exported which case, when; CSV export.

The store refuses other roles, whatever page they reach. Reading the trail records ``view_audit``, so the
events are read again only when the filters change or on "Refresh"; preparing the CSV records ``export``.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

import streamlit as st

from clinical_ui.state import require_session, review_context, shown_errors
from mmdx.review import AuditQuery, audit_csv, audit_trail
from mmdx.review.formatting import plain
from mmdx.store import AuditAction

EVENTS = "mmdx_audit_events"
EXPORT = "mmdx_audit_export"
LIMIT = 1000

session = require_session()
context = review_context()

st.title("Audit trail")
with st.form("audit_filters"):
    first, second, third = st.columns(3)
    user = first.text_input("User")
    case_id = second.text_input("Case id")
    action = third.selectbox("Action", [None, *AuditAction], format_func=lambda a: "any" if a is None else a)
    first, second = st.columns(2)
    since = first.date_input("Since (UTC)", value=None)
    this_run = second.checkbox(f"Only run {plain(context.run_id)}", value=False)
    applied = st.form_submit_button("Apply")
refresh = st.button("Refresh", icon=":material/refresh:")

query = AuditQuery(
    since=datetime.combine(since, time.min, tzinfo=UTC) if since else None,
    user=user.strip() or None,
    case_id=case_id.strip() or None,
    action=AuditAction(action) if action else None,
    this_run_only=this_run,
)
cached = st.session_state.get(EVENTS)
if applied or refresh or cached is None or cached[0] != query:
    with shown_errors():
        st.session_state[EVENTS] = cached = (query, audit_trail(context, session.principal, query, LIMIT))
events = cached[1]

st.write(f"{len(events)} event(s), newest first" + (f" (the newest {LIMIT})" if len(events) == LIMIT else ""))
st.dataframe(events, hide_index=True, width="stretch")

st.subheader("Export")
st.caption("Exports every event matching the filters, oldest first. Preparing the export records it.")
if st.button("Prepare CSV export", key="prepare_audit"):
    with shown_errors():
        st.session_state[EXPORT] = audit_csv(context, session.principal, query)
prepared = st.session_state.get(EXPORT)
if prepared is not None:
    data, count = prepared
    st.download_button(
        f"Download {count} events (CSV)",
        data,
        file_name=f"audit-trail-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.csv",
        mime="text/csv",
        on_click="ignore",
    )
