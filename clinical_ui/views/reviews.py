"""Reviews page: a clinician's own current verdicts; for auditors and admins every reviewer's, with the
full history of any case and an audited CSV export."""

from __future__ import annotations

import streamlit as st

from clinical_ui.state import CASE_ID, CASE_PAGE, require_session, review_context, shown_errors
from mmdx.review import current_verdicts, may, verdict_history, verdicts_csv
from mmdx.store import Permission, Role

EXPORT = "mmdx_verdicts_export"

session = require_session()
context = review_context()
everyone = session.principal.role in (Role.AUDITOR, Role.ADMIN)

st.title("All reviews" if everyone else "My reviews")
st.caption(
    "Current verdict of each reviewer per case (a later verdict by the same reviewer supersedes the earlier "
    "one; nothing is overwritten, the history of a case lists both)."
)
with shown_errors():
    current = current_verdicts(context, session.principal, None if everyone else session.name)

if current.empty:
    st.info("No verdict yet." if everyone else "You have not reviewed any case of this run yet.")
else:
    if everyone:
        reviewers = st.multiselect("Reviewers", sorted(current["user"].unique()), key="reviews_users")
        if reviewers:
            current = current[current["user"].isin(reviewers)]
    st.dataframe(current.drop(columns=["state"]), hide_index=True, width="stretch")

    cases = sorted(current["case"].unique())
    case_id = st.selectbox("History of case", cases, key="reviews_case")
    with shown_errors():
        st.dataframe(verdict_history(context, session.principal, case_id), hide_index=True, width="stretch")
    if st.button("Open this case", key="reviews_open"):
        st.session_state[CASE_ID] = case_id
        st.switch_page(CASE_PAGE)

if may(session.principal, Permission.EXPORT):
    st.divider()
    st.subheader("Export")
    st.caption("Preparing the export records it in the audit trail.")
    if st.button("Prepare the verdicts of this run as CSV", key="prepare_verdicts"):
        with shown_errors():
            st.session_state[EXPORT] = verdicts_csv(context, session.principal)
    prepared = st.session_state.get(EXPORT)
    if prepared is not None:
        data, count = prepared
        st.download_button(
            f"Download {count} verdict rows (CSV)",
            data,
            file_name=f"verdicts-{context.run_id}.csv",
            mime="text/csv",
            on_click="ignore",
        )
