"""Users page (admins): list accounts, add one, deactivate or re-activate one, see the sign-in locks in
force and end an account's lock. The store refuses other roles, whatever page they reach."""

from __future__ import annotations

import streamlit as st

from clinical_ui.state import require_session, review_context, shown_errors
from mmdx.review import sign_in_locks_frame, users_frame
from mmdx.review.formatting import plain
from mmdx.store import MIN_PASSWORD_LENGTH, Role

FLASH = "mmdx_users_flash"

session = require_session()
context = review_context()

st.title("Users")
flash = st.session_state.pop(FLASH, None)
if flash:
    st.success(flash)
with shown_errors():
    users = users_frame(context.store, session.principal)
st.dataframe(users, hide_index=True, width="stretch")

st.subheader("Add an account")
with st.form("add_user", clear_on_submit=True):
    name = st.text_input("User name", help="a-z, 0-9 and . _ @ -; stored in lower case")
    role = st.selectbox("Role", list(Role), format_func=str)
    password = st.text_input(
        "Initial password", type="password", help=f"at least {MIN_PASSWORD_LENGTH} characters"
    )
    if st.form_submit_button("Add account"):
        with shown_errors():
            info = context.store.add_user(name, role, password, actor=session.principal)
        st.session_state[FLASH] = f"Added {info.role.value} account '{plain(info.name)}'."
        st.rerun()

st.subheader("Deactivate or re-activate")
if not users.empty:
    left, right = st.columns(2)
    target = left.selectbox("Account", users["name"].tolist(), key="users_target")
    active = bool(users.loc[users["name"] == target, "active"].iloc[0])
    label = "Deactivate" if active else "Activate"
    if right.button(f"{label} '{plain(target)}'", key="users_toggle"):
        with shown_errors():
            if active:
                context.store.deactivate(target, actor=session.principal)
            else:
                context.store.activate(target, actor=session.principal)
        st.session_state[FLASH] = f"Account '{plain(target)}' {'deactivated' if active else 'activated'}."
        st.rerun()

st.subheader("Sign-in locks")
with shown_errors():
    locks = sign_in_locks_frame(context.store, session.principal)
if locks.empty:
    st.caption("No sign-in lock in force.")
else:
    st.caption(
        "Repeated failed sign-ins lock an account or a client for a while (at most 15 minutes); every lock "
        "and every refused attempt is in the audit trail."
    )
    st.dataframe(locks, hide_index=True, width="stretch")
    accounts = locks.loc[locks["scope"] == "account", "account or client"].tolist()
    if accounts:
        left, right = st.columns(2)
        locked = left.selectbox("Locked account", accounts, key="users_locked")
        if right.button(f"End the lock of '{plain(locked)}'", key="users_unlock"):
            with shown_errors():
                context.store.clear_sign_in_lock(locked, actor=session.principal)
            st.session_state[FLASH] = f"Sign-in lock of '{plain(locked)}' ended."
            st.rerun()
