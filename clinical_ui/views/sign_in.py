"""Sign-in page: the only page a signed-out visitor sees. It shows nothing about the run or its patients."""

from __future__ import annotations

import streamlit as st

from clinical_ui.state import NOTICE, SESSION, review_context, shown_errors
from mmdx.review import sign_in

st.title("mmdx review")
st.caption("Clinician review of model predictions. Sign in with the account your administrator gave you.")

notice = st.session_state.pop(NOTICE, None)
if notice:
    st.info(notice)

with st.form("sign_in", enter_to_submit=True):
    name = st.text_input("User name", autocomplete="username")
    password = st.text_input("Password", type="password", autocomplete="current-password")
    submitted = st.form_submit_button("Sign in", type="primary")

if submitted:
    with shown_errors():
        context = review_context()
        session = sign_in(context.store, name, password, context.idle_timeout_s)
    if session is None:
        # one message for every cause, so that the page does not tell which user names exist
        st.error("Sign-in failed: wrong user name or password, or the account is deactivated.")
    else:
        st.session_state[SESSION] = session
        st.rerun()
