"""What every page shares: the run opened once per server process, and the signed-in session of each user.

``st.cache_resource`` holds the :class:`~mmdx.review.ReviewContext` (run paths, store engine, model
metadata: nothing about any patient). Everything about the signed-in user (who they are, the case they
opened, what they prepared for download) lives in ``st.session_state``, which is private to one browser
session and cleared at sign-out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from clinical_ui.launch import is_loopback
from clinical_ui.settings import settings_from_environment
from mmdx.errors import MmdxError
from mmdx.review import ReviewContext, ReviewSession, open_review_context
from mmdx.review.formatting import plain
from mmdx.store import PermissionDenied

SESSION = "mmdx_session"  # ReviewSession of the signed-in user
NOTICE = "mmdx_notice"  # a message for the sign-in page (timeout, sign-out)
CASE_ID = "mmdx_case_id"  # the case chosen on the worklist
CASE_VIEW = "mmdx_case_view"  # the CaseView of the open case
COHORT = "mmdx_cohort"  # the cohort read for this user's session (CohortCaseReader or None)
CASE_ORDER = "mmdx_case_order"  # case ids in the worklist's current order
PAGE = "mmdx_page"  # url path of the page of this run
PREVIOUS_PAGE = "mmdx_previous_page"  # url path of the page of the previous run

WORKLIST_PAGE = "views/worklist.py"
CASE_PAGE = "views/case_review.py"
CASE_PAGE_URL = "case"


@st.cache_resource(show_spinner="Opening the run…")
def _open_context(
    run_dir: str, store_url: str, cohort_dir: str | None, idle_timeout_s: float
) -> ReviewContext:
    from mmdx.review.rendering import warm_up

    context = open_review_context(run_dir, store_url, cohort_dir=cohort_dir, idle_timeout_s=idle_timeout_s)
    warm_up()
    return context


def review_context() -> ReviewContext:
    """The run and store this server reviews (opened on first use, then shared by every session)."""
    settings = settings_from_environment()
    return _open_context(settings.run_dir, settings.store_url, settings.cohort_dir, settings.idle_timeout_s)


def current_session() -> ReviewSession | None:
    session = st.session_state.get(SESSION)
    return session if isinstance(session, ReviewSession) else None


def end_session(notice: str | None = None) -> None:
    """Forget everything about the signed-in user (their session state, whatever they opened)."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    if notice:
        st.session_state[NOTICE] = notice


def require_session() -> ReviewSession:
    """The signed-in session; a page reached without one shows nothing and stops."""
    session = current_session()
    if session is None:
        st.warning("Please sign in.")
        st.stop()
    return session


def page_freshly_opened() -> bool:
    """True on the first run of a page after another page (or none) was shown."""
    return st.session_state.get(PREVIOUS_PAGE) != st.session_state.get(PAGE)


def client_address() -> str | None:
    """Where this browser session connects from, for sign-in throttling.

    Behind the reverse proxy of ``deploy/`` every connection comes from this machine, and the proxy passes
    the real address in ``X-Real-IP``; that header is believed only on a connection from this machine (a
    remote client could set it to anything)."""
    try:
        peer = st.context.ip_address
        forwarded = st.context.headers.get("X-Real-IP")
    except Exception:  # no browser session (bare script run)
        return None
    # Streamlit reports a connection from this machine as None
    if forwarded and (peer is None or is_loopback(peer)):
        return forwarded.strip()[:100]
    return peer


@contextmanager
def shown_errors() -> Iterator[None]:
    """Show a refused or invalid operation as an error message and stop the page, instead of a traceback."""
    try:
        yield
    except PermissionDenied as exc:
        st.error(f"Not allowed: {plain(exc)}")
        st.stop()
    except MmdxError as exc:
        st.error(plain(exc))
        st.stop()
