"""Worklist page: the run's cases with risk, uncertainty, modalities and review status; filter, sort, open."""

from __future__ import annotations

import streamlit as st

from clinical_ui.state import CASE_ID, CASE_ORDER, CASE_PAGE, require_session, review_context, shown_errors
from mmdx.keys import MODALITIES
from mmdx.review import (
    REVIEW_GROUPS,
    SORT_LABELS,
    UNCERTAINTY_DEFINITION,
    SortOrder,
    WorklistFilter,
    build_worklist,
    default_filter,
    filter_worklist,
    sort_worklist,
)
from mmdx.review.formatting import MODALITY_LABELS, STATUS_LABELS, plain
from mmdx.review.worklist import GROUPS

GROUP_LABELS = {
    "test": "test split (held out)",
    "unlabelled": "unlabelled (new cases)",
    "val": "validation split",
    "train": "training split",
    "other": "no split",
}

session = require_session()
context = review_context()

st.title("Worklist")
st.caption(
    f"Run **{plain(context.run_id)}**: calibrated probability of *{plain(context.positive_meaning)}*; "
    "operating threshold "
    f"{context.threshold:.3f}. Ground-truth labels are not shown."
)

with shown_errors():
    worklist = build_worklist(context, session.principal)

with st.expander("Filter and sort", expanded=True):
    left, middle, right = st.columns(3)
    order = left.selectbox(
        "Order", list(SortOrder), format_func=lambda o: SORT_LABELS[SortOrder(o)], key="worklist_order"
    )
    statuses = middle.multiselect(
        "Review status", list(STATUS_LABELS), format_func=STATUS_LABELS.get, key="worklist_status"
    )
    needs = right.multiselect(
        "Must have",
        [m.value for m in MODALITIES],
        format_func=lambda m: MODALITY_LABELS[m],
        key="worklist_modalities",
    )
    left, middle, right = st.columns(3)
    predicted = left.multiselect("Prediction", ["positive", "negative"], key="worklist_predicted")
    present = [g for g in GROUPS if g in set(worklist["group"])]
    if "worklist_groups" not in st.session_state:
        st.session_state["worklist_groups"] = [g for g in default_filter().groups if g in present] or present
    groups = middle.multiselect(
        "Cases",
        present,
        format_func=GROUP_LABELS.get,
        key="worklist_groups",
        help=f"By default the cases a reviewer judges: {' and '.join(GROUP_LABELS[g] for g in REVIEW_GROUPS)}. "
        "Training and validation cases shaped the model.",
    )
    search = right.text_input("Case id contains", key="worklist_search")
    left, right = st.columns(2)
    near_only = left.checkbox("Only cases near the threshold", key="worklist_near")
    explained_first = right.checkbox("Explained cases first", value=True, key="worklist_explained_first")

selection = WorklistFilter(
    statuses=statuses,
    require_modalities=needs,
    predicted=predicted,
    groups=groups,
    near_threshold_only=near_only,
    case_id_contains=search,
)
shown = sort_worklist(filter_worklist(worklist, selection), order, context.threshold, explained_first)
st.session_state[CASE_ORDER] = shown["case_id"].tolist()

st.write(f"{len(shown)} of {len(worklist)} cases")
if shown.empty:
    st.info("No case matches these filters.")
    st.stop()

table = shown.assign(status=shown["status"].map(STATUS_LABELS))[
    [
        "case_id",
        "probability",
        "predicted",
        "uncertainty",
        "near_threshold",
        "modalities",
        "explained",
        "status",
        "group",
    ]
]
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={
        "case_id": st.column_config.TextColumn("Case"),
        "probability": st.column_config.ProgressColumn(
            "Calibrated probability", min_value=0.0, max_value=1.0, format="percent"
        ),
        "predicted": st.column_config.TextColumn("Prediction at threshold"),
        "uncertainty": st.column_config.NumberColumn(
            "Uncertainty (bits)", format="%.2f", help=UNCERTAINTY_DEFINITION
        ),
        "near_threshold": st.column_config.CheckboxColumn("Near threshold"),
        "modalities": st.column_config.TextColumn("Modalities present"),
        "explained": st.column_config.CheckboxColumn("Explained"),
        "status": st.column_config.TextColumn("Review status"),
        "group": st.column_config.TextColumn("Cases"),
    },
)

with st.form("open_case"):
    case_id = st.selectbox("Case to open", shown["case_id"].tolist(), index=0, key="worklist_case")
    if st.form_submit_button("Open case", type="primary"):
        st.session_state[CASE_ID] = case_id
        st.switch_page(CASE_PAGE)
