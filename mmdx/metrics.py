"""Point metrics of a binary classifier: discrimination, calibration and the operating point.

This module is the one home of every number mmdx reports about predictions; the trainer uses it for early
stopping and ``mmdx evaluate``, and :mod:`mmdx.statistics` builds its intervals, curves and subgroup
tables on top of it.

Conventions shared by every function here and in :mod:`mmdx.statistics`:

* ``y_true`` is ``[n]`` labels 0/1 (int, bool, or float 0.0/1.0); ``y_prob`` is ``[n]`` predicted
  probabilities of the positive class in ``[0, 1]``. Both are validated at the boundary by
  :func:`check_binary_inputs`.
* A case is *predicted positive* when ``y_prob >= threshold``.
* **Bad input raises** :class:`MetricInputError` (an :class:`~mmdx.errors.MmdxError`): different lengths,
  an empty array, NaN or infinite probabilities, probabilities outside ``[0, 1]``, labels other than 0/1
  (a NaN label means an unlabelled case; remove those first), arrays that are not 1-D.
* **A statistic that valid input leaves undefined is** ``float("nan")``, so a report can go on: AUROC when
  only one class is present, PPV when nothing is predicted positive, and so on. :func:`undefined_reason`
  says why a given metric is NaN, and the dicts returned by :func:`binary_metrics` and
  :func:`operating_point_metrics` carry those reasons under ``"undefined"`` (metric name -> sentence).
  Results that cannot be NaN, such as a threshold chosen by :func:`choose_threshold`, raise instead.
* Dict keys are :class:`MetricKey` members (a ``StrEnum``: they compare and hash equal to plain strings).
  The dicts contain only Python ``int``/``float``/``str``/``bool``/``None`` and nested dicts, so
  ``json.dumps`` writes them; it writes NaN as ``NaN``, and :func:`json_ready` turns non-finite numbers
  into ``null`` for strict JSON readers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any

import numpy as np

from mmdx.errors import MmdxError, look_up_option


class MetricInputError(MmdxError):
    """Labels, probabilities, groups or a parameter from which the requested metric cannot be computed."""


class MetricKey(StrEnum):
    """Names of the reported numbers: keys of the metric dicts and subgroup table rows."""

    N = "n"
    N_POSITIVE = "n_positive"
    N_NEGATIVE = "n_negative"
    PREVALENCE = "prevalence"
    AUROC = "auroc"
    AUPRC = "auprc"  # average precision (step-wise area under the precision-recall curve)
    BRIER = "brier"
    ECE = "ece"
    ECE_BINS = "ece_bins"
    ECE_STRATEGY = "ece_strategy"
    THRESHOLD = "threshold"
    TP = "tp"
    FP = "fp"
    TN = "tn"
    FN = "fn"
    SENSITIVITY = "sensitivity"  # true positive rate, recall
    SPECIFICITY = "specificity"  # true negative rate
    PPV = "ppv"  # positive predictive value, precision
    NPV = "npv"  # negative predictive value
    FPR = "fpr"  # false positive rate, 1 - specificity
    FNR = "fnr"  # false negative rate, 1 - sensitivity
    ACCURACY = "accuracy"
    BALANCED_ACCURACY = "balanced_accuracy"
    F1 = "f1"
    UNDEFINED = "undefined"  # {metric name: why it is NaN}
    # subgroup statistics (mmdx.statistics)
    GROUP = "group"
    TOO_SMALL = "too_small"
    REASON = "reason"  # why a group is too small; None otherwise
    AUROC_LOW = "auroc_low"
    AUROC_HIGH = "auroc_high"
    SENSITIVITY_LOW = "sensitivity_low"
    SENSITIVITY_HIGH = "sensitivity_high"
    FPR_LOW = "fpr_low"
    FPR_HIGH = "fpr_high"
    CALIBRATION_INTERCEPT = "calibration_intercept"
    CALIBRATION_SLOPE = "calibration_slope"


BIN_STRATEGIES = ("uniform", "quantile")
#: Bins of the reported ECE (uniform); the vectorised bootstrap of ECE uses this binning.
_DEFAULT_ECE_BINS = 15
THRESHOLD_RULES = ("youden", "sensitivity", "specificity", "fixed")
#: Group label given to cases whose group value is missing (None or NaN), so they are reported, not dropped.
MISSING_GROUP = "<missing>"

# Metrics whose value depends on the threshold; undefined_reason needs one for them.
_THRESHOLD_METRICS = (
    MetricKey.SENSITIVITY,
    MetricKey.SPECIFICITY,
    MetricKey.PPV,
    MetricKey.NPV,
    MetricKey.FPR,
    MetricKey.FNR,
    MetricKey.ACCURACY,
    MetricKey.BALANCED_ACCURACY,
    MetricKey.F1,
)
_RANKING_METRICS = (MetricKey.AUROC, MetricKey.AUPRC, MetricKey.BRIER, MetricKey.ECE)


# --------------------------------------------------------------------------------------------------------
# validation at the boundary


def _as_1d_numeric(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        hint = (
            " For a two-column probability matrix pass the positive-class column, e.g. probs[:, 1]."
            if array.ndim == 2
            else ""
        )
        raise MetricInputError(
            f"{name} must be a 1-D array [n]; received an array of shape {array.shape}. "
            f"Flatten it (e.g. np.ravel) if it holds one value per case.{hint}"
        )
    if array.dtype.kind not in "biuf":
        raise MetricInputError(
            f"{name} must hold numbers; received dtype {array.dtype}. Convert it to numbers first."
        )
    return array


def _check_probabilities(probs: np.ndarray) -> np.ndarray:
    probs_f = probs.astype(np.float64)
    not_finite = ~np.isfinite(probs_f)
    if not_finite.any():
        first = int(np.flatnonzero(not_finite)[0])
        raise MetricInputError(
            f"y_prob has {int(not_finite.sum())} NaN or infinite value(s) (first at index {first}); "
            "expected a probability for every case. Check the model output for these cases."
        )
    low, high = float(probs_f.min()), float(probs_f.max())
    if low < 0.0 or high > 1.0:
        raise MetricInputError(
            f"y_prob must be probabilities in [0, 1]; received values from {low:g} to {high:g}. "
            "If these are logits, apply a sigmoid first."
        )
    return probs_f


def check_binary_inputs(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and probabilities; return them as ``(int64 [n] of 0/1, float64 [n] in [0, 1])``.

    Raises :class:`MetricInputError` naming what was received and how to fix it.
    """
    labels = _as_1d_numeric(y_true, "y_true")
    probs = _as_1d_numeric(y_prob, "y_prob")
    if labels.shape[0] != probs.shape[0]:
        raise MetricInputError(
            f"y_true and y_prob must have one value per case; received {labels.shape[0]} labels and "
            f"{probs.shape[0]} probabilities."
        )
    if labels.shape[0] == 0:
        raise MetricInputError("no cases: y_true and y_prob are empty; metrics need at least one case.")
    labels_f = labels.astype(np.float64)
    n_nan = int(np.isnan(labels_f).sum())
    if n_nan:
        raise MetricInputError(
            f"y_true has {n_nan} NaN label(s), i.e. unlabelled cases; expected only 0 and 1. "
            "Remove unlabelled cases before computing metrics."
        )
    bad = ~np.isin(labels_f, (0.0, 1.0))
    if bad.any():
        examples = ", ".join(repr(v) for v in np.unique(labels_f[bad])[:5].tolist())
        raise MetricInputError(
            f"y_true must hold binary labels 0/1; received {int(bad.sum())} other value(s) ({examples}). "
            "Map the positive class to 1 and the negative class to 0."
        )
    return labels_f.astype(np.int64), _check_probabilities(probs)


