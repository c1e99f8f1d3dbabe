"""When the case page greys the image attribution map, and what it says about the method that drew it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from mmdx.keys import Modality
from mmdx.review.case import CaseView
from mmdx.review.overlay import greyed, overlay_decision, overlay_decision_for
from mmdx.review.rendering import CaseImage
from mmdx.review.viewer import NativeImage


def test_a_confident_case_with_an_image_that_matters_is_coloured():
    decision = overlay_decision(0.8, 0.6, method="gradcam", method_passed=True, any_method_passed=True)
    assert decision.coloured and decision.reasons == ()
    assert "Grad-CAM" in decision.method_note and "passed" in decision.method_note


def test_low_probability_and_a_null_image_shapley_each_grey_the_map_with_a_reason():
    low = overlay_decision(0.05, 0.6)
    assert not low.coloured and "below 10%" in low.reasons[0]
    null = overlay_decision(0.7, -0.01)
    assert not null.coloured and "almost nothing" in null.reasons[0] and "-0.010" in null.reasons[0]
    both = overlay_decision(0.02, 0.0, probability_cutoff=0.05, shapley_floor=0.1)
    assert len(both.reasons) == 2
    # the boundaries: at the cutoff and at the floor the map is coloured
    assert overlay_decision(0.1, 0.05).coloured
    # unknown numbers are not held against the map
    assert overlay_decision(None, None).coloured


def test_the_note_says_plainly_when_no_method_passed():
    checks = {"randomisation_abs": 0.41, "anatomy_trained": 0.7, "anatomy_randomised": 0.68}
    none = overlay_decision(
        0.9, 1.0, method="layercam", method_passed=False, any_method_passed=False, checks=checks
    )
    assert none.coloured and "No attribution method passed" in none.method_note
    assert "0.41" in none.method_note and "0.70, randomised 0.68" in none.method_note
    this = overlay_decision(
        0.9, 1.0, method="integrated_gradients", method_passed=False, any_method_passed=True
    )
    assert "did not pass" in this.method_note
    assert "not checked" in overlay_decision(0.9, 1.0, method="occlusion").method_note
    unsure = {"randomisation_abs": 0.15, "randomisation_interval": [0.05, 0.26], "verdict": "not resolved"}
    note = overlay_decision(
        0.9,
        1.0,
        method="gradcam",
        method_passed=True,
        any_method_passed=True,
        checks={**unsure, "n_cases": 16},
    ).method_note
    assert "too few of them to be sure" in note and "[95% interval 0.05 to 0.26, 16 cases]" in note
    sure = {**unsure, "randomisation_interval": [0.05, 0.18], "verdict": "passed"}
    note = overlay_decision(0.9, 1.0, method="gradcam", method_passed=True, checks=sure).method_note
    assert "which passed the model-randomisation check" in note and "too few" not in note
    assert overlay_decision(0.9, 1.0).method_note is None


def _view(probability: float, shapley: float | None, native: NativeImage | None = None):
    image = CaseImage(
        hu=np.zeros((4, 4), np.float32), spacing=(1.0, 1.0), attribution=np.ones((4, 4), np.float32)
    )
    contributions = [SimpleNamespace(modality=Modality.IMAGE, shapley=shapley)]
    document = {
        "method": "integrated_gradients",
        "image_method": "gradcam",
        "image_map_check": {"passed": True},
    }
    return CaseView(
        case_id="c1",
        run_id="r",
        model_version="m",
        probability=probability,
        logit=0.0,
        threshold=0.5,
        predicted_positive=probability >= 0.5,
        uncertainty=0.1,
        near_threshold=False,
        positive_meaning="finding",
        presence={Modality.IMAGE: True},
        contributions=contributions,
        explanation=SimpleNamespace(document=document),
        image=image,
        native=native,
    )


def test_a_case_view_is_read_and_greyed_without_touching_the_original():
    view = _view(0.03, 0.4)
    decision = overlay_decision_for(view)
    assert not decision.coloured and decision.method_passed is True and "Grad-CAM" in decision.method_note
    shown = greyed(view, decision)
    assert shown.image.attribution is None and "below 10%" in shown.image.withheld
    assert view.image.attribution is not None
    kept = _view(0.9, 0.4)
    assert greyed(kept, overlay_decision_for(kept)) is kept


def test_the_original_grid_map_is_greyed_with_the_model_input_map():
    values = np.zeros((4, 4, 3), np.float32)
    native = NativeImage(values=values, spacing=(1.0, 1.0, 2.0), modality="CT", attribution=values + 1)
    view = _view(0.9, 0.001, native=native)
    shown = greyed(view, overlay_decision_for(view))
    assert shown.native.attribution is None and "almost nothing" in shown.native.withheld
    assert shown.native.overlay_scale() is None  # nothing coloured on the original grid either
    assert shown.image.attribution is None
    assert view.native.attribution is not None
    without_map = _view(0.05, 0.4, native=NativeImage(values=values, spacing=(1.0, 1.0, 2.0)))
    assert greyed(without_map, overlay_decision_for(without_map)).native.withheld is None
