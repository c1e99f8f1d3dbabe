"""The sections of the case review page. Layout only: the numbers, images and HTML come from mmdx.review."""

from __future__ import annotations

import streamlit as st

from mmdx.keys import Modality
from mmdx.review import (
    ATTRIBUTION_MEANING,
    GATE_MEANING,
    SHAPLEY_MEANING,
    SHAPLEY_VS_ATTRIBUTION,
    SHAPLEY_VS_ATTRIBUTION_HELP,
    UNCERTAINTY_DEFINITION,
    CaseView,
    ExplanationStatus,
    ReviewContext,
    encode_png,
    png_data_url,
    window_presets,
)
from mmdx.review.formatting import (
    MODALITY_LABELS,
    contributions_frame,
    format_probability,
    format_signed,
    plain,
    tabular_table_html,
)
from mmdx.review.highlight import highlight_note, plain_note
from mmdx.review.rendering import OVERLAY_COLORMAP


def prediction(view: CaseView) -> None:
    decision = "positive" if view.predicted_positive else "negative"
    first, second, third, fourth = st.columns(4)
    first.metric("Calibrated probability", format_probability(view.probability))
    second.metric("Operating threshold", format_probability(view.threshold))
    third.metric("Prediction at threshold", decision)
    fourth.metric("Uncertainty (entropy)", f"{view.uncertainty:.2f} bits", help=UNCERTAINTY_DEFINITION)
    st.caption(
        f"Probability that this case is *{plain(view.positive_meaning)}*, calibrated on the "
        f"validation split. Raw logit {view.logit:+.3f}. Model version {plain(view.model_version)}; explanation "
        f"version {plain(view.explanation_version)}."
    )
    if view.near_threshold:
        st.warning("Near the threshold: a small change in the inputs could flip this prediction.")
    badges = st.container(horizontal=True)
    for modality in view.missing_modalities:
        with badges:
            st.badge(f"No {MODALITY_LABELS[modality].lower()}", icon=":material/block:", color="gray")


def explanation_notice(view: CaseView) -> None:
    if view.explanation.status is not ExplanationStatus.AVAILABLE:
        st.info(plain(view.explanation.message))
    for problem in view.problems:
        st.warning(plain(problem))


def contributions(view: CaseView) -> None:
    st.subheader("Contribution of each modality")
    frame = contributions_frame(view)
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={
            "Shapley value (logit, vs. no information)": st.column_config.NumberColumn(
                format="%+.3g", help=SHAPLEY_MEANING
            ),
            "Gate (fusion weight, 0-1)": st.column_config.NumberColumn(format="%.3f", help=GATE_MEANING),
            "Summed attribution (logit, vs. baseline)": st.column_config.NumberColumn(
                format="%+.3g", help=ATTRIBUTION_MEANING
            ),
        },
    )
    gates_shown = "Gate (fusion weight, 0-1)" in frame.columns
    st.caption(f"{SHAPLEY_MEANING} {GATE_MEANING if gates_shown else ''}")
    why, more = st.columns([5, 1], vertical_alignment="center")
    why.caption(SHAPLEY_VS_ATTRIBUTION)
    with more.popover("Why they differ", icon=":material/help:"):
        st.markdown(SHAPLEY_VS_ATTRIBUTION_HELP)
    for note in view.gate_notes.values():
        st.caption(plain(note[0].upper() + note[1:] + "."))
    if view.shapley_base is not None and view.shapley_full is not None:
        st.caption(
            f"f(none) = {format_signed(view.shapley_base)}, f(all present) = {format_signed(view.shapley_full)} "
            "(calibrated logit)."
        )


def image(context: ReviewContext, view: CaseView, heading: bool = True) -> None:
    """The image on the model's grid (the model-input view)."""
    if heading:
        st.subheader("Image")
    if not view.presence[Modality.IMAGE]:
        st.info("This case has no image.")
        return
    case_image = view.image
    if case_image is None:
        st.info("The image is not available (see the messages above).")
        return
    presets = window_presets(context.image_config)
    controls, picture = st.columns([1, 2])
    with controls:
        preset = st.radio(
            "Window / level",
            list(presets),
            format_func=lambda key: presets[key].label,
            key=f"window_{view.case_id}",
        )
        index = 0
        if case_image.is_3d:
            index = st.slider(
                "Slice (axial, inferior to superior)",
                min_value=0,
                max_value=case_image.n_slices - 1,
                value=case_image.default_slice(),
                key=f"slice_{view.case_id}",
            )
        has_map = case_image.overlay_scale() is not None
        show_overlay = st.checkbox(
            "Attribution overlay", value=has_map, disabled=not has_map, key=f"overlay_{view.case_id}"
        )
        opacity = st.slider(
            "Overlay opacity",
            min_value=0.0,
            max_value=1.0,
            value=0.5,
            step=0.05,
            disabled=not (has_map and show_overlay),
            key=f"opacity_{view.case_id}",
        )
        has_mask = case_image.mask is not None
        show_contour = has_mask and st.checkbox(  # only where the ground truth has a lesion to draw
            "Lesion contour (ground truth)", value=True, key=f"contour_{view.case_id}"
        )
    notes = ["Radiological convention: patient's right on the left, anterior at the top."]
    if has_map:
        notes.append(
            f"Overlay ({OVERLAY_COLORMAP} colours): positive attribution, i.e. evidence for the positive class, "
            "scaled to the case's 99th percentile."
        )
    elif case_image.withheld:
        notes.append(f"Attribution overlay greyed out. {case_image.withheld}")
    elif view.explained:
        notes.append("No positive image attribution in this case.")
    if has_mask:
        notes.append("Cyan contour: ground-truth lesion of the synthetic cohort.")
    elif case_image.lesion_in_truth is False:
        notes.append("Ground truth: no lesion in this case.")
    if case_image.is_3d:
        notes.append(f"Slice {index + 1} of {case_image.n_slices}.")
    rgb = case_image.render(
        index, presets[preset], opacity, show_overlay and has_map, show_contour and has_mask
    )
    with picture:
        st.image(png_data_url(encode_png(rgb)), caption=" ".join(notes))  # inline: no /media/ URL


def tabular(view: CaseView) -> None:
    st.subheader("Vital signs and labs")
    if not view.presence[Modality.TABULAR]:
        st.info("This case has no vital signs or lab values.")
        return
    if not view.tabular:
        st.info("The values are not available (see the messages above).")
        return
    st.html(tabular_table_html(view.tabular))
    if any(row.attribution is not None for row in view.tabular):
        st.caption(
            f"{ATTRIBUTION_MEANING} Method: {plain(view.explanation.method or 'unknown')}. Bars: red to the "
            "right pushes towards the positive class, blue to the left towards the negative class, relative "
            "to the largest in this table. Values in canonical units."
        )
    else:
        st.caption("No attributions for this case. Values in canonical units, latest measurement.")


def notes(view: CaseView) -> None:
    st.subheader("Clinical notes")
    if not view.presence[Modality.TEXT]:
        st.info("This case has no clinical notes.")
        return
    if view.note_text is None:
        st.info("The notes are not available (see the messages above).")
        return
    if view.note_spans:
        highlighted = highlight_note(view.note_text, view.note_spans)
        st.html(highlighted.html)
        st.caption(
            "Words shaded red pushed the prediction towards the positive class, blue towards the negative "
            "class; the stronger the shade, the larger the attribution (hover for the value)."
            + (f" {highlighted.skipped} span(s) could not be placed." if highlighted.skipped else "")
        )
    else:
        st.html(plain_note(view.note_text))
