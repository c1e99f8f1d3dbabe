"""The review dashboard's entry script: checks the session, then offers the pages the user's role allows.

Signed out, the only page is the sign-in page. Signed in, a session idle for longer than the timeout is
ended (``session_timeout`` recorded) before anything is shown; every other run of this script is user
activity and restarts the idle clock. A fragment in the sidebar checks the clock every 30 seconds (more
often for short timeouts), so an abandoned screen is cleared without anyone touching it.
"""

from __future__ import annotations

import base64

import streamlit as st

from clinical_ui.state import (
    CASE_PAGE,
    CASE_PAGE_URL,
    PAGE,
    PREVIOUS_PAGE,
    WORKLIST_PAGE,
    current_session,
    end_session,
    review_context,
    shown_errors,
)
from mmdx.review import expire_if_idle, may, sign_out
from mmdx.review.formatting import plain
from mmdx.store import Permission

IDLE_CHECK_MAX_S = 30.0

#: The tab icon, inline: a Material icon name would make every browser fetch it from a font server outside
#: the hospital (and the proxy's Content Security Policy refuses that).
_ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" '
    'fill="#1f6f8b"/><path d="M13 6h6v7h7v6h-7v7h-6v-7H6v-6h7z" fill="#fff"/></svg>'
)
PAGE_ICON = "data:image/svg+xml;base64," + base64.b64encode(_ICON_SVG.encode()).decode("ascii")

st.set_page_config(page_title="mmdx review", page_icon=PAGE_ICON, layout="wide")

with shown_errors():
    context = review_context()

session = current_session()
if session is not None:
    if expire_if_idle(context.store, session):
        minutes = context.idle_timeout_s / 60
        end_session(f"You were signed out after {minutes:g} minutes without activity.")
        session = None
    else:
        session.clock.touch()

if session is None:
    pages = [st.Page("views/sign_in.py", title="Sign in", icon=":material/login:", default=True)]
    navigation = st.navigation(pages, position="hidden")
else:
    review = [
        st.Page(WORKLIST_PAGE, title="Worklist", icon=":material/list:", default=True),
        st.Page(CASE_PAGE, title="Case review", icon=":material/radiology:", url_path=CASE_PAGE_URL),
        st.Page("views/reviews.py", title="Reviews", icon=":material/history:"),
        st.Page("views/evaluation.py", title="Evaluation", icon=":material/monitoring:"),
    ]
    sections = {"Review": review}
    governance = []
    if may(session.principal, Permission.READ_AUDIT):
        governance.append(st.Page("views/audit_trail.py", title="Audit trail", icon=":material/policy:"))
    if may(session.principal, Permission.MANAGE_USERS):
        governance.append(st.Page("views/users.py", title="Users", icon=":material/group:"))
    if governance:
        sections["Governance"] = governance
    navigation = st.navigation(sections)

    @st.fragment(run_every=max(1.0, min(IDLE_CHECK_MAX_S, context.idle_timeout_s / 4)))
    def _idle_watch() -> None:
        active = current_session()
        if active is not None and active.clock.expired():
            st.rerun(scope="app")  # the full run above signs the session out

    with st.sidebar:
        st.caption(f"Signed in as **{plain(session.name)}** ({session.principal.role.value})")
        st.caption(f"Run **{plain(context.run_id)}** · model {plain(context.model_version)}")
        if st.button("Sign out", icon=":material/logout:", key="sign_out"):
            sign_out(context.store, session)
            end_session("You are signed out.")
            st.rerun()
        _idle_watch()

st.session_state[PREVIOUS_PAGE] = st.session_state.get(PAGE)
st.session_state[PAGE] = navigation.url_path
navigation.run()
