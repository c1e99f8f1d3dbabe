"""The case review page under AppTest: what it shows, what it records, and verdicts reaching the store."""

from __future__ import annotations

import html
import re

import pandas as pd
import pytest

from mmdx.store import Verdict
from tests.support.review_runs import MARKUP_NOTE


def _predictions(review_run) -> pd.DataFrame:
    return pd.read_parquet(review_run.path / "predictions.parquet").set_index("case_id")


def _explained_image_case(review_run, coloured: bool = True) -> str:
    """An explained case with every modality whose map the page colours (or greys)."""
    from mmdx.review.overlay import overlay_decision
    from mmdx.run import RunPaths

    predictions = _predictions(review_run)
    run = RunPaths(review_run.path)
    for case_id in review_run.explained:
        if not predictions.loc[case_id, ["has_image", "has_tabular", "has_text"]].all():
            continue
        shapley = run.read_explanation_case(case_id).document["shapley"]["image"]
        if overlay_decision(float(predictions.loc[case_id, "probability"]), shapley).coloured == coloured:
            return case_id
    raise AssertionError(
        f"the test run has no explained case whose map is {'coloured' if coloured else 'greyed'}"
    )


def _window_radio(app):
    return next(r for r in app.at.radio if r.label.startswith("Window ("))


def test_opening_the_first_case_to_review_from_the_worklist(dashboard, review_run) -> None:
    """The worklist opens on the highest-risk explained case of the test split or without a label: never on
    a training case, never on one without an explanation while explained ones wait."""
    app = dashboard().sign_in("clin")
    top = app.at.dataframe[0].value["case_id"].iloc[0]
    predictions = _predictions(review_run)
    to_review = predictions[
        (predictions["split"].eq("test") | predictions["label"].isna())
        & predictions.index.isin(review_run.explained)
    ]
    assert top == to_review["probability"].idxmax()
    assert top != predictions["probability"].idxmax() or top in to_review.index
    app.widget("button", "Open case").click()
    app.run_app()
    assert app.at.title[0].value == f"Case {top}"
    assert [(e.user, e.case_id) for e in app.events("open_case")] == [("clin", top)]
    # moving a widget on the page redraws from the session's view: no second open_case
    app.widget("select_slider", "Your confidence").set_value(4)
    app.run_app()
    assert len(app.events("open_case")) == 1
    # leaving and coming back is a new opening
    app.go("views/worklist.py").go("views/case_review.py")
    assert len(app.events("open_case")) == 2


def test_explained_case_shows_every_section(dashboard, review_run) -> None:
    case_id = _explained_image_case(review_run)
    app = dashboard().sign_in("clin").open_case(case_id)
    labels = [m.label for m in app.at.metric]
    assert labels == [
        "Calibrated probability",
        "Operating threshold",
        "Prediction at threshold",
        "Uncertainty (entropy)",
    ]
    contributions = app.at.dataframe[0].value
    assert contributions["Shapley value (logit, vs. no information)"].notna().all()
    gates = "Gate (fusion weight, 0-1)"
    hidden = [c.value for c in app.at.caption if "gate is hidden" in c.value]
    assert (gates in contributions and contributions[gates].notna().sum() + len(hidden) == 3) or len(
        hidden
    ) == 3
    assert any("can differ" in c.value for c in app.at.caption)  # Shapley value vs. summed attribution
    # the original image by default, in its one plane (2D), with the model's input a click away
    assert app.widget("radio", "Show").value == "original"
    assert len(app.at.image) == 1
    assert _window_radio(app) and app.has("slider", "Overlay opacity")
    assert not any(s.label.endswith("slice (inferior to superior)") for s in app.at.slider)  # a 2D image
    assert any("mmdx-colour-bar" in h.proto.body and "calibrated logit" in h.proto.body for h in app.at.html)
    app.widget("radio", "Show").set_value("model")
    app.run_app()
    assert app.has("radio", "Window / level") and len(app.at.image) == 1
    bodies = [h.proto.body for h in app.at.html]
    assert any("mmdx-tabular" in b for b in bodies) and any("mmdx-note" in b for b in bodies)
    assert not app.at.info  # nothing missing


def test_image_controls_redraw_the_image(dashboard, review_run) -> None:
    app = dashboard().sign_in("clin").open_case(_explained_image_case(review_run))
    first = app.at.image[0].proto.imgs[0].url
    assert first.startswith("data:image/png;base64,")  # inline, never a /media/ URL outside the session
    app.widget("slider", "Overlay opacity").set_value(1.0)
    app.run_app()
    assert app.at.image[0].proto.imgs[0].url != first


def test_a_map_that_would_mean_nothing_is_greyed_with_the_reason(dashboard, review_run) -> None:
    app = dashboard().sign_in("clin").open_case(_explained_image_case(review_run, coloured=False))
    # the original image (the default view): no colours, and the reason under the planes
    assert app.widget("checkbox", "Attribution overlay").disabled
    assert not any("mmdx-colour-bar" in h.proto.body for h in app.at.html)
    notes = " ".join(c.value for c in app.at.caption)
    assert "Attribution overlay greyed out." in notes and "so it is greyed" in notes
    # the model's input view says the same under its image
    app.widget("radio", "Show").set_value("model")
    app.run_app()
    assert app.widget("checkbox", "Attribution overlay").disabled
    caption = app.at.image[0].proto.imgs[0].caption
    assert "Attribution overlay greyed out." in caption and "so it is greyed" in caption


