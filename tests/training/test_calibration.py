"""Temperature scaling recovers a known miscalibration and never changes the ranking."""

from __future__ import annotations

import numpy as np
import pytest

from mmdx.training.calibration import TemperatureScaler


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
