"""Predictive entropy and the near-threshold band."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmdx.errors import MmdxError
from mmdx.review import near_threshold, predictive_entropy

probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@pytest.mark.parametrize(
    ("p", "bits"),
    [(0.0, 0.0), (1.0, 0.0), (0.5, 1.0), (0.25, 0.8112781244591328), (0.9, 0.4689955935892812)],
)
def test_entropy_known_values(p: float, bits: float) -> None:
    assert float(predictive_entropy(p)) == pytest.approx(bits, abs=1e-12)


@given(probabilities)
def test_entropy_is_symmetric_and_bounded(p: float) -> None:
    h = float(predictive_entropy(p))
    assert 0.0 <= h <= 1.0
    assert h == pytest.approx(float(predictive_entropy(1.0 - p)), abs=1e-9)


@given(probabilities, probabilities)
def test_entropy_grows_towards_one_half(a: float, b: float) -> None:
    closer, farther = sorted((a, b), key=lambda p: abs(p - 0.5))
    assert float(predictive_entropy(closer)) >= float(predictive_entropy(farther)) - 1e-12


def test_entropy_keeps_shape_and_rejects_invalid() -> None:
    assert predictive_entropy(np.array([[0.1, 0.5]])).shape == (1, 2)
    for bad in (-0.1, 1.2, float("nan")):
        with pytest.raises(MmdxError, match=r"\[0, 1\]"):
            predictive_entropy(bad)


def test_near_threshold_band_is_closed_and_centred_on_the_threshold() -> None:
    p = np.array([0.24, 0.25, 0.3, 0.35, 0.36])
    assert near_threshold(p, 0.3, 0.05).tolist() == [False, True, True, True, False]
    with pytest.raises(MmdxError, match="margin"):
        near_threshold(p, 0.3, -0.1)