def check_threshold(threshold: Any, name: str = "threshold") -> float:
    """Validate a decision threshold: a finite number in ``[0, 1]``."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.integer | np.floating):
        raise MetricInputError(f"{name} must be a number in [0, 1]; received {threshold!r}.")
    value = float(threshold)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise MetricInputError(f"{name} must be a number in [0, 1]; received {value!r}.")
    return value


def check_groups(groups: Any, n: int) -> np.ndarray:
    """Validate subgroup labels ``[n]``; returned as strings, with None/NaN as :data:`MISSING_GROUP`."""
    array = np.asarray(groups, dtype=object)
    if array.ndim != 1:
        raise MetricInputError(f"groups must be a 1-D array [n]; received an array of shape {array.shape}.")
    if array.shape[0] != n:
        raise MetricInputError(
            f"groups must have one value per case; received {array.shape[0]} group values for {n} cases."
        )

    def label(value: Any) -> str:
        if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
            return MISSING_GROUP
        return str(value)

    return np.array([label(v) for v in array.tolist()], dtype=object)


def _check_n_bins(n_bins: Any) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise MetricInputError(f"n_bins must be a positive integer; received {n_bins!r}.")
    return int(n_bins)


# --------------------------------------------------------------------------------------------------------
# weighted kernels: one implementation serves the point metric (weights = ones [1, n]) and the bootstrap
# (weights = resample multiplicities [B, n]); inputs are already validated.


def _auroc_kernel(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUROC = P(score_pos > score_neg) + 0.5 P(tie) over weighted pairs; ``w`` [B, n] -> [B]."""
    pos = y == 1
    neg_scores = p[~pos]
    order = np.argsort(neg_scores, kind="stable")
    neg_sorted = neg_scores[order]
    w_pos = w[:, pos]
    cum_neg = np.zeros((w.shape[0], neg_sorted.size + 1))
    np.cumsum(w[:, ~pos][:, order], axis=1, out=cum_neg[:, 1:])
    # weight of negatives strictly below / at-or-below each positive's score; ties count one half
    below = cum_neg[:, np.searchsorted(neg_sorted, p[pos], side="left")]
    at_or_below = cum_neg[:, np.searchsorted(neg_sorted, p[pos], side="right")]
    wins = np.einsum("bi,bi->b", w_pos, below + at_or_below) / 2.0
    n_pairs = w_pos.sum(axis=1) * cum_neg[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pairs > 0, wins / n_pairs, np.nan)


