"""Temperature and Platt scaling recover a known miscalibration and never change the ranking."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

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


def _shifted(shift: float, scale: float, n: int = 20_000, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``scale * true_logit + shift`` of labels drawn from ``true_logit`` (prevalence about 0.3)."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(-1.0, 1.5, size=n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-true_logits))).astype(float)
    return scale * true_logits + shift, labels


def test_platt_undoes_the_shift_of_class_weighting_that_a_temperature_cannot() -> None:
    # class weighting n_neg / n_pos moves the logits up by about its log: here 1.0, with the scale of 1.5
    logits, labels = _shifted(shift=1.0, scale=1.5)
    temperature = TemperatureScaler(method="temperature").fit(logits, labels)
    platt = TemperatureScaler(method="platt").fit(logits, labels)
    assert platt.temperature_ == pytest.approx(1.5, rel=0.05)
    assert platt.offset_ == pytest.approx(-1.0 / 1.5, abs=0.05)
    assert abs(platt.transform(logits).mean() - labels.mean()) < 0.005
    assert abs(temperature.transform(logits).mean() - labels.mean()) > 0.03  # too high, and it stays so
    assert temperature.offset_ == 0.0
    assert platt.nll_after_ < temperature.nll_after_
    ranks = np.argsort(platt.transform(logits), kind="stable")
    assert np.array_equal(ranks, np.argsort(logits, kind="stable"))


def test_platt_on_calibrated_logits_changes_nothing() -> None:
    logits, labels = _shifted(shift=0.0, scale=1.0)
    platt = TemperatureScaler(method="platt").fit(logits, labels)
    assert platt.temperature_ == pytest.approx(1.0, abs=0.05) and platt.offset_ == pytest.approx(
        0.0, abs=0.05
    )


def test_platt_round_trips_and_a_bundle_without_an_offset_loads_as_before() -> None:
    logits, labels = _shifted(shift=0.7, scale=2.0, n=2_000)
    platt = TemperatureScaler(method="platt").fit(logits, labels)
    restored = TemperatureScaler.from_dict(platt.to_dict())
    assert (restored.method, restored.temperature_, restored.offset_) == (
        "platt",
        platt.temperature_,
        platt.offset_,
    )
    assert np.array_equal(restored.transform(logits), platt.transform(logits))
    # calibration.json as bundles wrote it before the offset existed
    old = TemperatureScaler.from_dict(
        {"method": "temperature", "temperature": 1.7, "nll_before": 0.6, "nll_after": 0.5}
    )
    assert old.offset_ == 0.0 and old.method == "temperature" and old.prevalence_ is None
    assert np.array_equal(old.transform(logits), expit(logits / 1.7))  # bit for bit as before
    # and as Platt bundles wrote it before the offset was anchored: no class rate, the same probabilities
    unanchored = TemperatureScaler.from_dict({"method": "platt", "temperature": 1.7, "offset": -0.3})
    assert unanchored.prevalence_ is None and "prevalence" not in unanchored.to_dict()
    assert np.array_equal(unanchored.transform(logits), expit(logits / 1.7 - 0.3))


@pytest.mark.parametrize(
    "state",
    [
        {"method": "isotonic", "temperature": 1.0},
        {"method": "platt", "temperature": 1.0, "offset": float("nan")},
        {"method": "platt", "temperature": 0.0, "offset": 0.1},
    ],
)
def test_a_malformed_calibration_is_refused(state: dict) -> None:
    with pytest.raises(ValueError, match="calibration.json"):
        TemperatureScaler.from_dict(state)


def test_an_unknown_method_is_refused_when_built() -> None:
    with pytest.raises(ValueError, match="platt, temperature"):
        TemperatureScaler(method="isotonic")


def test_platt_with_one_class_leaves_the_logits_alone() -> None:
    scaler = TemperatureScaler(method="platt").fit(np.array([0.1, 2.0, -1.0]), np.array([0.0, 0.0, 0.0]))
    assert (scaler.temperature_, scaler.offset_) == (1.0, 0.0)


def test_anchored_offset_matches_the_development_prevalence_and_keeps_the_temperature() -> None:
    rng = np.random.default_rng(3)
    true_logits = rng.normal(-0.6, 1.5, size=90)
    labels = (rng.random(true_logits.size) < expit(true_logits)).astype(float)
    free = TemperatureScaler(method="platt").fit(true_logits * 2.0, labels)
    anchored = TemperatureScaler(method="platt").fit(true_logits * 2.0, labels, prevalence=0.25)
    assert anchored.temperature_ == free.temperature_
    assert anchored.transform(true_logits * 2.0).mean() == pytest.approx(0.25, abs=1e-8)
    assert anchored.offset_ != pytest.approx(free.offset_, abs=1e-3)
    assert anchored.prevalence_ == 0.25 and free.prevalence_ is None
    # the validation split's own class rate gives back the free fit's calibration-in-the-large
    own = TemperatureScaler(method="platt").fit(true_logits * 2.0, labels, prevalence=float(labels.mean()))
    assert own.transform(true_logits * 2.0).mean() == pytest.approx(labels.mean(), abs=1e-8)
    assert own.offset_ == pytest.approx(free.offset_, abs=0.02)  # Platt's optimum already matches its mean
    restored = TemperatureScaler.from_dict(anchored.to_dict())
    assert restored.prevalence_ == 0.25 and restored.offset_ == anchored.offset_


def test_the_anchor_reduces_the_error_a_small_validation_split_leaves_in_the_intercept() -> None:
    """Over many draws of a 90-case validation split from a population whose class rate is known to
    five times as many labels, the anchored offset lands nearer the population's calibration-in-the-large."""
    rng = np.random.default_rng(0)
    errors = {"free": [], "anchored": []}
    for _ in range(300):
        z = rng.normal(-0.7, 1.8, size=540)
        y = (rng.random(z.size) < expit(z)).astype(float)
        val_z, val_y = z[:90] * 1.7, y[:90]
        for name, prevalence in (("free", None), ("anchored", float(y.mean()))):
            scaler = TemperatureScaler(method="platt").fit(val_z, val_y, prevalence=prevalence)
            errors[name].append(scaler.transform(z * 1.7).mean() - expit(z).mean())
    rms = {name: float(np.sqrt(np.mean(np.square(values)))) for name, values in errors.items()}
    assert rms["anchored"] < 0.85 * rms["free"], rms