def test_a_note_with_markup_is_shown_as_text(dashboard, review_run) -> None:
    app = dashboard().sign_in("clin").open_case(review_run.markup_case)
    (note,) = [h.proto.body for h in app.at.html if "mmdx-note" in h.proto.body]
    assert "<script" not in note and "<b>" not in note
    shown = html.unescape(re.sub(r"<[^>]*>", "", note.replace("<br>", "\n")))
    assert MARKUP_NOTE in shown  # the browser shows the markup as characters


def test_unexplained_case_says_so_and_shows_what_exists(dashboard, review_run) -> None:
    case_id = review_run.unexplained[0]
    app = dashboard().sign_in("clin").open_case(case_id)
    assert any("not explained" in i.value for i in app.at.info)
    assert app.widget("multiselect", "Which explanations helped?").disabled
    assert app.has("button", "Compute the explanation of this case")  # a clinician may compute it
    auditor = dashboard().sign_in("aud").open_case(case_id)
    assert not auditor.has("button", "Compute the explanation of this case")
    assert any("may not compute explanations" in c.value for c in auditor.at.caption)


def test_missing_modalities_get_badges(dashboard, review_run) -> None:
    predictions = _predictions(review_run)
    case_id = predictions.index[~predictions["has_image"]][0]
    app = dashboard().sign_in("clin").open_case(case_id)
    badges = [m.value for m in app.at.markdown if "-badge[" in m.value]
    assert any(b.startswith(":gray-badge[") and b.endswith("No image]") for b in badges)
    assert "This case has no image." in [i.value for i in app.at.info]


def test_a_submitted_verdict_reaches_the_store_and_the_history(dashboard, store, review_run) -> None:
    case_id = _explained_image_case(review_run)
    app = dashboard().sign_in("clin").open_case(case_id)
    app.widget("button", "Submit verdict").click()
    app.run_app()
    assert "Choose agree, disagree or unsure" in app.at.error[0].value
    app.widget("radio", "Do you agree with the model's prediction?").set_value(Verdict.DISAGREE)
    app.widget("text_input", "Your own diagnosis (optional)").input("atelectasis")
    app.widget("select_slider", "Your confidence").set_value(4)
    app.widget("multiselect", "Which explanations helped?").select("shapley")
    app.widget("text_area", "Comment (optional)").input("<b>lower lobe</b>")
    app.widget("button", "Submit verdict").click()
    app.run_app()
    assert "saved" in app.at.success[0].value
    clin = store.authenticate("clin", "correct horse battery")
    (record,) = store.verdict_history(clin, "run", case_id)
    assert (record.verdict, record.diagnosis, record.confidence, record.comment) == (
        Verdict.DISAGREE,
        "atelectasis",
        4,
        "<b>lower lobe</b>",
    )
    assert record.explanation_version == "placeholder-1" and record.helpful_explanations == ("shapley",)
    history = app.at.dataframe[-1].value
    assert history["verdict"].tolist() == ["disagree"]
    # a change of mind is a new row; the history shows both
    app.widget("radio", "Do you agree with the model's prediction?").set_value(Verdict.AGREE)
    app.widget("button", "Submit verdict").click()
    app.run_app()
    assert "supersedes" in app.at.success[0].value
    assert app.at.dataframe[-1].value["state"].tolist() == ["superseded", "current"]
    assert len(store.verdict_history(clin, "run", case_id)) == 2


@pytest.mark.parametrize("name", ["aud"])
def test_auditors_read_but_do_not_submit(dashboard, review_run, name: str) -> None:
    app = dashboard().sign_in(name).open_case(review_run.explained[0])
    assert not app.has("button", "Submit verdict")
    assert any(
        "does not submit" in i.value or "do not submit" in i.value or "does not" in i.value
        for i in app.at.info
    )


def test_the_lesion_contour_is_offered_only_where_the_ground_truth_has_a_lesion(
    dashboard, review_run
) -> None:
    """A real cohort has no ground truth: no contour checkbox then, in either view; a synthetic case with a
    lesion gets one."""
    from pathlib import Path

    from mmdx.bundle import read_bundle_identity
    from mmdx.data.imaging import read_image

    predictions = _predictions(review_run)
    cohort = Path(read_bundle_identity(review_run.path / "bundle").card["cohort"]["path"])
    with_lesion, without = None, None
    for case_id in predictions.index[predictions["has_image"]]:
        mask = cohort / "ground_truth" / "masks" / f"{case_id}.nii.gz"
        lesion = mask.is_file() and bool(read_image(mask).array.any())
        if lesion and with_lesion is None:
            with_lesion = case_id
        if not lesion and without is None:
            without = case_id
    assert with_lesion and without
    label = "Lesion contour (ground truth)"
    app = dashboard().sign_in("clin").open_case(without)
    assert not app.has("checkbox", label)
    app.widget("radio", "Show").set_value("model")
    app.run_app()
    assert not app.has("checkbox", label)
    assert dashboard().sign_in("clin").open_case(with_lesion).has("checkbox", label)