def _auprc_kernel(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average precision sum_k (R_k - R_{k-1}) P_k over distinct thresholds; ``w`` [B, n] -> [B]."""
    order = np.argsort(-p, kind="stable")
    scores = p[order]
    w_sorted = w[:, order]
    positive = y[order].astype(np.float64)
    tp = np.cumsum(w_sorted * positive, axis=1)
    fp = np.cumsum(w_sorted * (1.0 - positive), axis=1)
    # the curve has one point per distinct score: the last case of each run of equal scores
    last_of_run = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tp, fp = tp[:, last_of_run], fp[:, last_of_run]
    n_pos = tp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        # where tp + fp == 0 the recall step is 0 too, so the placeholder precision never counts
        precision = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1.0), 0.0)
        recall = tp / n_pos
        recall_step = np.diff(recall, axis=1, prepend=0.0)
        ap = (recall_step * precision).sum(axis=1)
    return np.where(n_pos[:, 0] > 0, ap, np.nan)


def _brier_kernel(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted mean squared error of the probabilities; ``w`` [B, n] -> [B]."""
    return (w @ (p - y) ** 2) / w.sum(axis=1)


def _ece_from_bins(
    y: np.ndarray, p: np.ndarray, bin_index: np.ndarray, n_bins: int, w: np.ndarray
) -> np.ndarray:
    """ECE for fixed bin assignments, ``sum_k |sum_{i in k} w_i (y_i - p_i)| / sum_i w_i``; [B, n] -> [B].

    Equal to sum_k (n_k / n) |mean(y)_k - mean(p)_k| because each bin's weight n_k / n cancels its means'
    denominators.
    """
    residual = y - p
    total = np.zeros(w.shape[0])
    for k in range(n_bins):
        members = bin_index == k
        if members.any():
            total += np.abs(w[:, members] @ residual[members])
    return total / w.sum(axis=1)


def _ece_uniform_kernel(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    n_bins = _DEFAULT_ECE_BINS
    _, bin_index = _bin_edges_and_index(p, n_bins, "uniform")
    return _ece_from_bins(y, p, bin_index, n_bins, w)


def _point(
    kernel: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], y: np.ndarray, p: np.ndarray
) -> float:
    return float(kernel(y, p, np.ones((1, y.size)))[0])


# --------------------------------------------------------------------------------------------------------
# ranking and calibration metrics


def auroc(y_true: Any, y_prob: Any) -> float:
    """Area under the ROC curve (Mann-Whitney statistic; tied scores count one half).

    ``y_true`` [n] 0/1, ``y_prob`` [n] in [0, 1]. NaN when only one class is present.
    """
    y, p = check_binary_inputs(y_true, y_prob)
    return _point(_auroc_kernel, y, p)


def auprc(y_true: Any, y_prob: Any) -> float:
    """Average precision: ``sum_k (R_k - R_{k-1}) P_k`` over the distinct scores in decreasing order.

    This is the step-wise area under the precision-recall curve (no linear interpolation, which would be
    optimistic). ``y_true`` [n] 0/1, ``y_prob`` [n] in [0, 1]. NaN when there is no positive case.
    """
    y, p = check_binary_inputs(y_true, y_prob)
    return _point(_auprc_kernel, y, p)


def brier(y_true: Any, y_prob: Any) -> float:
    """Brier score: mean squared difference between probability and label, in [0, 1]; lower is better."""
    y, p = check_binary_inputs(y_true, y_prob)
    return _point(_brier_kernel, y, p)


def _bin_edges_and_index(p: np.ndarray, n_bins: int, strategy: str) -> tuple[np.ndarray, np.ndarray]:
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        # repeated quantiles (many tied probabilities) collapse into one edge: fewer, non-empty bins
        edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1)))
        if edges.size == 1:
            edges = np.repeat(edges, 2)
    # bins are right-closed, (e_k, e_{k+1}], with the lowest edge included in the first bin
    return edges, np.searchsorted(edges[1:-1], p, side="left")