def test_temperature_ignores_the_anchor_and_a_prevalence_outside_0_1_is_refused() -> None:
    logits = np.array([-2.0, -1.0, 0.5, 1.5, 2.0, -0.5])
    labels = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    plain = TemperatureScaler(method="temperature").fit(logits, labels, prevalence=0.9)
    assert plain.offset_ == 0.0 and plain.prevalence_ is None
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        TemperatureScaler(method="platt").fit(logits, labels, prevalence=1.0)


def _calibrated_cases(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(-0.8, 2.0, n)))
    return (rng.random(n) < p).astype(float), p


def test_the_validation_slope_interval_narrows_with_the_split_and_warns_when_too_wide() -> None:
    from mmdx.training.calibration import validation_slope

    few, many = validation_slope(*_calibrated_cases(300, 1)), validation_slope(*_calibrated_cases(6000, 1))
    assert few["n"] == 300 and few["low"] < few["estimate"] < few["high"]
    assert many["low"] < 1.0 < many["high"] and many["high"] - many["low"] < (few["high"] - few["low"]) / 3
    labels = _calibrated_cases(300, 1)[0]
    (warning,) = calibration_warnings(labels, TemperatureScaler(), slope=few)
    assert "300 labelled cases" in warning and f"{few['low']:.2f} to {few['high']:.2f}" in warning
    assert calibration_warnings(np.tile([0.0, 1.0], 3000), TemperatureScaler(), slope=many) == []
    (folded,) = calibration_warnings(labels, TemperatureScaler(), slope=few, out_of_fold=True)
    assert folded.startswith("the out-of-fold predictions (300 labelled cases) fix the calibration slope")
    assert folded.endswith("more labelled cases narrow it")
    small = np.tile([0.0, 1.0], 10)
    (few_folded,) = calibration_warnings(small, TemperatureScaler(), out_of_fold=True)
    assert (
        few_folded.startswith("the out-of-fold predictions are too few") and "20 labelled cases" in few_folded
    )
    assert "validation split" not in few_folded
    # one class: no slope, no interval, no slope warning
    one = validation_slope(np.zeros(50), np.full(50, 0.2))
    assert one["estimate"] is None and one["low"] is None
    undefined = {"estimate": None, "low": 0.5, "high": 2.0, "n": 300}
    assert calibration_warnings(labels, TemperatureScaler(), slope=undefined) == []


def test_the_validation_slope_is_the_logistic_recalibration_slope_and_its_bootstrap() -> None:
    from mmdx.statistics import bootstrap_ci, calibration_slope_intercept
    from mmdx.training.calibration import validation_slope

    labels, p = _calibrated_cases(300, 4)
    sharp = 1 / (1 + np.exp(-1.6 * np.log(p / (1 - p))))  # over-confident: slope about 1 / 1.6
    ours = validation_slope(labels, sharp, resamples=400, seed=3)
    assert ours["estimate"] == pytest.approx(calibration_slope_intercept(labels, sharp).slope, abs=1e-6)
    theirs = bootstrap_ci(lambda y, q: calibration_slope_intercept(y, q).slope, labels, sharp, 400, seed=3)
    assert (ours["low"], ours["high"]) == pytest.approx((theirs.low, theirs.high), abs=1e-9)
    assert ours["low"] < 1 / 1.6 < ours["high"]
    # classes that the probabilities separate perfectly have no finite slope
    separated = validation_slope(np.array([0.0] * 20 + [1.0] * 20), np.array([0.1] * 20 + [0.9] * 20))
    assert separated["estimate"] is None
