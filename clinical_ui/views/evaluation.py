"""Evaluation page: the run's own evaluation or an external one (``RUN/external/SITE/``), as aggregates."""

from __future__ import annotations

import streamlit as st

from clinical_ui.state import require_session, review_context, shown_errors
from mmdx.review.evaluations import OWN_EVALUATION, evaluation_choices, evaluation_summary
from mmdx.review.formatting import plain

EVALUATION = "mmdx_evaluation"  # the evaluation chosen on this page (kept while other pages are shown)

session = require_session()
context = review_context()

st.title("Evaluation")
choices = evaluation_choices(context)
keys = list(choices)
chosen = st.session_state.get(EVALUATION)
key = st.selectbox(
    "Evaluation",
    keys,
    index=keys.index(chosen) if chosen in choices else keys.index(OWN_EVALUATION),
    format_func=choices.get,
    help="External evaluations are written by 'mmdx evaluate RUN --cohort DIR --name SITE'.",
)
st.session_state[EVALUATION] = key
with shown_errors():
    summary = evaluation_summary(context, session.principal, key)

st.caption(
    f"{plain(summary.title)}: {summary.n_cases} scored cases, {summary.n_positive} positive · files in "
    f"{plain(str(summary.folder))}"
)
if summary.bayes_auroc is not None:
    st.caption(f"AUROC of the exact Bayes posterior on the same cases: {summary.bayes_auroc:.3f}")
st.subheader("Metrics")
st.dataframe(
    summary.metrics,
    hide_index=True,
    column_config={
        "metric": st.column_config.TextColumn("Metric"),
        "estimate": st.column_config.NumberColumn("Estimate", format="%.3f"),
        "low": st.column_config.NumberColumn("95% interval, low", format="%.3f"),
        "high": st.column_config.NumberColumn("95% interval, high", format="%.3f"),
    },
)
st.subheader("Predictions")
st.dataframe(summary.cases, hide_index=True)
if summary.drift_flags:
    st.subheader("Drift against the training cohort")
    for flag in summary.drift_flags:
        st.markdown(f"- {plain(flag)}")
if summary.recalibration is not None and not summary.recalibration.empty:
    st.subheader("Local recalibration")
    st.dataframe(summary.recalibration, hide_index=True)
    if summary.selected:
        st.caption(
            f"The closed testing procedure (recommended: {plain(summary.recommended or '—')}) chose "
            f"{plain(summary.selected)}."
        )
for note in summary.notes:
    st.caption(plain(note))
