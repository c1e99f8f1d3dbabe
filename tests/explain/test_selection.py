"""The documented rule that picks the method drawing image maps."""

from __future__ import annotations

import pytest

from mmdx.explain.selection import MethodMeasurement, choose_image_method, measurement_from_sections


def _m(name, randomisation, pointing=None, mass=None):
    return MethodMeasurement(name, randomisation, pointing_game=pointing, mass_in_lesion=mass)


def test_a_method_that_passes_randomisation_beats_a_better_pointer_that_does_not():
    choice = choose_image_method([_m("ig", 0.76, 0.9, 0.3), _m("gradcam", 0.1, 0.6, 0.2)])
    assert choice["chosen"] == "gradcam" and choice["passed"] and choice["any_passed"]
    assert [c["method"] for c in choice["candidates"]] == ["gradcam", "ig"]


def test_among_passing_methods_pointing_then_mass_decide():
    rows = [_m("a", 0.05, 0.7, 0.5), _m("b", 0.15, 0.8, 0.1), _m("c", 0.10, 0.8, 0.2)]
    assert choose_image_method(rows)["chosen"] == "c"


def test_a_negative_correlation_of_any_size_below_the_threshold_passes_only_when_small():
    assert _m("x", -0.1).passed and not _m("y", -0.3).passed and not _m("z", None).passed


def test_when_none_passes_the_choice_says_so():
    choice = choose_image_method([_m("ig", 0.76, 0.9), _m("occlusion", 0.5, 0.2)])
    assert choice["chosen"] == "occlusion" and choice["passed"] is False and not choice["any_passed"]
    assert "no method passed" in choice["reason"]
    with pytest.raises(ValueError):
        choose_image_method([])


def test_measurement_reads_true_positives_first_then_every_lesion_case():
    randomisation = {"image": {"spearman_abs_mean": 0.1, "anatomy_trained_mean": 0.5}}
    truth = {
        "image": {
            "true_positive_lesion_cases": {"n_cases": 0},
            "lesion_cases": {
                "n_cases": 4,
                "pointing_game": 0.75,
                "mass_share_in_lesion": 0.2,
                "mass_lift": 9.0,
            },
        }
    }
    row = measurement_from_sections("gradcam", randomisation, truth, 8)
    assert (row.pointing_game, row.n_lesion_cases, row.anatomy_trained) == (0.75, 4, 0.5)
    assert measurement_from_sections("gradcam", randomisation, None, 8).pointing_game is None


def test_a_resolved_pass_ranks_before_a_better_pointer_whose_interval_reaches_the_threshold():
    unsure = MethodMeasurement("gradcam", 0.15, (0.05, 0.26), pointing_game=0.9, n_cases=16)
    sure = MethodMeasurement("gradcam_pp", -0.02, (-0.1, 0.07), pointing_game=0.5, n_cases=16)
    assert unsure.passed and not unsure.resolved_pass and unsure.verdict == "not resolved"
    assert sure.resolved_pass
    choice = choose_image_method([unsure, sure])
    assert choice["chosen"] == "gradcam_pp" and "-0.100 to 0.070 over 16 cases, passed" in choice["reason"]
    assert choice["candidates"][1]["randomisation_interval"] == [0.05, 0.26]
    assert choice["candidates"][1]["verdict"] == "not resolved"
    # without intervals (a choice recorded before they existed) the rule is unchanged
    assert choose_image_method([_m("a", 0.15, 0.9), _m("b", 0.0, 0.5)])["chosen"] == "a"


def test_measurement_carries_the_interval_of_the_randomisation_summary():
    randomisation = {"image": {"spearman_abs_mean": 0.1, "spearman_abs_interval": [0.02, 0.18]}}
    assert measurement_from_sections("gradcam", randomisation, None, 8).resolved_pass
    assert (
        measurement_from_sections("gradcam", {"image": {"spearman_abs_mean": 0.1}}, None, 8).verdict is None
    )
