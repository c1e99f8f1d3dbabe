"""The statistics of dataset shift and recalibration, each against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit, logit
from scipy.stats import chi2, chi2_contingency

from mmdx.metrics import expected_calibration_error
from mmdx.shift import (
    bin_counts,
    calibration_in_the_large,
    closed_test,
    combine_tests,
    em_prevalence,
    fit_logistic,
    holm,
    homogeneity_test,
    log_likelihood,
    merge_small_bins,
    perfect_calibration_ece,
    proportion_test,
    quantile_edges,
    shift_prior,
    standardised_difference,
)


def test_homogeneity_test_matches_scipy_contingency() -> None:
    a, b = np.array([12, 30, 25, 8, 0]), np.array([20, 18, 40, 15, 0])
    result = homogeneity_test(a, b)
    statistic, p, dof, _ = chi2_contingency(np.vstack([a[:4], b[:4]]), correction=False)
    assert result.statistic == pytest.approx(statistic)
    assert result.p_value == pytest.approx(p)
    assert result.df == dof == 3


def test_proportion_test_matches_scipy() -> None:
    result = proportion_test(30, 100, 55, 120)
    statistic, p, _, _ = chi2_contingency(np.array([[30, 70], [55, 65]]), correction=False)
    assert (result.statistic, result.p_value) == (pytest.approx(statistic), pytest.approx(p))


def test_combined_tests_add_statistics_and_degrees_of_freedom() -> None:
    one, two = homogeneity_test([10, 20, 30], [12, 25, 20]), homogeneity_test([5, 9], [9, 4])
    both = combine_tests([one, two])
    assert both.df == 3 and both.statistic == pytest.approx(one.statistic + two.statistic)
    assert one.p_value > both.p_value or two.p_value > both.p_value


def test_holm_adjustment_by_hand() -> None:
    # sorted p: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06 after the running max), 0.5 (x1)
    assert holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    adjusted = holm([0.2, float("nan"), 0.01])
    assert adjusted[0] == pytest.approx(0.2) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)


def test_bins_hold_every_value_once_and_no_small_cell() -> None:
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(139, 3, 400))  # heavy ties
    edges = quantile_edges(values, 10)
    counts = bin_counts(values, edges)
    assert counts.sum() == 400
    # (-inf, e1], (e1, e2], ...: the same as counting by hand
    manual = (
        [np.sum(values <= edges[0])]
        + [np.sum((values > lo) & (values <= hi)) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        + [np.sum(values > edges[-1])]
    )
    assert counts.tolist() == manual
    merged_edges, merged = merge_small_bins(edges, np.array([*counts[:-1], 2]), 5)
    assert merged.min() >= 5 and len(merged_edges) == len(merged) - 1


def test_standardised_difference() -> None:
    assert standardised_difference(0.0, 1.0, 0.5, 1.0) == pytest.approx(0.5)
    assert standardised_difference(10.0, 3.0, 10.0, 4.0) == 0.0


def test_em_recovers_a_shifted_prevalence_and_is_a_fixed_point() -> None:
    rng = np.random.default_rng(1)
    n = 20000
    y = (rng.random(n) < 0.15).astype(int)
    score = rng.normal(1.2 * y, 1.0)  # equal-variance normals: log LR = 1.2 * score - 0.72
    p_home = expit(1.2 * score - 0.72 + logit(0.4))  # calibrated where the prevalence is 0.4
    estimate = em_prevalence(p_home, 0.4)
    assert estimate.converged
    assert estimate.prevalence == pytest.approx(0.15, abs=0.01)
    adjusted = shift_prior(p_home, 0.4, estimate.prevalence)
    assert adjusted.mean() == pytest.approx(estimate.prevalence, abs=1e-6)
    assert abs(calibration_in_the_large(y, adjusted)) < 0.01


def test_logistic_fit_matches_a_general_optimiser() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, 300)
    y = (rng.random(300) < expit(-0.4 + 0.7 * z)).astype(float)

    def nll(beta: np.ndarray, slope: bool) -> float:
        eta = beta[0] + (beta[1] * z if slope else z)
        return float(np.sum(np.logaddexp(0, eta) - y * eta))

    full = minimize(
        nll, np.zeros(2), args=(True,), method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10}
    )
    a, b = fit_logistic(z, y)
    assert (a, b) == (pytest.approx(full.x[0], abs=1e-4), pytest.approx(full.x[1], abs=1e-4))
    only = minimize(
        nll, np.zeros(1), args=(False,), method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10}
    )
    assert fit_logistic(z, y, slope=False) == (pytest.approx(only.x[0], abs=1e-4), 1.0)
    with pytest.raises(ValueError, match="separate"):
        fit_logistic(np.array([-1.0, -2.0, 1.0, 2.0]), np.array([0.0, 0.0, 1.0, 1.0]))


def test_perfect_calibration_ece_is_the_ece_of_labels_drawn_from_the_predictions() -> None:
    p = np.random.default_rng(3).beta(2, 5, 1000)
    reference = perfect_calibration_ece(p, simulations=300, seed=4)
    rng = np.random.default_rng(99)
    independent = np.mean([expected_calibration_error(rng.random(p.size) < p, p) for _ in range(300)])
    assert reference.mean == pytest.approx(independent, rel=0.1)
    assert reference.low < reference.mean < reference.high
    assert perfect_calibration_ece(p[:100], simulations=300).mean > reference.mean  # fewer cases, more noise


def test_log_likelihood_is_the_bernoulli_log_likelihood_and_stays_finite() -> None:
    y = np.array([1.0, 0.0, 1.0, 0.0])
    eta = np.array([0.3, -1.2, 2.0, 0.5])
    p = expit(eta)
    expected = float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert log_likelihood(y, eta) == pytest.approx(expected, rel=1e-12)
    # a confident mistake costs its logit, not an infinity
    assert log_likelihood(np.array([0.0]), np.array([800.0])) == pytest.approx(-800.0)


def _lr(y: np.ndarray, full: np.ndarray, reduced: np.ndarray, df: int) -> float:
    """Likelihood-ratio p-value computed independently (from probabilities, not from the module)."""

    def ll(p: np.ndarray) -> float:
        return float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))

    return float(chi2.sf(2 * (ll(full) - ll(reduced)), df))


@pytest.mark.parametrize(
    ("true_intercept", "true_slope", "base", "expected"),
    [
        (0.0, 1.0, 0.0, "base"),  # the base model is right: nothing fitted on the labels
        (-1.5, 1.0, 0.0, "intercept"),  # only the prevalence moved, and the base does not know it
        (-1.5, 1.0, -1.5, "base"),  # ... the base already moved it (a label-free adjustment)
        (0.0, 0.35, 0.0, "logistic"),  # the model is far too confident here
    ],
)
def test_closed_test_keeps_the_simplest_model_its_tests_do_not_reject(
    true_intercept: float, true_slope: float, base: float, expected: str
) -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(-0.5, 2.0, 400)
    y = (rng.random(z.size) < expit(true_intercept + true_slope * z)).astype(float)
    result = closed_test(z, y, base)
    assert result.selected == expected
    a1, _ = fit_logistic(z, y, slope=False)
    a2, b2 = fit_logistic(z, y)
    full = expit(a2 + b2 * z)
    # every test against the most extensive update, computed independently
    p_base = _lr(y, full, expit(base + z), 2)
    p_intercept = _lr(y, full, expit(a1 + z), 1)
    assert result.tests[0]["model"] == "base" and result.tests[0]["p_value"] == pytest.approx(p_base)
    if expected == "base":
        assert p_base >= 0.05 and len(result.tests) == 1
        assert (result.intercept, result.slope) == (pytest.approx(base), 1.0)
    else:
        assert p_base < 0.05 and result.tests[1]["p_value"] == pytest.approx(p_intercept)
        chosen = (a1, 1.0) if expected == "intercept" else (a2, b2)
        assert (result.intercept, result.slope) == (pytest.approx(chosen[0]), pytest.approx(chosen[1]))
    # the plain fits are recorded whatever was chosen
    assert result.fits["logistic"]["slope"] == pytest.approx(b2)
    assert result.to_dict()["selected"] == expected


def test_closed_test_without_a_usable_slope_tests_the_base_against_the_intercept() -> None:
    z = np.array([-2.0, -1.5, -1.0, 1.0, 1.5, 2.0])
    y = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])  # separated: the logistic slope is unbounded
    result = closed_test(z, y, base_intercept=-4.0)
    assert "logistic" not in result.fits
    assert [t["df"] for t in result.tests] == [1]
    assert result.selected in {"base", "intercept"}
    with pytest.raises(ValueError, match="both classes"):
        closed_test(z, np.zeros(6), 0.0)