def calibration_bins(
    y_prob: Any, n_bins: int = _DEFAULT_ECE_BINS, strategy: str = "uniform"
) -> tuple[np.ndarray, np.ndarray]:
    """Bin probabilities for calibration statistics.

    Returns ``(edges [K + 1], bin_index [n] in 0..K-1)``. ``strategy="uniform"`` makes ``K = n_bins``
    equal-width bins over [0, 1]; ``"quantile"`` puts edges at the quantiles of ``y_prob`` (about equal
    counts per bin), merging repeated edges, so ``K <= n_bins`` when many probabilities are tied. Bins are
    right-closed, ``(e_k, e_{k+1}]``, and the lowest edge belongs to the first bin.
    """
    p = _as_1d_numeric(y_prob, "y_prob")
    if p.size == 0:
        raise MetricInputError("no cases: y_prob is empty; calibration bins need at least one probability.")
    p = _check_probabilities(p)
    strategy = look_up_option(strategy, BIN_STRATEGIES, "binning strategy")
    return _bin_edges_and_index(p, _check_n_bins(n_bins), strategy)


def expected_calibration_error(
    y_true: Any, y_prob: Any, n_bins: int = _DEFAULT_ECE_BINS, strategy: str = "uniform"
) -> float:
    """Expected calibration error: ``sum_k (n_k / n) * |mean(y_true in k) - mean(y_prob in k)|``.

    The weighted mean, over the bins of :func:`calibration_bins`, of the absolute gap between the observed
    frequency of positives ("accuracy" of the positive class) and the mean predicted probability
    ("confidence"). Empty bins contribute nothing. In [0, 1]; 0 for perfect calibration on this binning.
    """
    y, p = check_binary_inputs(y_true, y_prob)
    strategy = look_up_option(strategy, BIN_STRATEGIES, "binning strategy")
    edges, bin_index = _bin_edges_and_index(p, _check_n_bins(n_bins), strategy)
    return float(_ece_from_bins(y, p, bin_index, edges.size - 1, np.ones((1, y.size)))[0])


_BATCHED: dict[Callable[..., float], Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    auroc: _auroc_kernel,
    auprc: _auprc_kernel,
    brier: _brier_kernel,
    expected_calibration_error: _ece_uniform_kernel,
}


