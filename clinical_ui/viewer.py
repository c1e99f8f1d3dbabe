"""The case page's image section: the original image at its native resolution in three planes (or the model's
input), and the offer to compute a missing explanation. Layout only: pictures and numbers come from
mmdx.review (:mod:`mmdx.review.viewer`, :mod:`mmdx.review.rendering`).

Each plane is a Streamlit fragment: moving its slice slider reruns that plane only (one slice redrawn on the
server as one PNG sent inline over the session's WebSocket; no /media/ URL serves it), not the other planes
nor the rest of the case page. Changing the window, the overlay or the opacity redraws the page from the case
view kept in the session.
"""

from __future__ import annotations

import streamlit as st

from clinical_ui import components
from clinical_ui.state import CASE_VIEW, shown_errors
from mmdx.keys import Modality
from mmdx.review import CaseView, ReviewContext, ReviewSession, png_data_url
from mmdx.review.explanations import authorize_explaining, explanation_offer
from mmdx.review.formatting import plain
from mmdx.review.viewer import (
    ATTRIBUTION_UNITS,
    OVERLAY_COLORMAP,
    NativeImage,
    Plane,
    colour_bar_html,
    encode_png,
    viewer_presets,
)

ORIGINAL = "original"
MODEL_INPUT = "model"
VIEW_LABELS = {ORIGINAL: "Original image (native resolution)", MODEL_INPUT: "Model input (the model's grid)"}
ORIENTATION = {
    Plane.AXIAL: "Axial: anterior at the top, the patient's right on the left.",
    Plane.CORONAL: "Coronal: superior at the top, the patient's right on the left.",
    Plane.SAGITTAL: "Sagittal: superior at the top, anterior on the left.",
}


def image_section(context: ReviewContext, view: CaseView) -> None:
    """The image of the case: a choice between the original image and the model's input."""
    st.subheader("Image")
    if not view.presence[Modality.IMAGE]:
        st.info("This case has no image.")
        return
    modes = [m for m, there in ((ORIGINAL, view.native), (MODEL_INPUT, view.image)) if there is not None]
    if not modes:
        st.info("The image is not available (see the messages above).")
        return
    mode = st.radio(
        "Show", modes, format_func=VIEW_LABELS.get, horizontal=True, key=f"image_mode_{view.case_id}"
    )
    if mode == MODEL_INPUT:
        components.image(context, view, heading=False)
    else:
        native_viewer(view)


def native_viewer(view: CaseView) -> None:
    image = view.native
    assert image is not None
    presets = viewer_presets(image.values, image.modality, image.photometric, image.units)
    scale = image.overlay_scale()
    key = view.case_id
    left, middle, right = st.columns([3, 2, 2])
    preset = left.radio(
        f"Window ({plain(image.modality or 'unknown modality')})",
        list(presets),
        format_func=lambda k: presets[k].label,
        horizontal=True,
        key=f"native_window_{key}",
    )
    show_overlay = middle.checkbox(
        "Attribution overlay", value=scale is not None, disabled=scale is None, key=f"native_overlay_{key}"
    )
    opacity = middle.slider(
        "Overlay opacity",
        0.0,
        1.0,
        0.5,
        0.05,
        disabled=not (scale and show_overlay),
        key=f"native_opacity_{key}",
    )
    show_contour = False
    if image.mask is not None:  # only where the ground truth has a lesion to draw
        show_contour = right.checkbox(
            "Lesion contour (ground truth)", value=True, key=f"native_contour_{key}"
        )
    with right:
        if scale is not None and show_overlay:
            st.html(colour_bar_html(scale, ATTRIBUTION_UNITS, opacity))
    _planes(image, presets[preset], opacity, bool(show_overlay and scale), show_contour, key)
    st.caption(" ".join(_notes(view, image, scale)))


def _planes(image: NativeImage, window, opacity: float, overlay: bool, contour: bool, key: str) -> None:
    planes = image.planes()
    columns = st.columns(len(planes)) if len(planes) > 1 else [st.container()]
    for plane, column in zip(planes, columns, strict=True):
        with column:
            _plane(image, plane, window, opacity, overlay, contour, key)


@st.fragment
def _plane(
    image: NativeImage, plane: Plane, window, opacity: float, overlay: bool, contour: bool, key: str
) -> None:
    """One plane with its slice slider: a fragment, so that moving the slider redraws this plane only."""
    index = 0
    if image.n_slices(plane) > 1:
        index = (
            st.slider(
                f"{plane.value.capitalize()} slice ({plane.slice_direction})",
                min_value=1,
                max_value=image.n_slices(plane),
                value=image.default_slice(plane) + 1,
                key=f"native_{plane.value}_{key}",
            )
            - 1
        )
    rgb = image.render(plane, index, window, opacity, overlay, contour)
    caption = f"{ORIENTATION[plane]} Slice {index + 1} of {image.n_slices(plane)}."
    st.image(png_data_url(encode_png(rgb)), caption=caption)


def _notes(view: CaseView, image: NativeImage, scale: float | None) -> list[str]:
    x, y, z = image.spacing
    size = " × ".join(str(s) for s in image.shape if s > 1)
    notes = [
        f"Original image, {size} voxels of {x:.3g} × {y:.3g} × {z:.3g} mm, shown in radiological convention."
    ]
    if scale is not None:
        notes.append(
            f"Overlay ({OVERLAY_COLORMAP} colours): positive attribution on the image's own grid, full colour at "
            f"the case's 99th percentile ({scale:.3g} {ATTRIBUTION_UNITS} per voxel); each plane opens at its "
            "slice with the most attribution."
        )
    elif image.withheld:
        notes.append(f"Attribution overlay greyed out. {image.withheld}")
    elif view.explained:
        notes.append("No attribution map on the original image's grid for this case.")
    if image.mask is not None:
        notes.append("Cyan contour: ground-truth lesion.")
    elif image.lesion_in_truth is False:
        notes.append("Ground truth: no lesion in this case.")
    return notes


def explanation_offer_section(context: ReviewContext, session: ReviewSession, view: CaseView) -> None:
    """For a case without an explanation: a button to compute it (``explain_cases`` permission) or why not."""
    with shown_errors():
        offer = explanation_offer(context, session.principal, view.case_id, view.explanation.status)
    if offer is None:
        return
    if not offer.allowed:
        st.caption(plain(offer.reason))
        return
    with st.container(border=True):
        st.caption(plain(offer.reason))
        if st.button("Compute the explanation of this case", icon=":material/calculate:", key="explain_case"):
            from mmdx.workflows.explain import explain_run

            with shown_errors():
                authorize_explaining(context, session.principal)
                with st.spinner(f"Explaining {len(offer.cases)} case(s)…"):
                    explain_run(
                        context.run.root,
                        cases=list(offer.cases),
                        method=offer.method,
                        cohort_dir=context.cohort_dir,
                        **offer.settings,
                        workers=1,
                    )
            st.session_state.pop(CASE_VIEW, None)  # rebuilt with the new explanation
            st.rerun()
