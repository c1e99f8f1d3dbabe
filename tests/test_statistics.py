"""Intervals, curves, calibration and subgroup statistics, each checked against an independent computation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fairlearn.metrics import equalized_odds_difference
from scipy.stats import binomtest, norm
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from mmdx.metrics import (
    MetricInputError,
    auprc,
    auroc,
    brier,
    expected_calibration_error,
    operating_point_metrics,
)
from mmdx.statistics import (
    IntervalMethod,
    bootstrap_ci,
    calibration_slope_intercept,
    decision_curve,
    group_gaps,
    operating_point_cis,
    paired_bootstrap_difference,
    pr_curve_points,
    reliability_curve,
    roc_curve_points,
    subgroup_table,
    wilson_interval,
)


def binormal(n_pos: int, n_neg: int, d: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Scores N(d, 1) for positives and N(0, 1) for negatives, mapped into (0, 1) by the normal CDF.

    The mapping is monotone, so the population AUROC stays Phi(d / sqrt(2)).
    """
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    scores = rng.normal(size=n_pos + n_neg) + d * y
    return y, norm.cdf(scores)


def calibrated(n: int, seed: int, spread: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Predictions that are calibrated by construction: y ~ Bernoulli(p)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / (1.0 + np.exp(-rng.normal(-0.5, spread, size=n)))
    return (rng.random(n) < p).astype(int), p


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def expit(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


# --------------------------------------------------------------------------------------------------------
# bootstrap


def test_bootstrap_ci_covers_the_true_auroc_about_95_percent_of_the_time() -> None:
    d = 1.0
    true_auroc = norm.cdf(d / math.sqrt(2))
    rng = np.random.default_rng(2024)
    covered = 0
    n_simulations = 200
    for seed in range(n_simulations):
        y, p = binormal(60, 140, d, rng)
        interval = bootstrap_ci(auroc, y, p, n_resamples=200, seed=seed)
        covered += interval.low <= true_auroc <= interval.high
    assert 0.88 <= covered / n_simulations <= 0.99


@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_bootstrap_interval_of_a_mean_matches_normal_theory(alpha: float) -> None:
    # the bootstrap distribution of a mean of n values is close to N(mean, sd / sqrt(n))
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.5).astype(int)
    p = rng.random(400)
    mean_probability = lambda labels, probs: float(np.mean(probs))  # noqa: E731
    interval = bootstrap_ci(mean_probability, y, p, n_resamples=4000, alpha=alpha, stratified=False)
    half_width = norm.ppf(1 - alpha / 2) * p.std() / math.sqrt(p.size)
    assert interval.estimate == pytest.approx(p.mean())
    assert interval.low == pytest.approx(p.mean() - half_width, abs=0.06 * half_width)
    assert interval.high == pytest.approx(p.mean() + half_width, abs=0.06 * half_width)


def test_stratified_bootstrap_keeps_class_counts_fixed() -> None:
    y, p = binormal(30, 70, 1.0, np.random.default_rng(0))
    count_positives = lambda labels, probs: float(np.sum(labels))  # noqa: E731
    stratified = bootstrap_ci(count_positives, y, p, n_resamples=300, stratified=True)
    assert stratified.low == stratified.high == 30
    assert stratified.method == IntervalMethod.BOOTSTRAP_STRATIFIED
    plain = bootstrap_ci(count_positives, y, p, n_resamples=300, stratified=False)
    assert plain.low < 30 < plain.high
    assert plain.method == IntervalMethod.BOOTSTRAP


@pytest.mark.parametrize("metric", [auroc, auprc, brier, expected_calibration_error])
@pytest.mark.parametrize("stratified", [True, False])
def test_vectorised_bootstrap_equals_evaluating_each_replicate(metric, stratified: bool) -> None:
    y, p = binormal(25, 55, 0.8, np.random.default_rng(1))
    p = np.round(p, 1)  # ties
    fast = bootstrap_ci(metric, y, p, n_resamples=150, stratified=stratified, seed=7)
    # a lambda is not recognised as vectorisable, so each replicate is computed from its resampled cases
    slow = bootstrap_ci(lambda a, b: metric(a, b), y, p, n_resamples=150, stratified=stratified, seed=7)
    assert fast.estimate == slow.estimate
    assert fast.low == pytest.approx(slow.low, abs=1e-12)
    assert fast.high == pytest.approx(slow.high, abs=1e-12)
    assert fast.n_valid == slow.n_valid


def test_bootstrap_is_reproducible_from_its_seed() -> None:
    y, p = binormal(40, 60, 1.0, np.random.default_rng(2))
    first = bootstrap_ci(auroc, y, p, n_resamples=200, seed=11)
    assert bootstrap_ci(auroc, y, p, n_resamples=200, seed=11) == first
    assert bootstrap_ci(auroc, y, p, n_resamples=200, seed=12) != first
    assert first.low < first.estimate == auroc(y, p) < first.high


def test_bootstrap_alpha_widens_the_interval() -> None:
    y, p = binormal(40, 60, 1.0, np.random.default_rng(3))
    narrow = bootstrap_ci(auroc, y, p, n_resamples=400, alpha=0.2)
    wide = bootstrap_ci(auroc, y, p, n_resamples=400, alpha=0.01)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_bootstrap_of_an_undefined_metric_is_nan_with_reason() -> None:
    interval = bootstrap_ci(auroc, [1, 1, 1], [0.2, 0.5, 0.9], n_resamples=50)
    assert math.isnan(interval.estimate) and math.isnan(interval.low) and math.isnan(interval.high)
    assert "only one class" in interval.reason
    # without stratification small samples lose a class in some replicates; those are left out and counted
    y, p = np.array([0, 0, 0, 0, 0, 1]), np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.9])
    plain = bootstrap_ci(auroc, y, p, n_resamples=200, stratified=False)
    assert 0 < plain.n_valid < 200 and plain.reason is None