def batched_metric(
    metric_fn: Callable[..., float],
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    """The vectorised form of a point metric of this module, for resampling; None for any other callable.

    The returned kernel takes validated ``y`` [n] (int 0/1), ``p`` [n] (float) and non-negative case
    weights ``w`` [B, n] (e.g. bootstrap multiplicities) and returns the metric of each weighted sample
    [B]. Weight k on a case equals repeating it k times. :func:`expected_calibration_error` is vectorised
    with its defaults (15 uniform bins) only: quantile bins move with every resample.
    """
    return _BATCHED.get(metric_fn)


# --------------------------------------------------------------------------------------------------------
# operating point


def _confusion(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[MetricKey, int]:
    predicted = p >= threshold
    positive = y == 1
    return {
        MetricKey.TP: int(np.count_nonzero(predicted & positive)),
        MetricKey.FP: int(np.count_nonzero(predicted & ~positive)),
        MetricKey.TN: int(np.count_nonzero(~predicted & ~positive)),
        MetricKey.FN: int(np.count_nonzero(~predicted & positive)),
    }


def confusion_at_threshold(y_true: Any, y_prob: Any, threshold: float) -> dict[MetricKey, int]:
    """Counts ``{tp, fp, tn, fn}`` when cases with ``y_prob >= threshold`` are called positive."""
    y, p = check_binary_inputs(y_true, y_prob)
    return _confusion(y, p, check_threshold(threshold))


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def rates_from_counts(tp: int, fp: int, tn: int, fn: int) -> dict[MetricKey, float]:
    """Sensitivity, specificity, PPV, NPV, FPR, FNR, accuracy, balanced accuracy and F1 from counts.

    A rate whose denominator is zero is NaN; :func:`reasons_from_counts` says why.
    """
    sensitivity = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    return {
        MetricKey.SENSITIVITY: sensitivity,
        MetricKey.SPECIFICITY: specificity,
        MetricKey.PPV: _ratio(tp, tp + fp),
        MetricKey.NPV: _ratio(tn, tn + fn),
        MetricKey.FPR: _ratio(fp, fp + tn),
        MetricKey.FNR: _ratio(fn, fn + tp),
        MetricKey.ACCURACY: _ratio(tp + tn, tp + fp + tn + fn),
        MetricKey.BALANCED_ACCURACY: (sensitivity + specificity) / 2.0,
        MetricKey.F1: _ratio(2 * tp, 2 * tp + fp + fn),
    }


def reasons_from_counts(tp: int, fp: int, tn: int, fn: int) -> dict[MetricKey, str]:
    """Why each metric of this module is NaN for these counts: ``{metric: sentence}`` for the NaN ones only.

    The counts determine every case of undefinedness: AUROC needs both classes, average precision and
    sensitivity need a positive case, specificity a negative one, PPV a predicted positive, NPV a
    predicted negative.
    """
    n_pos, n_neg = tp + fn, fp + tn
    reasons: dict[MetricKey, str] = {}
    if n_pos == 0 or n_neg == 0:
        missing = "positive" if n_pos == 0 else "negative"
        classes = f"only one class is present (n_positive={n_pos}, n_negative={n_neg})"
        reasons[MetricKey.AUROC] = f"{classes}; AUROC compares positive with negative cases"
        reasons[MetricKey.BALANCED_ACCURACY] = f"{classes}; it averages sensitivity and specificity"
        if missing == "positive":
            no_pos = "there is no positive case (n_positive=0)"
            reasons[MetricKey.AUPRC] = f"{no_pos}; precision and recall need positives"
            reasons[MetricKey.SENSITIVITY] = no_pos
            reasons[MetricKey.FNR] = no_pos
        else:
            no_neg = "there is no negative case (n_negative=0)"
            reasons[MetricKey.SPECIFICITY] = no_neg
            reasons[MetricKey.FPR] = no_neg
    if tp + fp == 0:
        reasons[MetricKey.PPV] = "no case is predicted positive at this threshold"
    if tn + fn == 0:
        reasons[MetricKey.NPV] = "no case is predicted negative at this threshold"
    if 2 * tp + fp + fn == 0:
        reasons[MetricKey.F1] = "there is no positive case and none is predicted positive"
    return reasons


def operating_point_metrics(y_true: Any, y_prob: Any, threshold: float) -> dict[MetricKey, Any]:
    """Classification metrics at one threshold (``y_prob >= threshold`` is positive).

    Returns ``{threshold, tp, fp, tn, fn, sensitivity, specificity, ppv, npv, fpr, fnr, accuracy,
    balanced_accuracy, f1, undefined}``; an undefined rate is NaN and ``undefined[name]`` says why.
    """
    y, p = check_binary_inputs(y_true, y_prob)
    threshold = check_threshold(threshold)
    counts = _confusion(y, p, threshold)
    reasons = reasons_from_counts(**counts)
    return {
        MetricKey.THRESHOLD: threshold,
        **counts,
        **rates_from_counts(**counts),
        MetricKey.UNDEFINED: {str(k): v for k, v in reasons.items() if k in _THRESHOLD_METRICS},
    }


def undefined_reason(metric: str, y_true: Any, y_prob: Any, threshold: float | None = None) -> str | None:
    """Why ``metric`` is NaN on these predictions, or None when it is defined.

    ``metric`` is a :class:`MetricKey` name such as ``"auroc"`` or ``"ppv"``; threshold-dependent metrics
    need ``threshold``.
    """
    known = [str(k) for k in (*_RANKING_METRICS, *_THRESHOLD_METRICS)]
    key = MetricKey(look_up_option(str(metric), known, "metric"))
    y, p = check_binary_inputs(y_true, y_prob)
    if key in _THRESHOLD_METRICS:
        if threshold is None:
            raise MetricInputError(f"metric '{key}' depends on the decision threshold; pass threshold=...")
        counts = _confusion(y, p, check_threshold(threshold))
    else:
        # ranking metrics depend only on the classes present; any threshold gives the same class counts
        counts = _confusion(y, p, 0.0)
    return reasons_from_counts(**counts).get(key)


def choose_threshold(y_true: Any, y_prob: Any, rule: str = "youden", target: float | None = None) -> float:
    """Choose a decision threshold on (validation) predictions.

    Rules (cases with ``y_prob >= threshold`` are positive; candidates are the distinct predicted values):

    * ``"youden"``: maximise sensitivity + specificity - 1; ties go to the highest threshold.
    * ``"sensitivity"``: the highest threshold whose sensitivity is ``>= target`` (so the most specific
      one that reaches the target).
    * ``"specificity"``: the lowest threshold whose specificity is ``>= target`` (the most sensitive one);
      a threshold just above every prediction (nothing positive) is a candidate when that is below 1.
    * ``"fixed"``: ``target`` itself.

    Raises :class:`MetricInputError` when the rule cannot be applied (e.g. no positive case for
    ``"sensitivity"``): a threshold cannot be left undefined.
    """
    rule = look_up_option(rule, THRESHOLD_RULES, "threshold rule")
    y, p = check_binary_inputs(y_true, y_prob)
    if rule == "fixed":
        if target is None:
            raise MetricInputError("rule 'fixed' needs target=<threshold in [0, 1]>.")
        return check_threshold(target, "target")
    if rule == "youden":
        if target is not None:
            raise MetricInputError(f"rule 'youden' takes no target; received target={target!r}.")
    else:
        if target is None or isinstance(target, bool):
            raise MetricInputError(f"rule '{rule}' needs target=<{rule} in (0, 1]>, e.g. target=0.9.")
        target = float(target)
        if not (0.0 < target <= 1.0):
            raise MetricInputError(f"target for rule '{rule}' must be in (0, 1]; received {target!r}.")
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    needs = {"youden": n_pos and n_neg, "sensitivity": n_pos, "specificity": n_neg}[rule]
    if not needs:
        raise MetricInputError(
            f"rule '{rule}' cannot choose a threshold with n_positive={n_pos} and n_negative={n_neg}; "
            "use validation predictions that contain both classes, or rule='fixed'."
        )
    order = np.argsort(-p, kind="stable")
    scores = p[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    thresholds = scores[last_of_run]  # decreasing
    tp = np.cumsum(y[order])[last_of_run]
    fp = np.cumsum(1 - y[order])[last_of_run]
    # a tiny relative tolerance so that e.g. 9 of 10 counts as reaching a target of 0.9
    slack = 1e-12
    if rule == "youden":
        return float(thresholds[int(np.argmax(tp / n_pos - fp / n_neg))])
    if rule == "sensitivity":
        return float(thresholds[int(np.argmax(tp >= target * n_pos * (1 - slack)))])
    reaching = np.flatnonzero(n_neg - fp >= target * n_neg * (1 - slack))
    if reaching.size:
        return float(thresholds[reaching[-1]])
    if thresholds[0] < 1.0:
        return float(np.nextafter(thresholds[0], 2.0))
    raise MetricInputError(
        f"no threshold in [0, 1] reaches specificity {target}: negative cases are predicted with "
        "probability 1.0, which every threshold calls positive."
    )


# --------------------------------------------------------------------------------------------------------
# everything in one dict


def binary_metrics(
    y_true: Any, y_prob: Any, threshold: float, n_bins: int = _DEFAULT_ECE_BINS, strategy: str = "uniform"
) -> dict[MetricKey, Any]:
    """All point metrics of one set of predictions, as one JSON-serialisable dict.

    Keys: ``n, n_positive, n_negative, prevalence, auroc, auprc, brier, ece, ece_bins, ece_strategy`` and
    everything :func:`operating_point_metrics` returns at ``threshold`` (``sensitivity, specificity, ppv,
    npv, ...``), plus ``undefined``: ``{metric: why it is NaN}``.
    """
    y, p = check_binary_inputs(y_true, y_prob)
    threshold = check_threshold(threshold)
    strategy = look_up_option(strategy, BIN_STRATEGIES, "binning strategy")
    n_bins = _check_n_bins(n_bins)
    n_pos = int(y.sum())
    edges, bin_index = _bin_edges_and_index(p, n_bins, strategy)
    counts = _confusion(y, p, threshold)
    return {
        MetricKey.N: int(y.size),
        MetricKey.N_POSITIVE: n_pos,
        MetricKey.N_NEGATIVE: int(y.size) - n_pos,
        MetricKey.PREVALENCE: n_pos / y.size,
        MetricKey.AUROC: _point(_auroc_kernel, y, p),
        MetricKey.AUPRC: _point(_auprc_kernel, y, p),
        MetricKey.BRIER: _point(_brier_kernel, y, p),
        MetricKey.ECE: float(_ece_from_bins(y, p, bin_index, edges.size - 1, np.ones((1, y.size)))[0]),
        MetricKey.ECE_BINS: n_bins,
        MetricKey.ECE_STRATEGY: strategy,
        MetricKey.THRESHOLD: threshold,
        **counts,
        **rates_from_counts(**counts),
        MetricKey.UNDEFINED: {str(k): v for k, v in reasons_from_counts(**counts).items()},
    }


def size_flag(n_positive: int, n_negative: int, min_n: int, min_events: int = 0) -> str | None:
    """Why a group is too small to compare (``n < min_n`` or a class with fewer than ``min_events``)."""
    problems = []
    n = n_positive + n_negative
    if n < min_n:
        problems.append(f"n={n} < min_n={min_n}")
    if n_positive < min_events:
        problems.append(f"n_positive={n_positive} < min_events={min_events}")
    if n_negative < min_events:
        problems.append(f"n_negative={n_negative} < min_events={min_events}")
    return "; ".join(problems) or None


def _check_min(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise MetricInputError(f"{name} must be a non-negative integer; received {value!r}.")
    return int(value)


def split_by_group(
    y_true: Any, y_prob: Any, groups: Sequence[Any] | np.ndarray
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(group, y [n_g], p [n_g])`` for each group, sorted by name; the one place where per-group metrics
    (:func:`metrics_by_group` here, :func:`mmdx.statistics.subgroup_table` in the audit) split cases.

    ``groups`` [n] holds one label per case (None/NaN -> :data:`MISSING_GROUP`)."""
    y, p = check_binary_inputs(y_true, y_prob)
    labels = check_groups(groups, y.size)
    for group in sorted(set(labels.tolist())):
        member = labels == group
        yield group, y[member], p[member]


def metrics_by_group(
    y_true: Any,
    y_prob: Any,
    groups: Sequence[Any] | np.ndarray,
    threshold: float,
    min_n: int = 30,
    n_bins: int = _DEFAULT_ECE_BINS,
    strategy: str = "uniform",
) -> dict[str, dict[MetricKey, Any]]:
    """:func:`binary_metrics` per group (e.g. per modality-presence pattern), keyed by group, sorted.

    ``groups`` [n] holds one label per case (None/NaN -> :data:`MISSING_GROUP`). Every group is reported;
    one with fewer than ``min_n`` cases has ``too_small=True`` and a ``reason``, and its metrics should be
    read as anecdotal.
    """
    min_n = _check_min(min_n, "min_n")
    out: dict[str, dict[MetricKey, Any]] = {}
    for group, gy, gp in split_by_group(y_true, y_prob, groups):
        metrics = binary_metrics(gy, gp, threshold, n_bins=n_bins, strategy=strategy)
        reason = size_flag(metrics[MetricKey.N_POSITIVE], metrics[MetricKey.N_NEGATIVE], min_n)
        metrics[MetricKey.TOO_SMALL] = reason is not None
        metrics[MetricKey.REASON] = reason
        out[group] = metrics
    return out


def json_ready(value: Any) -> Any:
    """A copy of ``value`` for strict JSON: NaN/inf -> None, numpy -> Python, enum members and keys -> str."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_ready(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
