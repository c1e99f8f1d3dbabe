"""Case review page: prediction, modality contributions, image, values, notes, verdict form and history.

The case view is built (and ``open_case`` recorded) when the page is opened or another case is chosen;
moving a slider only redraws from the view kept in this user's session state.
"""

from __future__ import annotations

import streamlit as st

from clinical_ui import components, viewer
from clinical_ui.state import (
    CASE_ID,
    CASE_ORDER,
    CASE_VIEW,
    COHORT,
    WORKLIST_PAGE,
    page_freshly_opened,
    require_session,
    review_context,
    shown_errors,
)
from mmdx.review import (
    CaseView,
    VerdictEntry,
    build_case_view,
    greyed,
    helpful_options,
    may,
    open_cohort,
    overlay_decision_for,
    submit_case_verdict,
    verdict_history,
)
from mmdx.review.formatting import plain
from mmdx.review.verdicts import CONFIDENCE_LABELS, EXPLANATION_LABELS, VERDICT_LABELS
from mmdx.store import Permission, Verdict

session = require_session()
context = review_context()

case_id = st.session_state.get(CASE_ID)
if not case_id:
    st.title("Case review")
    st.info("Choose a case on the worklist first.")
    st.page_link(WORKLIST_PAGE, label="Go to the worklist", icon=":material/list:")
    st.stop()

order = st.session_state.get(CASE_ORDER) or [case_id]
if case_id not in order:
    order = [case_id, *order]
if page_freshly_opened() or st.session_state.get("case_picker") not in order:
    st.session_state["case_picker"] = case_id  # the case chosen on the worklist, not the one picked last time
chosen = st.selectbox("Case", order, key="case_picker")
if chosen != case_id:
    st.session_state[CASE_ID] = case_id = chosen

view = st.session_state.get(CASE_VIEW)
if page_freshly_opened() or not isinstance(view, CaseView) or view.case_id != case_id:
    with shown_errors(), st.spinner("Opening the case…"):
        if COHORT not in st.session_state:
            # read once per session; it stays with this user's session and goes at sign-out
            st.session_state[COHORT] = open_cohort(context, session.principal)
        view = build_case_view(context, session.principal, case_id, cohort=st.session_state[COHORT])
    st.session_state[CASE_VIEW] = view

st.title(f"Case {plain(view.case_id)}")
components.prediction(view)
components.explanation_notice(view)
viewer.explanation_offer_section(context, session, view)
components.contributions(view)
overlay = overlay_decision_for(view)
viewer.image_section(context, greyed(view, overlay))
if view.explained and overlay.method_note:
    st.caption(overlay.method_note)
components.tabular(view)
components.notes(view)

st.divider()
st.subheader("Your verdict")
if may(session.principal, Permission.SUBMIT_VERDICT):
    offered = helpful_options(view)
    with st.form(f"verdict_{view.case_id}"):
        verdict = st.radio(
            "Do you agree with the model's prediction?",
            list(Verdict),
            index=None,
            format_func=lambda v: VERDICT_LABELS[Verdict(v)],
            horizontal=True,
        )
        diagnosis = st.text_input("Your own diagnosis (optional)", max_chars=500)
        confidence = st.select_slider(
            "Your confidence", options=list(CONFIDENCE_LABELS), value=3, format_func=CONFIDENCE_LABELS.get
        )
        helpful = st.multiselect(
            "Which explanations helped?",
            offered,
            format_func=lambda k: EXPLANATION_LABELS[k],
            disabled=not offered,
            placeholder="none" if offered else "no explanation was shown for this case",
        )
        comment = st.text_area("Comment (optional)", max_chars=5000)
        submitted = st.form_submit_button("Submit verdict", type="primary")
    if submitted:
        if verdict is None:
            st.error("Choose agree, disagree or unsure before submitting.")
        else:
            entry = VerdictEntry(Verdict(verdict), int(confidence), diagnosis, comment, tuple(helpful))
            with shown_errors():
                record = submit_case_verdict(context, session.principal, view, entry)
            replaced = f" It supersedes your verdict #{record.supersedes}." if record.supersedes else ""
            st.success(f"Verdict #{record.id} saved ({record.verdict.value}).{replaced}")
else:
    st.info(f"Your role ({session.principal.role.value}) reads verdicts but does not submit them.")

with st.expander("Verdict history of this case (all reviewers, superseded verdicts included)", expanded=True):
    with shown_errors():
        history = verdict_history(context, session.principal, view.case_id)
    if history.empty:
        st.write("No verdict yet.")
    else:
        st.dataframe(history, hide_index=True, width="stretch")
