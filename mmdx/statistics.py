"""Statistical inference: intervals, curves, calibration and subgroup comparisons, for the audit report, the
training summary (how precisely a validation split fixes the calibration slope) and the benchmarks.

Built on the point metrics of :mod:`mmdx.metrics` and following its conventions: ``y_true`` [n]
0/1, ``y_prob`` [n] probabilities in [0, 1], ``y_prob >= threshold`` is positive; bad input raises
:class:`~mmdx.metrics.MetricInputError`; a statistic that valid input leaves undefined is NaN
with a ``reason``. Curves cannot be NaN: :func:`roc_curve_points` and :func:`pr_curve_points` raise
when the classes they need are absent.

Methods, as a report should state them:

* **Bootstrap intervals** (:func:`bootstrap_ci`, :func:`paired_bootstrap_difference`): percentile
  intervals of ``n_resamples`` bootstrap replicates. By default the resampling is *stratified*: positives
  and negatives are resampled separately, so every replicate keeps the observed class counts and AUROC is
  defined in each one. Replicates are reproducible from ``seed``. AUROC, average precision, Brier score
  and ECE (15 uniform bins) are computed for all replicates at once from case multiplicities; any other
  callable is evaluated replicate by replicate.
* **Proportions at a threshold** (:func:`operating_point_cis`): Wilson score intervals (Wilson 1927),
  conditional on the observed denominators (e.g. PPV treats the number of predicted positives as fixed).
* **Decision curves** (:func:`decision_curve`): net benefit of Vickers & Elkin (2006), "Decision curve
  analysis: a novel method for evaluating prediction models", Med Decis Making 26(6):565-574.
* **Calibration** (:func:`calibration_slope_intercept`): logistic recalibration, ``logit P(y=1) = a + b
  logit(p)``; the slope is ``b``; calibration-in-the-large is ``a`` refitted with ``b`` fixed at 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy.special import expit, logit

from mmdx.metrics import (
    MetricInputError,
    MetricKey,
    auroc,
    batched_metric,
    brier,
    calibration_bins,
    check_binary_inputs,
    check_groups,
    check_threshold,
    confusion_at_threshold,
    expected_calibration_error,
    json_ready,
    rates_from_counts,
    reasons_from_counts,
    size_flag,
    split_by_group,
)

# Resamples are drawn in chunks of at most this many case indices, so memory stays bounded for large n.
_CHUNK_ELEMENTS = 1 << 21
# Probabilities are clipped to [eps, 1 - eps] before the logit, so predictions of exactly 0 or 1 stay finite.
_LOGIT_EPS = 1e-9


def _as_json(result: Any) -> dict[str, Any]:
    return json_ready({f.name: getattr(result, f.name) for f in fields(result)})


class IntervalMethod(StrEnum):
    BOOTSTRAP_STRATIFIED = "percentile bootstrap, stratified by class"
    BOOTSTRAP = "percentile bootstrap"
    WILSON = "Wilson score"


@dataclass(frozen=True)
class Interval:
    """A point estimate with a ``1 - alpha`` confidence interval ``[low, high]``.

    ``n_valid`` counts the bootstrap replicates on which the statistic was defined (the percentiles use
    those only); ``p_value`` is set by :func:`paired_bootstrap_difference`; ``reason`` says why the
    interval is NaN, when it is.
    """

    estimate: float
    low: float
    high: float
    n_resamples: int
    method: str
    alpha: float = 0.05
    n_valid: int | None = None
    p_value: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON form: arrays become lists, NaN and infinity None."""
        return _as_json(self)


def _nan_interval(n_resamples: int, method: str, alpha: float, reason: str) -> Interval:
    return Interval(math.nan, math.nan, math.nan, n_resamples, method, alpha, n_valid=0, reason=reason)


# --------------------------------------------------------------------------------------------------------
# parameter checks


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 < float(alpha) < 1.0:
        raise MetricInputError(f"alpha must be in (0, 1), e.g. 0.05 for a 95% interval; received {alpha!r}.")
    return float(alpha)


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise MetricInputError(f"{name} must be an integer >= {minimum}; received {value!r}.")
    return int(value)


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


# --------------------------------------------------------------------------------------------------------
# bootstrap