def test_paired_difference_of_a_model_with_itself_is_exactly_zero() -> None:
    y, p = binormal(50, 150, 1.0, np.random.default_rng(4))
    for metric in (auroc, brier, lambda a, b: auroc(a, b)):
        difference = paired_bootstrap_difference(metric, y, p, p, n_resamples=200)
        assert (difference.estimate, difference.low, difference.high) == (0.0, 0.0, 0.0)
        assert difference.p_value == 1.0


def test_paired_difference_detects_a_better_model_and_is_antisymmetric() -> None:
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(150, int), np.zeros(350, int)]
    signal = rng.normal(size=500) + 1.5 * y
    good, noisy = norm.cdf(signal), norm.cdf(signal + rng.normal(scale=1.5, size=500))
    a_minus_b = paired_bootstrap_difference(auroc, y, good, noisy, n_resamples=500, seed=3)
    assert a_minus_b.estimate == pytest.approx(auroc(y, good) - auroc(y, noisy))
    assert 0 < a_minus_b.low < a_minus_b.estimate < a_minus_b.high
    assert a_minus_b.p_value == pytest.approx(2 / 501)
    b_minus_a = paired_bootstrap_difference(auroc, y, noisy, good, n_resamples=500, seed=3)
    assert b_minus_a.estimate == pytest.approx(-a_minus_b.estimate)
    assert b_minus_a.low == pytest.approx(-a_minus_b.high) and b_minus_a.high == pytest.approx(-a_minus_b.low)
    assert b_minus_a.p_value == a_minus_b.p_value


def test_paired_difference_is_not_significant_between_exchangeable_models() -> None:
    rng = np.random.default_rng(6)
    y = np.r_[np.ones(100, int), np.zeros(100, int)]
    signal = rng.normal(size=200) + 1.0 * y
    first = norm.cdf(signal + rng.normal(size=200))
    second = norm.cdf(signal + rng.normal(size=200))
    difference = paired_bootstrap_difference(auroc, y, first, second, n_resamples=400)
    assert difference.low < 0 < difference.high
    assert difference.p_value > 0.05


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_resamples": 0}, "n_resamples"),
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": 0}, "alpha"),
    ],
)
def test_bootstrap_parameter_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(MetricInputError, match=match):
        bootstrap_ci(auroc, [0, 1], [0.2, 0.7], **kwargs)


def test_paired_difference_validates_both_models() -> None:
    with pytest.raises(MetricInputError, match="NaN"):
        paired_bootstrap_difference(auroc, [0, 1], [0.2, 0.7], [0.2, float("nan")])


# --------------------------------------------------------------------------------------------------------
# Wilson intervals at an operating point


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    # Newcombe (1998), Stat Med 17:857-872, Table I, method 3 (score interval without continuity correction)
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_matches_textbook_values(successes: int, n: int, low: float, high: float) -> None:
    assert wilson_interval(successes, n) == pytest.approx((low, high), abs=5e-5)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
