"""Sign-in page: the only page a signed-out visitor sees. It shows nothing about the run or its patients."""

from __future__ import annotations

import math

import streamlit as st

from clinical_ui.state import NOTICE, SESSION, client_address, review_context, shown_errors
from mmdx.review import sign_in
from mmdx.store import SignInLocked

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
        try:
            session = sign_in(context.store, name, password, context.idle_timeout_s, client_address())
        except SignInLocked as locked:
            # the same words for every name and for a locked client: nothing about which accounts exist
            st.error(f"Too many failed sign-ins. Try again in {math.ceil(locked.retry_after_s)} seconds.")
            st.stop()
    if session is None:
        # one message for every cause, so that the page does not tell which user names exist
        st.error("Sign-in failed: wrong user name or password, or the account is deactivated.")
    else:
        st.session_state[SESSION] = session
        st.rerun()
