"""The image attribution benchmark's statistics and method parsing."""

from __future__ import annotations

import pytest

from benchmarks.image_attribution import bootstrap_mean, paired_difference, parse_method, table


def test_bootstrap_mean_covers_the_mean_and_drops_missing_values():
    result = bootstrap_mean([0.0, 1.0, None, 1.0, 0.0, 1.0])
    assert result["n"] == 5 and result["mean"] == pytest.approx(0.6)
    assert 0.0 <= result["low"] <= 0.6 <= result["high"] <= 1.0
    assert bootstrap_mean([None])["mean"] is None


def test_paired_difference_uses_the_cases_both_methods_have():
    result = paired_difference([1.0, 1.0, None, 0.0], [0.0, 1.0, 1.0, None])
    assert result["n"] == 2 and result["mean"] == pytest.approx(0.5)


def test_methods_are_parsed_with_their_stage_and_options():
    assert parse_method("gradcam@stage0+stage1") == (
        "gradcam@stage0+stage1",
        "gradcam",
        {"cam_layer": "stage0+stage1"},
    )
    assert parse_method("ig") == ("ig", "integrated_gradients", {})
    assert parse_method("ig_expected")[2] == {"tabular_baseline": "training"}
    assert parse_method("gaussian_occlusion:blur") == (
        "gaussian_occlusion:blur",
        "gaussian_occlusion",
        {"image_baseline": "blur"},
    )
    assert parse_method("hirescam@stem:blur")[2] == {"cam_layer": "stem", "image_baseline": "blur"}
    with pytest.raises(SystemExit, match="one of air, blur"):
        parse_method("ig:noise")


def test_the_table_has_a_column_per_method_and_says_n():
    cell = {"mean": 0.5, "low": 0.4, "high": 0.6, "n": 3}
    rows = [
        {"label": name, "n_cases": 3, "n_checked": 2, "seconds_per_case": 0.1, "mass": cell} for name in "ab"
    ]
    text = table(rows)
    assert "| score | a | b |" in text and "0.500 [0.400, 0.600]" in text and "3 (2)" in text


def test_cases_are_chosen_in_order_after_the_skipped_ones():
    import pandas as pd

    from benchmarks.image_attribution import select_cases

    class Run:
        def read_predictions(self) -> pd.DataFrame:
            return pd.DataFrame(
                {
                    "case_id": ["a", "b", "c", "d", "e"],
                    "split": ["test"] * 5,
                    "label": [1, 1, 0, 1, 1],
                    "predicted": [1, 1, 1, 0, 1],
                }
            )

    truth = {c: {"lesion": c != "b"} for c in "abcde"}
    assert select_cases(Run(), truth, "all", None) == ["a", "e"]  # true-positive lesion cases
    assert select_cases(Run(), truth, "all", 1, skip=1) == ["e"]
    assert select_cases(Run(), truth, "test", 2, every=True, skip=1) == ["b", "c"]
    assert select_cases(Run(), truth, "all", None, every=True, skip=5) == []