def _resample_chunks(
    y: np.ndarray, n_resamples: int, stratified: bool, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Yield ``[b, n]`` arrays of case indices, ``b`` replicates at a time, ``n_resamples`` in total.

    Stratified: each row holds ``n_positive`` indices drawn with replacement from the positives, then
    ``n_negative`` drawn from the negatives.
    """
    if stratified:
        strata = [s for s in (np.flatnonzero(y == 1), np.flatnonzero(y == 0)) if s.size]
    else:
        strata = [np.arange(y.size)]
    rows = max(1, _CHUNK_ELEMENTS // y.size)
    done = 0
    while done < n_resamples:
        b = min(rows, n_resamples - done)
        yield np.concatenate([s[rng.integers(0, s.size, size=(b, s.size))] for s in strata], axis=1)
        done += b


def _replicates(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    y: np.ndarray,
    probs: Sequence[np.ndarray],
    n_resamples: int,
    stratified: bool,
    seed: int,
) -> list[np.ndarray]:
    """The metric on each bootstrap replicate, for each array in ``probs`` on the same resampled cases."""
    kernel = batched_metric(metric_fn)
    rng = np.random.default_rng(seed)
    out = [np.empty(n_resamples) for _ in probs]
    start = 0
    n = y.size
    for index in _resample_chunks(y, n_resamples, stratified, rng):
        b = index.shape[0]
        if kernel is not None:
            # how often each case was drawn in each replicate: [b, n]
            offsets = (index + n * np.arange(b)[:, None]).ravel()
            weights = np.bincount(offsets, minlength=b * n).reshape(b, n).astype(np.float64)
            for values, p in zip(out, probs, strict=True):
                values[start : start + b] = kernel(y, p, weights)
        else:
            for values, p in zip(out, probs, strict=True):
                values[start : start + b] = [float(metric_fn(y[row], p[row])) for row in index]
        start += b
    return out


def _undefined_estimate_reason(y: np.ndarray) -> str:
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        return (
            f"the statistic is undefined on the full sample: only one class is present "
            f"(n_positive={n_pos}, n_negative={y.size - n_pos})"
        )
    return "the statistic is undefined (NaN) on the full sample"


def _percentiles(values: np.ndarray, alpha: float) -> tuple[float, float]:
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def bootstrap_ci(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    y_true: Any,
    y_prob: Any,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    stratified: bool = True,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``metric_fn(y_true, y_prob)``.

    ``metric_fn`` takes ``(y_true [n], y_prob [n])`` and returns a float, e.g. :func:`~mmdx.metrics.
    auroc`. ``stratified=True`` resamples positives and negatives separately (class counts fixed in every
    replicate). The interval spans the ``alpha/2`` and ``1 - alpha/2`` quantiles of the replicates on which
    the metric is defined; NaN with a reason when it is undefined on the full sample or on every replicate.
    """
    y, p = check_binary_inputs(y_true, y_prob)
    n_resamples = _check_count(n_resamples, "n_resamples", 1)
    alpha = _check_alpha(alpha)
    method = IntervalMethod.BOOTSTRAP_STRATIFIED if stratified else IntervalMethod.BOOTSTRAP
    estimate = float(metric_fn(y, p))
    if not math.isfinite(estimate):
        return _nan_interval(n_resamples, method, alpha, _undefined_estimate_reason(y))
    (values,) = _replicates(metric_fn, y, [p], n_resamples, stratified, seed)
    valid = values[np.isfinite(values)]
    if valid.size == 0:
        reason = "the statistic is undefined on every bootstrap replicate"
        return Interval(estimate, math.nan, math.nan, n_resamples, method, alpha, n_valid=0, reason=reason)
    low, high = _percentiles(valid, alpha)
    return Interval(estimate, low, high, n_resamples, method, alpha, n_valid=int(valid.size))


def paired_bootstrap_difference(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    y_true: Any,
    prob_a: Any,
    prob_b: Any,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    stratified: bool = True,
    seed: int = 0,
) -> Interval:
    """Difference ``metric(a) - metric(b)`` of two models scored on the same cases, with a paired interval.

    Both models are evaluated on the same resampled cases in every replicate, so the interval reflects the
    correlation between them. The two-sided p-value tests "no difference" by inverting the percentile
    interval: ``p = min(1, 2 * min(#{d* <= 0} + 1, #{d* >= 0} + 1) / (B + 1))`` over the ``B`` defined
    replicates ``d*`` (the +1 keeps a finite bootstrap from claiming p = 0).
    """
    y, a = check_binary_inputs(y_true, prob_a)
    _, b = check_binary_inputs(y_true, prob_b)
    n_resamples = _check_count(n_resamples, "n_resamples", 1)
    alpha = _check_alpha(alpha)
    method = IntervalMethod.BOOTSTRAP_STRATIFIED if stratified else IntervalMethod.BOOTSTRAP
    estimate = float(metric_fn(y, a)) - float(metric_fn(y, b))
    if not math.isfinite(estimate):
        return _nan_interval(n_resamples, method, alpha, _undefined_estimate_reason(y))
    values_a, values_b = _replicates(metric_fn, y, [a, b], n_resamples, stratified, seed)
    differences = values_a - values_b
    valid = differences[np.isfinite(differences)]
    if valid.size == 0:
        reason = "the difference is undefined on every bootstrap replicate"
        return Interval(estimate, math.nan, math.nan, n_resamples, method, alpha, n_valid=0, reason=reason)
    low, high = _percentiles(valid, alpha)
    tail = min(np.count_nonzero(valid <= 0), np.count_nonzero(valid >= 0)) + 1
    p_value = min(1.0, 2.0 * float(tail) / (valid.size + 1))
    return Interval(estimate, low, high, n_resamples, method, alpha, n_valid=int(valid.size), p_value=p_value)


# --------------------------------------------------------------------------------------------------------
# proportions at an operating point


def chance_auroc(n_positive: int, n_negative: int, alpha: float = 0.05) -> float:
    """The AUROC that scores without any signal stay below with probability ``1 - alpha / 2`` on
    ``n_positive`` and ``n_negative`` cases: ``0.5 + z * sqrt((n + 1) / (12 * n_positive * n_negative))``, the
    normal approximation to the Mann-Whitney statistic under no association (its exact null variance, no
    ties). NaN when a class is absent."""
    if n_positive < 1 or n_negative < 1:
        return math.nan
    n = n_positive + n_negative
    return 0.5 + _z(_check_alpha(alpha)) * math.sqrt((n + 1) / (12.0 * n_positive * n_negative))


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``successes / n``; ``(nan, nan)`` when ``n == 0``.

    ``(p + z^2/2n -/+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``z`` the ``1 - alpha/2`` normal
    quantile. Unlike the Wald interval it stays inside [0, 1] and keeps its coverage near 0 and 1.
    """
    n = _check_count(n, "n", 0)
    successes = _check_count(successes, "successes", 0)
    if successes > n:
        raise MetricInputError(f"successes must be <= n; received successes={successes}, n={n}.")
    alpha = _check_alpha(alpha)
    if n == 0:
        return math.nan, math.nan
    z = _z(alpha)
    proportion = successes / n
    denominator = 1.0 + z * z / n
    centre = (proportion + z * z / (2 * n)) / denominator
    half = z * math.sqrt(proportion * (1 - proportion) / n + z * z / (4 * n * n)) / denominator
    # at 0 or n successes the bound equals the proportion exactly; keep it exact despite rounding
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def operating_point_cis(
    y_true: Any, y_prob: Any, threshold: float, alpha: float = 0.05
) -> dict[MetricKey, Interval]:
    """Sensitivity, specificity, PPV, NPV and FPR at ``threshold``, each with a Wilson score interval.

    Each proportion's denominator is taken as observed (e.g. PPV's is the number predicted positive). An
    undefined proportion (zero denominator) is a NaN interval with a reason.
    """
    y, p = check_binary_inputs(y_true, y_prob)
    threshold = check_threshold(threshold)
    alpha = _check_alpha(alpha)
    counts = confusion_at_threshold(y, p, threshold)
    tp, fp, tn, fn = (counts[k] for k in (MetricKey.TP, MetricKey.FP, MetricKey.TN, MetricKey.FN))
    rates = rates_from_counts(tp, fp, tn, fn)
    reasons = reasons_from_counts(tp, fp, tn, fn)
    fractions = {
        MetricKey.SENSITIVITY: (tp, tp + fn),
        MetricKey.SPECIFICITY: (tn, tn + fp),
        MetricKey.PPV: (tp, tp + fp),
        MetricKey.NPV: (tn, tn + fn),
        MetricKey.FPR: (fp, fp + tn),
    }
    out: dict[MetricKey, Interval] = {}
    for key, (successes, n) in fractions.items():
        if n == 0:
            out[key] = Interval(
                math.nan, math.nan, math.nan, 0, IntervalMethod.WILSON, alpha, reason=reasons[key]
            )
        else:
            low, high = wilson_interval(successes, n, alpha)
            out[key] = Interval(rates[key], low, high, 0, IntervalMethod.WILSON, alpha)
    return out


# --------------------------------------------------------------------------------------------------------
# curves


def _check_max_points(max_points: Any) -> int:
    return _check_count(max_points, "max_points", 2)


def _plot_points(x: np.ndarray, y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` points that draw the polyline ``(x, y)``, end points included.

    Interior points on a straight line between their neighbours are dropped first (they change nothing
    in the drawing); if too many remain, points are kept at equal steps of path length, so corners and
    long segments keep their share of the budget.
    """
    if x.size <= max_points:
        return np.arange(x.size)
    dx1, dy1 = np.diff(x)[:-1], np.diff(y)[:-1]
    dx2, dy2 = np.diff(x)[1:], np.diff(y)[1:]
    bends = np.abs(dx1 * dy2 - dy1 * dx2) > 1e-12
    keep = np.r_[0, np.flatnonzero(bends) + 1, x.size - 1]
    if keep.size <= max_points:
        return keep
    xs, ys = x[keep], y[keep]
    path = np.r_[0.0, np.cumsum(np.hypot(np.diff(xs), np.diff(ys)))]
    # consecutive points are distinct, so path length strictly increases: target 0 picks the first point,
    # the full length the last, and the unique picks number at most max_points
    wanted = np.searchsorted(path, np.linspace(0.0, path[-1], max_points), side="left")
    return keep[np.unique(np.clip(wanted, 0, keep.size - 1))]


def _counts_by_threshold(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(thresholds, tp, fp)`` at each distinct score, thresholds decreasing; positive when ``p >= t``."""
    order = np.argsort(-p, kind="stable")
    scores = p[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tp = np.cumsum(y[order])[last_of_run].astype(np.float64)
    fp = np.cumsum(1 - y[order])[last_of_run].astype(np.float64)
    return scores[last_of_run], tp, fp


@dataclass(frozen=True, eq=False)
class RocCurve:
    """ROC curve points ``[k]``; the first is ``(0, 0)`` at threshold ``inf`` (None in :meth:`to_dict`), the
    last ``(1, 1)``.

    ``n_points_exact`` is the number of points before downsampling; ``auroc`` is the exact area.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auroc: float
    n_points_exact: int

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON form: arrays become lists, NaN and infinity None."""
        return _as_json(self)


def roc_curve_points(y_true: Any, y_prob: Any, max_points: int = 200) -> RocCurve:
    """The ROC curve at every distinct score, downsampled to ``<= max_points`` for plotting.

    Exact end points are kept: ``(0, 0)`` (threshold ``inf``: nothing positive) and ``(1, 1)``. Needs both
    classes; raises :class:`MetricInputError` otherwise.
    """
    y, p = check_binary_inputs(y_true, y_prob)
    max_points = _check_max_points(max_points)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise MetricInputError(
            f"an ROC curve needs both classes; received n_positive={n_pos}, n_negative={n_neg}."
        )
    thresholds, tp, fp = _counts_by_threshold(y, p)
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    thresholds = np.r_[np.inf, thresholds]
    keep = _plot_points(fpr, tpr, max_points)
    return RocCurve(fpr[keep], tpr[keep], thresholds[keep], auroc(y, p), int(fpr.size))


@dataclass(frozen=True, eq=False)
class PrCurve:
    """Precision-recall points ``[k]`` in order of decreasing threshold (increasing recall).

    The last point is recall 1 at the lowest score, where precision equals the prevalence; ``prevalence``
    is the curve of a model without skill. ``average_precision`` is the exact step-wise area.
    """

    recall: np.ndarray
    precision: np.ndarray
    thresholds: np.ndarray
    average_precision: float
    prevalence: float
    n_points_exact: int

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON form: arrays become lists, NaN and infinity None."""
        return _as_json(self)


def pr_curve_points(y_true: Any, y_prob: Any, max_points: int = 200) -> PrCurve:
    """The precision-recall curve at every distinct score, downsampled to ``<= max_points`` for plotting.

    The points at the highest and the lowest threshold are kept exactly. Needs a positive case; raises
    :class:`MetricInputError` otherwise.
    """
    y, p = check_binary_inputs(y_true, y_prob)
    max_points = _check_max_points(max_points)
    n_pos = int(y.sum())
    if n_pos == 0:
        raise MetricInputError("a precision-recall curve needs at least one positive case; received none.")
    thresholds, tp, fp = _counts_by_threshold(y, p)
    recall = tp / n_pos
    precision = tp / (tp + fp)
    average_precision = float(np.sum(np.diff(recall, prepend=0.0) * precision))
    keep = _plot_points(recall, precision, max_points)
    return PrCurve(
        recall[keep], precision[keep], thresholds[keep], average_precision, n_pos / y.size, int(recall.size)
    )


@dataclass(frozen=True, eq=False)
class DecisionCurve:
    """Net benefit per threshold probability ``[k]`` of the model and of the two default strategies."""

    thresholds: np.ndarray
    model: np.ndarray
    treat_all: np.ndarray
    treat_none: np.ndarray
    prevalence: float

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON form: arrays become lists, NaN and infinity None."""
        return _as_json(self)


def decision_curve(y_true: Any, y_prob: Any, thresholds: Any = None) -> DecisionCurve:
    """Decision curve analysis (Vickers & Elkin, Med Decis Making 2006;26:565-574).

    At threshold probability ``pt`` (treat when ``y_prob >= pt``), net benefit is
    ``TP/n - FP/n * pt / (1 - pt)``: true positives, less false positives weighted by the odds at which a
    clinician is indifferent between treating and not. Treat-all is ``prevalence - (1 - prevalence) * pt /
    (1 - pt)`` and treat-none is 0. ``thresholds`` [k] in [0, 1) default to 0.00, 0.01, ..., 0.99.
    """
    y, p = check_binary_inputs(y_true, y_prob)
    if thresholds is None:
        pt = np.arange(100) / 100.0
    else:
        pt = np.asarray(thresholds, dtype=np.float64)
        if pt.ndim != 1 or pt.size == 0:
            raise MetricInputError(f"thresholds must be a non-empty 1-D array; received shape {pt.shape}.")
        outside = pt[~((pt >= 0.0) & (pt < 1.0))]  # NaN fails both comparisons, so it is caught too
        if outside.size:
            examples = ", ".join(f"{v:g}" for v in outside[:5].tolist())
            raise MetricInputError(
                f"decision-curve thresholds must lie in [0, 1) (net benefit divides by 1 - pt); received "
                f"{outside.size} outside it ({examples})."
            )
    n = y.size
    positives = np.sort(p[y == 1])
    negatives = np.sort(p[y == 0])
    tp = positives.size - np.searchsorted(positives, pt, side="left")
    fp = negatives.size - np.searchsorted(negatives, pt, side="left")
    odds = pt / (1.0 - pt)
    prevalence = positives.size / n
    return DecisionCurve(
        thresholds=pt,
        model=tp / n - fp / n * odds,
        treat_all=prevalence - (1.0 - prevalence) * odds,
        treat_none=np.zeros_like(pt),
        prevalence=prevalence,
    )


# --------------------------------------------------------------------------------------------------------
# calibration


@dataclass(frozen=True, eq=False)
class ReliabilityCurve:
    """Per non-empty bin ``[k]``: bounds, mean predicted probability, observed frequency with its Wilson
    interval, number of cases and of positives."""

    bin_low: np.ndarray
    bin_high: np.ndarray
    mean_predicted: np.ndarray
    observed_frequency: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    count: np.ndarray
    n_positive: np.ndarray
    strategy: str
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON form: arrays become lists, NaN and infinity None."""
        return _as_json(self)


def reliability_curve(
    y_true: Any, y_prob: Any, n_bins: int = 10, strategy: str = "uniform", alpha: float = 0.05
) -> ReliabilityCurve:
    """Reliability diagram data on the bins of :func:`~mmdx.metrics.calibration_bins`.

    Empty bins are left out. The observed frequency of each bin comes with a Wilson score interval.
    """
    y, p = check_binary_inputs(y_true, y_prob)
    alpha = _check_alpha(alpha)
    edges, bin_index = calibration_bins(p, n_bins, strategy)
    n_edges = edges.size - 1
    count = np.bincount(bin_index, minlength=n_edges)
    n_positive = np.bincount(bin_index, weights=y, minlength=n_edges).round().astype(np.int64)
    sum_predicted = np.bincount(bin_index, weights=p, minlength=n_edges)
    used = np.flatnonzero(count)
    intervals = [wilson_interval(int(n_positive[k]), int(count[k]), alpha) for k in used]
    return ReliabilityCurve(
        bin_low=edges[used],
        bin_high=edges[used + 1],
        mean_predicted=sum_predicted[used] / count[used],
        observed_frequency=n_positive[used] / count[used],
        ci_low=np.array([lo for lo, _ in intervals]),
        ci_high=np.array([hi for _, hi in intervals]),
        count=count[used],
        n_positive=n_positive[used],
        strategy=strategy,
        alpha=alpha,
    )


@dataclass(frozen=True)
class CalibrationFit:
    """Logistic recalibration ``logit P(y=1) = intercept_with_slope + slope * logit(p)``.

    ``intercept`` is calibration-in-the-large: the intercept refitted with the slope fixed at 1 (an
    offset), i.e. the shift in log-odds that makes the mean prediction match the prevalence. Perfect
    calibration: slope 1, intercept 0. Slope < 1: predictions too extreme (overfitting); slope > 1: too
    modest; intercept > 0: risks underestimated on average. NaN fields have a ``reason``.
    """

    slope: float
    intercept: float
    intercept_with_slope: float
    n: int
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON form: arrays become lists, NaN and infinity None."""
        return _as_json(self)


def _fit_logistic(
    design: np.ndarray, y: np.ndarray, offset: np.ndarray, max_iter: int = 100, tol: float = 1e-10
) -> np.ndarray | None:
    """Maximum-likelihood coefficients of ``logit P(y=1) = design @ beta + offset``; None if not converged.

    Newton-Raphson with step halving, so the log-likelihood never decreases.
    """

    def log_likelihood(beta: np.ndarray) -> float:
        eta = design @ beta + offset
        return float(np.sum(y * eta - np.logaddexp(0.0, eta)))

    beta = np.zeros(design.shape[1])
    current = log_likelihood(beta)
    for _ in range(max_iter):
        mu = expit(design @ beta + offset)
        gradient = design.T @ (y - mu)
        hessian = design.T @ (design * (mu * (1.0 - mu))[:, None])
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            return None
        scale = 1.0
        while True:
            candidate = beta + scale * step
            value = log_likelihood(candidate)
            if value >= current - 1e-12 * abs(current):
                break
            scale /= 2.0
            if scale < 1e-10:  # no ascent direction left: an optimum if the gradient vanishes
                return beta if np.max(np.abs(gradient)) < 1e-8 * y.size else None
        beta, current = candidate, value
        if np.max(np.abs(scale * step)) < tol * (1.0 + np.max(np.abs(beta))):
            return beta
    return None


def calibration_slope_intercept(y_true: Any, y_prob: Any) -> CalibrationFit:
    """Calibration slope and intercept by logistic recalibration on ``logit(y_prob)``.

    Probabilities are clipped to ``[1e-9, 1 - 1e-9]`` before the logit. The slope is NaN when the
    predictions separate the classes perfectly (its maximum-likelihood value is infinite) or are all
    equal; both are NaN when only one class is present.
    """
    y, p = check_binary_inputs(y_true, y_prob)
    n = int(y.size)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == n:
        reason = f"only one class is present (n_positive={n_pos}, n_negative={n - n_pos})"
        return CalibrationFit(math.nan, math.nan, math.nan, n, reason)
    x = logit(np.clip(p, _LOGIT_EPS, 1.0 - _LOGIT_EPS))
    target = y.astype(np.float64)
    offset_fit = _fit_logistic(np.ones((n, 1)), target, offset=x)
    intercept = float(offset_fit[0]) if offset_fit is not None else math.nan
    reason = None if offset_fit is not None else "the intercept fit did not converge"
    positives, negatives = x[y == 1], x[y == 0]
    if np.ptp(x) == 0.0:
        slope_reason = "all predictions are equal, so the slope is not identifiable"
    elif positives.min() >= negatives.max() or negatives.min() >= positives.max():
        slope_reason = "the predictions separate the classes perfectly, so the slope is unbounded"
    else:
        slope_reason = None
    slope = intercept_with_slope = math.nan
    if slope_reason is None:
        fit = _fit_logistic(np.column_stack([np.ones(n), x]), target, offset=np.zeros(n))
        if fit is None:
            slope_reason = "the slope fit did not converge"
        else:
            intercept_with_slope, slope = float(fit[0]), float(fit[1])
    if slope_reason is not None:
        reason = f"{reason}; {slope_reason}" if reason else slope_reason
    return CalibrationFit(slope, intercept, intercept_with_slope, n, reason)


# --------------------------------------------------------------------------------------------------------
# subgroups and fairness


def subgroup_table(
    y_true: Any,
    y_prob: Any,
    groups: Sequence[Any] | np.ndarray,
    threshold: float,
    min_n: int = 30,
    min_events: int = 5,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> list[dict[MetricKey, Any]]:
    """One row per subgroup (sorted by name): size, discrimination, error rates and calibration.

    Row keys: ``group, n, n_positive, n_negative, prevalence, auroc, auroc_low, auroc_high`` (stratified
    percentile bootstrap, ``n_resamples`` replicates from ``seed``), ``sensitivity, sensitivity_low,
    sensitivity_high, fpr, fpr_low, fpr_high`` (Wilson, at ``threshold``), ``ece`` (15 uniform bins),
    ``brier, calibration_intercept, calibration_slope, too_small, reason, undefined``. A group with fewer
    than ``min_n`` cases or fewer than ``min_events`` positives or negatives is kept and flagged
    ``too_small=True`` with the ``reason``; :func:`group_gaps` leaves it out of comparisons.
    """
    threshold = check_threshold(threshold)
    min_n = _check_count(min_n, "min_n", 0)
    min_events = _check_count(min_events, "min_events", 0)
    n_resamples = _check_count(n_resamples, "n_resamples", 1)
    alpha = _check_alpha(alpha)
    rows: list[dict[MetricKey, Any]] = []
    for group, gy, gp in split_by_group(y_true, y_prob, groups):
        n_pos = int(gy.sum())
        n_neg = int(gy.size) - n_pos
        discrimination = bootstrap_ci(auroc, gy, gp, n_resamples, alpha, stratified=True, seed=seed)
        rates = operating_point_cis(gy, gp, threshold, alpha)
        calibration = calibration_slope_intercept(gy, gp)
        undefined: dict[str, str] = {}
        if discrimination.reason:
            undefined[str(MetricKey.AUROC)] = discrimination.reason
        for key in (MetricKey.SENSITIVITY, MetricKey.FPR):
            if rates[key].reason:
                undefined[str(key)] = rates[key].reason
        if calibration.reason:
            undefined[str(MetricKey.CALIBRATION_SLOPE)] = calibration.reason
        reason = size_flag(n_pos, n_neg, min_n, min_events)
        rows.append(
            {
                MetricKey.GROUP: group,
                MetricKey.N: int(gy.size),
                MetricKey.N_POSITIVE: n_pos,
                MetricKey.N_NEGATIVE: n_neg,
                MetricKey.PREVALENCE: n_pos / gy.size,
                MetricKey.AUROC: discrimination.estimate,
                MetricKey.AUROC_LOW: discrimination.low,
                MetricKey.AUROC_HIGH: discrimination.high,
                MetricKey.SENSITIVITY: rates[MetricKey.SENSITIVITY].estimate,
                MetricKey.SENSITIVITY_LOW: rates[MetricKey.SENSITIVITY].low,
                MetricKey.SENSITIVITY_HIGH: rates[MetricKey.SENSITIVITY].high,
                MetricKey.FPR: rates[MetricKey.FPR].estimate,
                MetricKey.FPR_LOW: rates[MetricKey.FPR].low,
                MetricKey.FPR_HIGH: rates[MetricKey.FPR].high,
                MetricKey.ECE: expected_calibration_error(gy, gp),
                MetricKey.BRIER: brier(gy, gp),
                MetricKey.CALIBRATION_INTERCEPT: calibration.intercept,
                MetricKey.CALIBRATION_SLOPE: calibration.slope,
                MetricKey.TOO_SMALL: reason is not None,
                MetricKey.REASON: reason,
                MetricKey.UNDEFINED: undefined,
            }
        )
    return rows


@dataclass(frozen=True)
class GroupGaps:
    """Largest differences between the subgroups that are large enough to compare.

    Each ``*_gap`` is max - min over ``groups_compared``; ``*_extremes`` names the ``(highest, lowest)``
    groups. ``equalized_odds_difference`` is fairlearn's (``between_groups``, ``worst_case``): the larger
    of the TPR and FPR gaps at the threshold. All NaN with a ``reason`` when fewer than two groups qualify.
    """

    auroc_gap: float
    sensitivity_gap: float
    fpr_gap: float
    equalized_odds_difference: float
    auroc_extremes: tuple[str, str] | None
    sensitivity_extremes: tuple[str, str] | None
    fpr_extremes: tuple[str, str] | None
    threshold: float
    groups_compared: tuple[str, ...]
    groups_excluded: dict[str, str] = field(default_factory=dict)  # group -> why it is too small
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON form: arrays become lists, NaN and infinity None."""
        return _as_json(self)


def _gap(values: dict[str, float]) -> tuple[float, tuple[str, str]]:
    highest = max(values, key=lambda g: values[g])
    lowest = min(values, key=lambda g: values[g])
    return values[highest] - values[lowest], (highest, lowest)


def group_gaps(
    y_true: Any,
    y_prob: Any,
    groups: Sequence[Any] | np.ndarray,
    threshold: float,
    min_n: int = 30,
    min_events: int = 5,
) -> GroupGaps:
    """Max - min gaps in AUROC, sensitivity and FPR between groups that are not too small, and fairlearn's
    equalized odds difference at ``threshold`` over the same groups.

    "Too small" is as in :func:`subgroup_table` (``n < min_n`` or a class with fewer than ``min_events``
    cases); with ``min_events >= 1`` every compared group has both classes, so every rate is defined.
    """
    y, p = check_binary_inputs(y_true, y_prob)
    labels = check_groups(groups, y.size)
    threshold = check_threshold(threshold)
    min_n = _check_count(min_n, "min_n", 0)
    min_events = max(1, _check_count(min_events, "min_events", 0))
    compared: list[str] = []
    excluded: dict[str, str] = {}
    for group in sorted(set(labels.tolist())):
        gy = y[labels == group]
        reason = size_flag(int(gy.sum()), int(gy.size - gy.sum()), min_n, min_events)
        if reason is None:
            compared.append(group)
        else:
            excluded[group] = reason
    if len(compared) < 2:
        return GroupGaps(
            math.nan,
            math.nan,
            math.nan,
            math.nan,
            None,
            None,
            None,
            threshold,
            tuple(compared),
            excluded,
            reason=f"{len(compared)} group(s) large enough to compare (min_n={min_n}, "
            f"min_events={min_events}); gaps need at least two",
        )
    aurocs, sensitivities, fprs = {}, {}, {}
    for group in compared:
        member = labels == group
        gy, predicted = y[member], p[member] >= threshold
        aurocs[group] = auroc(gy, p[member])
        sensitivities[group] = float(np.mean(predicted[gy == 1]))
        fprs[group] = float(np.mean(predicted[gy == 0]))
    from fairlearn.metrics import equalized_odds_difference  # heavy import, needed only here

    kept = np.isin(labels, compared)
    eod = float(
        equalized_odds_difference(
            y[kept], (p[kept] >= threshold).astype(np.int64), sensitive_features=labels[kept].astype(str)
        )
    )
    auroc_gap, auroc_extremes = _gap(aurocs)
    sensitivity_gap, sensitivity_extremes = _gap(sensitivities)
    fpr_gap, fpr_extremes = _gap(fprs)
    return GroupGaps(
        auroc_gap,
        sensitivity_gap,
        fpr_gap,
        eod,
        auroc_extremes,
        sensitivity_extremes,
        fpr_extremes,
        threshold,
        tuple(compared),
        excluded,
    )
