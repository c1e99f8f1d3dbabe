"""The external validation benchmark's scoring: verdicts against a target and the drift outcome."""

from __future__ import annotations

import pytest

from benchmarks.external_validation import drift_outcome, update_outcome, verdict


def test_verdict_needs_the_whole_interval_inside() -> None:
    assert verdict({"estimate": 0.01, "low": -0.015, "high": 0.019}, -0.02, 0.02) == "met"
    assert verdict({"estimate": 0.01, "low": -0.03, "high": 0.019}, -0.02, 0.02) == "not resolved"
    assert verdict({"estimate": 0.03, "low": 0.01, "high": 0.05}, -0.02, 0.02) == "not met"


def test_drift_outcome_compares_the_flagged_with_the_shifted_features() -> None:
    rows = [
        {"feature": "spo2", "flag": True, "p_adjusted": 1e-9},
        {"feature": "glucose", "flag": True, "p_adjusted": 1e-5},
        {"feature": "sodium", "flag": False, "p_adjusted": 0.8},
    ]
    drift = {"features": rows, "prevalence": {"flag": True}, "missingness": [], "correction": "Holm"}
    assert drift_outcome(drift, ["glucose", "spo2"])["exactly_the_shifted"]
    outcome = drift_outcome(drift, ["glucose", "spo2", "creatinine"])
    assert not outcome["exactly_the_shifted"] and outcome["prevalence_flagged"]


def test_update_outcome_reads_ece_against_the_perfect_model_and_keeps_the_selection() -> None:
    def iv(estimate: float, low: float, high: float) -> dict[str, float]:
        return {"estimate": estimate, "low": low, "high": high}

    scores = {
        "calibration_slope": iv(1.0, 0.9, 1.1),
        "calibration_intercept": iv(0.1, -0.2, 0.14),
        "ece": iv(0.02, 0.015, 0.05),
    }
    given = {
        "calibration_slope": iv(1.0, 0.95, 1.05),
        "calibration_intercept": iv(0.1, 0.05, 0.14),
        "ece": iv(0.02, 0.016, 0.024),
    }
    entry = {
        "intercept": -1.0,
        "slope": 1.0,
        "scores": scores,
        "scores_given_fit": given,
        "ece_perfect": {"mean": 0.015},
        "ece_change": iv(-0.1, -0.12, -0.08),
        "selected": "intercept",
        "closed_test": {"tests": [{"model": "base", "rejected": True}]},
    }
    out = update_outcome(entry)
    assert out["ece_excess"] == {
        "estimate": pytest.approx(0.005),
        "low": pytest.approx(0.0),
        "high": pytest.approx(0.035),
    }
    assert (out["slope_verdict"], out["intercept_verdict"], out["ece_verdict"]) == (
        "met",
        "not resolved",
        "not resolved",
    )
    assert out["given_fit_verdicts"] == {"slope": "met", "intercept": "met", "ece": "met"}
    assert out["selected"] == "intercept" and out["tests"][0]["rejected"]
