"""The explanations section reads what 'mmdx explain' measured, and refuses explanations of another model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdx.audit.explanations import explanations_section
from mmdx.audit.sections import SectionUnavailable
from mmdx.run import RunPaths


def _curve(ours: float, chance: float) -> dict:
    return {
        "n_cases": 4,
        "fractions": [0.0, 0.5, 1.0],
        "auc_attribution": ours,
        "auc_random": chance,
        "auc_difference": chance - ours,
        "share_faster_than_random": 0.75,
        "full_removal_change": 0.2,
        "mean_curve_attribution": [0.8, 0.5, 0.4],
        "mean_curve_random": [0.8, 0.7, 0.4],
        "median_units": 10.0,
    }


@pytest.fixture
def run(tmp_path: Path) -> RunPaths:
    summary = {
        "explanation_version": "e1",
        "model_version": "m1",
        "n_cases": 3,
        "check_cases": 3,
        "ground_truth_available": False,
        "settings": {"n_steps": 32},
        "seconds_per_case": {"integrated_gradients": 0.5},
        "methods": {
            "integrated_gradients": {
                "convergence_delta": {
                    "n_cases": 3,
                    "abs_median": 1e-6,
                    "abs_max": 2e-6,
                    "relative_median": 0.01,
                },
                "deletion": {"image": _curve(0.4, 0.6), "tabular": _curve(0.7, 0.6), "text": {"n_cases": 0}},
                "randomisation": {
                    "reinitialisation": "all weights at once",
                    "seed": 0,
                    "image": {
                        "n_cases": 3,
                        "spearman_abs_mean": 0.1,
                        "spearman_abs_median": 0.1,
                        "spearman_signed_mean": 0.0,
                    },
                    "text": {"n_cases": 0},
                },
            }
        },
    }
    index = {
        "created": "2024-05-01T00:00:00+00:00",
        "primary_method": "integrated_gradients",
        "cases": [{"case_id": c, "split": s} for c, s in (("a", "test"), ("b", "test"), ("c", "val"))],
    }
    run = RunPaths(tmp_path / "run")
    run.explanations.mkdir(parents=True)
    run.explanations.joinpath("summary.json").write_text(json.dumps(summary))
    run.explanations.joinpath("index.json").write_text(json.dumps(index))
    return run


def test_results_are_carried_over_with_the_deletion_verdict(run: RunPaths) -> None:
    section = explanations_section(run, "m1")
    assert section["n_cases"] == 3 and section["cases_by_split"] == {"test": 2, "val": 1}
    method = section["methods"]["integrated_gradients"]
    assert set(method["deletion"]) == {"image", "tabular"}  # modalities without cases are left out
    assert method["deletion"]["image"]["faster_than_random"] is True
    assert method["deletion"]["tabular"]["faster_than_random"] is False
    assert method["deletion"]["image"]["auc_difference"] == pytest.approx(0.2)
    assert set(method["randomisation"]["modalities"]) == {"image"}
    assert method["convergence_delta"]["abs_max"] == 2e-6
    assert section["ground_truth_available"] is False and "synthetic" in section["ground_truth_reason"]


def test_explanations_of_another_model_version_are_refused(run: RunPaths) -> None:
    with pytest.raises(SectionUnavailable, match="model version 'm1'.*'m2'"):
        explanations_section(run, "m2")


def test_missing_or_damaged_explanations_say_what_to_run(tmp_path: Path, run: RunPaths) -> None:
    with pytest.raises(SectionUnavailable, match="run 'mmdx explain RUN' first"):
        explanations_section(RunPaths(tmp_path / "nothing"), "m1")
    run.explanations.joinpath("summary.json").write_text("{not json")
    with pytest.raises(SectionUnavailable, match="cannot be read"):
        explanations_section(run, "m1")


def test_the_image_method_and_the_rules_candidates_are_reported(run: RunPaths) -> None:
    # an older run: no record; the primary method drew the maps, unchecked
    assert explanations_section(run, "m1")["image_method"]["name"] == "integrated_gradients"
    assert explanations_section(run, "m1")["image_method"]["passed"] is None
    summary = json.loads(run.explanations.joinpath("summary.json").read_text())
    summary["image_method"] = {
        "name": "gradcam",
        "chosen_by": "rule on the validation split",
        "passed": False,
        "any_passed": False,
        "reason": "no method passed",
        "rule": "r",
    }
    run.explanations.joinpath("summary.json").write_text(json.dumps(summary))
    candidates = [{"method": "gradcam", "randomisation_abs": 0.3, "passed": False}]
    run.write_image_method_choice({"chosen": "gradcam", "model_version": "m1", "candidates": candidates})
    drawn = explanations_section(run, "m1")["image_method"]
    assert (drawn["name"], drawn["passed"], drawn["any_passed"]) == ("gradcam", False, False)
    assert drawn["candidates"] == candidates
    run.write_image_method_choice({"chosen": "gradcam", "model_version": "other", "candidates": candidates})
    assert explanations_section(run, "m1")["image_method"]["candidates"] == []