@pytest.mark.parametrize(("successes", "n"), [(0, 1), (3, 7), (7, 7), (50, 120), (999, 1000)])
def test_wilson_matches_scipy(successes: int, n: int, alpha: float) -> None:
    expected = binomtest(successes, n).proportion_ci(confidence_level=1 - alpha, method="wilson")
    assert wilson_interval(successes, n, alpha) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_wilson_edge_cases() -> None:
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(MetricInputError, match="successes must be <= n"):
        wilson_interval(5, 3)


def test_operating_point_cis_use_the_point_estimates_and_wilson() -> None:
    rng = np.random.default_rng(7)
    y, p = binormal(80, 220, 1.2, rng)
    cis = operating_point_cis(y, p, 0.6)
    point = operating_point_metrics(y, p, 0.6)
    counts = {
        "sensitivity": (point["tp"], point["tp"] + point["fn"]),
        "specificity": (point["tn"], point["tn"] + point["fp"]),
        "ppv": (point["tp"], point["tp"] + point["fp"]),
        "npv": (point["tn"], point["tn"] + point["fn"]),
        "fpr": (point["fp"], point["fp"] + point["tn"]),
    }
    assert set(cis) == set(counts)
    for key, (successes, n) in counts.items():
        assert cis[key].estimate == point[key]
        assert (cis[key].low, cis[key].high) == wilson_interval(successes, n)
        assert cis[key].low <= cis[key].estimate <= cis[key].high
        assert cis[key].method == IntervalMethod.WILSON


def test_operating_point_cis_undefined_proportion() -> None:
    cis = operating_point_cis([0, 1, 0], [0.1, 0.2, 0.3], threshold=0.9)
    assert math.isnan(cis["ppv"].estimate) and math.isnan(cis["ppv"].low)
    assert "predicted positive" in cis["ppv"].reason
    assert cis["npv"].estimate == pytest.approx(2 / 3)


# --------------------------------------------------------------------------------------------------------
# curves


def test_roc_curve_is_exact_when_small() -> None:
    rng = np.random.default_rng(8)
    y, p = binormal(20, 30, 1.0, rng)
    p = np.round(p, 1)
    curve = roc_curve_points(y, p)
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    np.testing.assert_allclose(curve.fpr, fpr)
    np.testing.assert_allclose(curve.tpr, tpr)
    np.testing.assert_allclose(curve.thresholds[1:], thresholds[1:])
    assert curve.thresholds[0] == math.inf
    assert curve.auroc == pytest.approx(roc_auc_score(y, p))


