"""The calibration-methods benchmark fits on validation rows only and scores what it claims."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.calibration_methods import compare, labelled, verdict


def _cases(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = rng.normal(-0.8, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-true))).astype(float)
    return true + shift, y


def test_platt_beats_temperature_on_shifted_logits_and_the_targets_are_judged_by_interval() -> None:
    val, test = _cases(3_000, 1.0, 0), _cases(10_000, 1.0, 1)
    result = compare(val, test, resamples=30, seed=0)
    assert result["n_val"] == 3_000 and result["n_test"] == 10_000
    platt, temperature = result["platt"], result["temperature"]
    assert platt["verdicts"] == {"slope": "met", "intercept": "met", "ece": "met"}
    assert temperature["verdicts"]["intercept"] == "not met"
    assert temperature["citl"]["estimate"] > 0.05  # the shift makes it predict too high
    assert result["platt_minus_temperature_ece"]["high"] < 0
    assert platt["ece_perfect"]["mean"] == pytest.approx(platt["ece"]["estimate"], abs=0.01)


def test_only_labelled_validation_rows_are_used_for_fitting() -> None:
    frame = pd.DataFrame(
        {
            "logit": [0.1, 0.2, 0.3, 0.4, 0.5],
            "label": [1.0, np.nan, 0.0, 1.0, 0.0],
            "split": ["val", "val", "test", "val", "train"],
        }
    )
    logits, labels = labelled(frame, "val")
    assert logits.tolist() == [0.1, 0.4] and labels.tolist() == [1.0, 1.0]
    assert labelled(frame)[0].tolist() == [0.1, 0.3, 0.4, 0.5]


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        ({"estimate": 1.0, "low": 0.95, "high": 1.05}, "met"),
        ({"estimate": 1.0, "low": 0.85, "high": 1.05}, "not resolved"),
        ({"estimate": 1.2, "low": 1.15, "high": 1.25}, "not met"),
    ],
)
def test_verdict(interval: dict, expected: str) -> None:
    assert verdict(interval, 0.9, 1.1) == expected


def test_the_anchored_method_takes_the_development_class_rate_from_training_and_validation_rows() -> None:
    from benchmarks.calibration_methods import development_prevalence

    frame = pd.DataFrame(
        {
            "label": [1.0, 0.0, 0.0, 0.0, 1.0, np.nan, 1.0],
            "split": ["train", "train", "train", "val", "val", "val", "test"],
        }
    )
    assert development_prevalence(frame) == pytest.approx(2 / 5)
    val, test = _cases(400, 0.5, 2), _cases(4_000, 0.5, 3)
    result = compare(val, test, resamples=20, seed=0, prevalence=0.3)
    anchored = result["platt_anchored"]
    assert anchored["fitted"]["prevalence"] == 0.3 and result["development_prevalence"] == 0.3
    assert anchored["fitted"]["temperature"] == result["platt"]["fitted"]["temperature"]
    assert anchored["fitted"]["offset"] != pytest.approx(result["platt"]["fitted"]["offset"], abs=1e-3)
    assert "anchored_minus_platt_ece" in result


def test_the_posterior_of_a_cohort_that_drew_extra_positives_has_a_positive_intercept(tmp_path) -> None:
    import json

    from benchmarks.calibration_methods import posterior_calibration

    rng = np.random.default_rng(5)
    posterior = rng.uniform(0.05, 0.6, 3_000)
    # labels drawn from a posterior shifted up by one logit: more positives than it expects
    shifted = 1 / (1 + np.exp(-(np.log(posterior / (1 - posterior)) + 1.0)))
    labels = (rng.random(posterior.size) < shifted).astype(int)
    truth = tmp_path / "ground_truth"
    truth.mkdir()
    records = [{"label": int(y), "posterior": float(p)} for y, p in zip(labels, posterior, strict=True)]
    records.append({"label": None, "posterior": 0.5})  # unlabelled: left out
    (truth / "truth.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    found = posterior_calibration(tmp_path, resamples=50, seed=0)
    assert found["n"] == 3_000 and found["label_rate"] > found["posterior_mean"]
    assert found["intercept"]["low"] > 0.7 and found["intercept"]["high"] < 1.3
