"""Temperature scaling recovers a known miscalibration and never changes the ranking."""

from __future__ import annotations

import numpy as np
import pytest

from mmdx.training.calibration import TemperatureScaler, calibration_warnings


def test_recovers_known_temperature() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, size=20_000)
    labels = (rng.random(true_logits.size) < 1 / (1 + np.exp(-true_logits))).astype(float)
    scaler = TemperatureScaler().fit(true_logits * 3.0, labels)  # an overconfident model
    assert scaler.temperature_ == pytest.approx(3.0, rel=0.05)
    assert scaler.nll_after_ < scaler.nll_before_
    probs = scaler.transform(true_logits * 3.0)
    assert np.array_equal(np.argsort(probs, kind="stable"), np.argsort(true_logits, kind="stable"))


def test_one_class_keeps_temperature_and_round_trips() -> None:
    scaler = TemperatureScaler().fit(np.array([0.1, 2.0]), np.array([1.0, 1.0]))
    assert scaler.temperature_ == 1.0
    restored = TemperatureScaler.from_dict(TemperatureScaler(2.5).to_dict())
    assert restored.temperature_ == 2.5
    with pytest.raises(ValueError, match="positive temperature"):
        TemperatureScaler.from_dict({"method": "temperature", "temperature": -1})


def _logits(kind: str, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    signs = labels * 2 - 1
    if kind == "informative":
        return signs * 1.0 + rng.normal(0, 1, labels.size)
    if kind == "noise":  # no information: the best temperature flattens everything (upper bound, e^4)
        return rng.normal(0, 5, labels.size)
    return signs * 0.01  # separable but timid: the best temperature sharpens without end (lower bound)


@pytest.mark.parametrize(
    ("n", "positive_share", "kind", "expected"),
    [
        (2000, 0.4, "informative", []),
        (200, 0.03, "informative", ["too small"]),  # 6 positives
        (2000, 0.5, "noise", ["at the bound"]),
        (2000, 0.5, "separable", ["at the bound"]),
    ],
)
def test_small_validation_splits_and_clamped_temperatures_are_flagged(
    n: int, positive_share: float, kind: str, expected: list[str]
) -> None:
    rng = np.random.default_rng(1)
    labels = (np.arange(n) < round(n * positive_share)).astype(float)
    scaler = TemperatureScaler().fit(_logits(kind, labels, rng), labels)
    warnings = calibration_warnings(labels, scaler)
    assert len(warnings) == len(expected), warnings
    for warning, phrase in zip(warnings, expected, strict=True):
        assert phrase in warning
    assert scaler.at_bound == ("at the bound" in expected)


def test_seven_validation_cases_fit_the_clamp_and_both_warnings_appear() -> None:
    """The finding: a 7-case validation split fitted a temperature of exactly e^4 without a word."""
    labels = np.array([0, 0, 0, 0, 1, 1, 1], dtype=float)
    logits = np.array([-0.02, -0.01, -0.015, 0.0, 0.01, 0.02, 0.015])
    scaler = TemperatureScaler().fit(logits, labels)
    warnings = calibration_warnings(labels, scaler)
    assert scaler.at_bound and len(warnings) == 2