def test_roc_curve_downsampled_keeps_end_points_and_shape() -> None:
    y, p = binormal(1000, 1500, 1.0, np.random.default_rng(9))
    curve = roc_curve_points(y, p, max_points=200)
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    assert curve.n_points_exact == fpr.size > 200
    assert 50 <= curve.fpr.size <= 200
    assert (curve.fpr[0], curve.tpr[0], curve.fpr[-1], curve.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    exact = set(zip(fpr.round(12), tpr.round(12), strict=True))
    assert all(point in exact for point in zip(curve.fpr.round(12), curve.tpr.round(12), strict=True))
    assert np.all(np.diff(curve.fpr) >= 0) and np.all(np.diff(curve.tpr) >= 0)
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(roc_auc_score(y, p), abs=0.005)


def test_pr_curve_matches_sklearn() -> None:
    y, p = binormal(30, 70, 1.0, np.random.default_rng(10))
    p = np.round(p, 2)
    curve = pr_curve_points(y, p)
    precision, recall, thresholds = precision_recall_curve(y, p, drop_intermediate=False)
    # sklearn lists increasing thresholds and appends the conventional point (recall 0, precision 1)
    np.testing.assert_allclose(curve.precision, precision[:-1][::-1])
    np.testing.assert_allclose(curve.recall, recall[:-1][::-1])
    np.testing.assert_allclose(curve.thresholds, thresholds[::-1])
    assert curve.average_precision == pytest.approx(average_precision_score(y, p))
    assert curve.precision[-1] == curve.prevalence == pytest.approx(y.mean())


def test_pr_curve_downsampled_keeps_end_points() -> None:
    y, p = binormal(800, 1200, 1.0, np.random.default_rng(11))
    curve = pr_curve_points(y, p, max_points=120)
    precision, recall, _ = precision_recall_curve(y, p, drop_intermediate=False)
    assert curve.recall.size <= 120 < curve.n_points_exact
    assert (curve.recall[0], curve.precision[0]) == (recall[-2], precision[-2])
    assert (curve.recall[-1], curve.precision[-1]) == (1.0, pytest.approx(0.4))


def test_curves_need_their_classes() -> None:
    with pytest.raises(MetricInputError, match="both classes"):
        roc_curve_points([1, 1], [0.2, 0.4])
    with pytest.raises(MetricInputError, match="positive"):
        pr_curve_points([0, 0], [0.2, 0.4])
    with pytest.raises(MetricInputError, match="max_points"):
        roc_curve_points([0, 1], [0.2, 0.4], max_points=1)


def test_decision_curve_against_hand_computation() -> None:
    y = np.array([1, 1, 0, 0, 0, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.6, 0.3, 0.2, 0.2, 0.1, 0.05, 0.5, 0.0])
    curve = decision_curve(y, p, thresholds=[0.0, 0.25, 0.5, 0.6])
    # pt = 0.25: treated p >= .25 -> tp 2 (0.9, 0.6), fp 3 (0.6, 0.3, 0.5); odds 1/3
    # pt = 0.5: tp 2, fp 2 (0.6, 0.5); odds 1.  pt = 0.6: tp 2, fp 1; odds 1.5
    expected_model = [0.3, 0.2 - 0.3 / 3, 0.2 - 0.2, 0.2 - 0.1 * 1.5]
    np.testing.assert_allclose(curve.model, expected_model)
    np.testing.assert_allclose(curve.treat_all, [0.3, 0.3 - 0.7 / 3, 0.3 - 0.7, 0.3 - 0.7 * 1.5])
    assert curve.treat_none.tolist() == [0.0] * 4


def test_decision_curve_treat_all_at_zero_equals_prevalence() -> None:
    y, p = binormal(45, 155, 1.0, np.random.default_rng(12))
    curve = decision_curve(y, p)
    assert curve.thresholds.size == 100 and curve.thresholds[0] == 0.0 and curve.thresholds[-1] == 0.99
    assert curve.treat_all[0] == pytest.approx(45 / 200) == curve.prevalence
    assert curve.model[0] == pytest.approx(curve.treat_all[0])  # at pt = 0 the model treats everyone
    json.dumps(curve.to_dict(), allow_nan=False)


@pytest.mark.parametrize("thresholds", [[0.1, 1.0], [-0.1], [], [[0.1]], [float("nan")]])
def test_decision_curve_rejects_bad_thresholds(thresholds) -> None:
    with pytest.raises(MetricInputError, match="thresholds"):
        decision_curve([0, 1], [0.2, 0.7], thresholds)


# --------------------------------------------------------------------------------------------------------
# calibration


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_curve_against_a_loop(strategy: str) -> None:
    y, p = calibrated(500, seed=13)
    curve = reliability_curve(y, p, n_bins=8, strategy=strategy)
    edges = np.linspace(0, 1, 9) if strategy == "uniform" else np.unique(np.quantile(p, np.linspace(0, 1, 9)))
    rows = []
    for k in range(edges.size - 1):
        member = (p > edges[k]) & (p <= edges[k + 1]) | ((p == edges[0]) & (k == 0))
        if member.any():
            rows.append((edges[k], member.sum(), y[member].sum(), p[member].mean(), y[member].mean()))
    assert curve.count.sum() == 500
    np.testing.assert_allclose(curve.bin_low, [r[0] for r in rows])
    np.testing.assert_array_equal(curve.count, [r[1] for r in rows])
    np.testing.assert_array_equal(curve.n_positive, [r[2] for r in rows])
    np.testing.assert_allclose(curve.mean_predicted, [r[3] for r in rows])
    np.testing.assert_allclose(curve.observed_frequency, [r[4] for r in rows])
    for low, high, positives, count in zip(
        curve.ci_low, curve.ci_high, curve.n_positive, curve.count, strict=True
    ):
        assert (low, high) == wilson_interval(int(positives), int(count))
    json.dumps(curve.to_dict(), allow_nan=False)


def test_reliability_curve_leaves_out_empty_bins() -> None:
    curve = reliability_curve([0, 1, 1], [0.05, 0.95, 0.92], n_bins=10)
    assert curve.count.tolist() == [1, 2]
    assert curve.bin_low.tolist() == pytest.approx([0.0, 0.9])


def test_calibrated_predictions_have_slope_one_and_intercept_zero() -> None:
    y, p = calibrated(20000, seed=14)
    fit = calibration_slope_intercept(y, p)
    assert fit.slope == pytest.approx(1.0, abs=0.05)
    assert fit.intercept == pytest.approx(0.0, abs=0.05)
    assert fit.reason is None


def test_overconfident_predictions_have_slope_below_one() -> None:
    y, p = calibrated(20000, seed=15)
    overconfident = expit(2.0 * logit(p))
    underconfident = expit(0.5 * logit(p))
    assert calibration_slope_intercept(y, overconfident).slope == pytest.approx(0.5, abs=0.04)
    assert calibration_slope_intercept(y, underconfident).slope == pytest.approx(2.0, abs=0.15)


def test_underestimated_risk_has_a_positive_intercept() -> None:
    y, p = calibrated(20000, seed=16)
    fit = calibration_slope_intercept(y, expit(logit(p) - 1.0))
    assert fit.intercept == pytest.approx(1.0, abs=0.06)
    assert fit.slope == pytest.approx(1.0, abs=0.05)


def test_calibration_fit_matches_sklearn_and_the_score_equation() -> None:
    rng = np.random.default_rng(17)
    y, p = calibrated(3000, seed=17)
    p = expit(1.7 * logit(p) + rng.normal(scale=0.3, size=p.size))
    fit = calibration_slope_intercept(y, p)
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(logit(p)[:, None], y)
    assert fit.slope == pytest.approx(reference.coef_[0, 0], abs=1e-5)
    assert fit.intercept_with_slope == pytest.approx(reference.intercept_[0], abs=1e-5)
    # with the slope fixed at 1 the maximum-likelihood intercept matches the mean risk to the prevalence
    assert np.mean(expit(fit.intercept + logit(p))) == pytest.approx(y.mean(), abs=1e-9)


def test_calibration_fit_undefined_cases() -> None:
    separated = calibration_slope_intercept([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.8])
    assert math.isnan(separated.slope) and "separate" in separated.reason
    assert math.isfinite(separated.intercept)
    constant = calibration_slope_intercept([0, 1, 0, 1], [0.4] * 4)
    assert math.isnan(constant.slope) and "equal" in constant.reason
    assert constant.intercept == pytest.approx(logit(np.array(0.5)) - logit(np.array(0.4)))
    one_class = calibration_slope_intercept([1, 1, 1], [0.2, 0.5, 0.9])
    assert math.isnan(one_class.slope) and math.isnan(one_class.intercept) and "one class" in one_class.reason
    extreme = calibration_slope_intercept([0, 1, 0, 1, 1, 0], [0.0, 1.0, 1.0, 0.3, 0.8, 0.2])
    assert math.isfinite(extreme.slope) and math.isfinite(extreme.intercept)


# --------------------------------------------------------------------------------------------------------
# subgroups and fairness


def subgroup_data(seed: int = 18) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = np.array(["site_a"] * 300 + ["site_b"] * 250 + ["site_c"] * 20 + ["site_d"] * 100, dtype=object)
    shift = {"site_a": 1.4, "site_b": 0.9, "site_c": 1.0, "site_d": 1.2}
    y = (rng.random(groups.size) < 0.35).astype(int)
    y[groups == "site_d"] = 0
    y[np.flatnonzero(groups == "site_d")[:3]] = 1  # only 3 positive cases
    signal = np.array([shift[g] for g in groups]) * y + rng.normal(size=groups.size)
    return y, norm.cdf(signal - 0.4), groups


def test_subgroup_table_flags_small_groups_and_matches_independent_values() -> None:
    y, p, groups = subgroup_data()
    rows = subgroup_table(y, p, groups, threshold=0.5, n_resamples=200, seed=1)
    assert [row["group"] for row in rows] == ["site_a", "site_b", "site_c", "site_d"]
    by_group = {row["group"]: row for row in rows}
    assert by_group["site_c"]["too_small"] and "n=20 < min_n=30" in by_group["site_c"]["reason"]
    assert by_group["site_d"]["too_small"] and "n_positive=3 < min_events=5" in by_group["site_d"]["reason"]
    assert not by_group["site_a"]["too_small"] and by_group["site_a"]["reason"] is None
    for group, row in by_group.items():
        member = groups == group
        gy, gp = y[member], p[member]
        predicted = gp >= 0.5
        assert row["n"] == member.sum() and row["n_positive"] == gy.sum()
        assert row["auroc"] == pytest.approx(roc_auc_score(gy, gp))
        assert row["auroc_low"] < row["auroc"] < row["auroc_high"]
        assert row["sensitivity"] == pytest.approx(predicted[gy == 1].mean())
        assert row["fpr"] == pytest.approx(predicted[gy == 0].mean())
        assert row["sensitivity_low"] <= row["sensitivity"] <= row["sensitivity_high"]
        assert row["brier"] == pytest.approx(np.mean((gp - gy) ** 2))
        assert row["ece"] == pytest.approx(expected_calibration_error(gy, gp))
        assert row["calibration_intercept"] == calibration_slope_intercept(gy, gp).intercept
    json.dumps(rows)


def test_subgroup_table_reports_a_single_class_group() -> None:
    y = np.r_[np.ones(40, int), np.zeros(60, int), np.zeros(40, int)]
    p = np.linspace(0.01, 0.99, 140)
    groups = ["x"] * 100 + ["only_negatives"] * 40
    row = {r["group"]: r for r in subgroup_table(y, p, groups, 0.5, n_resamples=50)}["only_negatives"]
    assert row["too_small"] and "n_positive=0" in row["reason"]
    assert math.isnan(row["auroc"]) and math.isnan(row["sensitivity"]) and not math.isnan(row["fpr"])
    assert "only one class" in row["undefined"]["auroc"]


def test_group_gaps_equalized_odds_agrees_with_tpr_fpr_gaps() -> None:
    y, p, groups = subgroup_data()
    gaps = group_gaps(y, p, groups, threshold=0.5)
    assert gaps.groups_compared == ("site_a", "site_b")
    assert set(gaps.groups_excluded) == {"site_c", "site_d"}
    # independent computation over the groups large enough to compare
    tpr, fpr, aurocs = {}, {}, {}
    for group in gaps.groups_compared:
        member = groups == group
        predicted = p[member] >= 0.5
        tpr[group] = predicted[y[member] == 1].mean()
        fpr[group] = predicted[y[member] == 0].mean()
        aurocs[group] = roc_auc_score(y[member], p[member])
    tpr_gap = max(tpr.values()) - min(tpr.values())
    fpr_gap = max(fpr.values()) - min(fpr.values())
    assert gaps.sensitivity_gap == pytest.approx(tpr_gap)
    assert gaps.fpr_gap == pytest.approx(fpr_gap)
    assert gaps.auroc_gap == pytest.approx(max(aurocs.values()) - min(aurocs.values()))
    assert gaps.equalized_odds_difference == pytest.approx(max(tpr_gap, fpr_gap))
    assert gaps.auroc_extremes == ("site_a", "site_b")
    kept = np.isin(groups, gaps.groups_compared)
    direct = equalized_odds_difference(y[kept], (p[kept] >= 0.5).astype(int), sensitive_features=groups[kept])
    assert gaps.equalized_odds_difference == pytest.approx(direct)
    json.dumps(gaps.to_dict(), allow_nan=False)


def test_group_gaps_with_lower_limits_compares_more_groups() -> None:
    y, p, groups = subgroup_data()
    gaps = group_gaps(y, p, groups, threshold=0.5, min_n=10, min_events=3)
    assert gaps.groups_compared == ("site_a", "site_b", "site_c", "site_d")


def test_group_gaps_needs_two_groups() -> None:
    y, p, _ = subgroup_data()
    gaps = group_gaps(y, p, ["one"] * y.size, threshold=0.5)
    assert math.isnan(gaps.auroc_gap) and math.isnan(gaps.equalized_odds_difference)
    assert "at least two" in gaps.reason
    assert gaps.to_dict()["auroc_gap"] is None


def test_results_serialise_to_strict_json() -> None:
    undefined = bootstrap_ci(auroc, [1, 1], [0.2, 0.4], n_resamples=10)
    as_json = json.loads(json.dumps(undefined.to_dict(), allow_nan=False))
    assert as_json["low"] is None and as_json["method"] == "percentile bootstrap, stratified by class"
    curve = roc_curve_points([0, 1, 0, 1], [0.1, 0.4, 0.35, 0.8]).to_dict()
    assert json.loads(json.dumps(curve, allow_nan=False))["thresholds"][0] is None  # the inf threshold
    fit = calibration_slope_intercept([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.8]).to_dict()
    assert json.loads(json.dumps(fit, allow_nan=False))["slope"] is None
