"""The external validation benchmark's scoring: verdicts against a target and the drift outcome."""

from __future__ import annotations

from benchmarks.external_validation import drift_outcome, verdict


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
