"""Point metrics, each checked against an independent computation (scikit-learn or a hand-written loop)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from mmdx.errors import MmdxError
from mmdx.metrics import (
    MISSING_GROUP,
    MetricInputError,
    MetricKey,
    auprc,
    auroc,
    batched_metric,
    binary_metrics,
    brier,
    calibration_bins,
    choose_threshold,
    confusion_at_threshold,
    expected_calibration_error,
    json_ready,
    metrics_by_group,
    operating_point_metrics,
    undefined_reason,
)


def make_predictions(n: int = 400, seed: int = 0, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Labels with ~30% positives and informative probabilities; ``ties`` rounds them to 0.05 steps."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    p = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + 1.5 * y - 0.8)))
    return y, (np.round(p * 20) / 20 if ties else p)


@st.composite
def labelled_predictions(draw: st.DrawFn, both_classes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(2, 40))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    if both_classes:
        y[0], y[1] = 0, 1
    # few distinct values so that ties are frequent
    levels = draw(st.sampled_from([3, 6, 1000]))
    p = np.array(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n))) / levels
    return y, p


# --------------------------------------------------------------------------------------------------------
# ranking metrics against scikit-learn


@settings(max_examples=150, deadline=None)
@given(labelled_predictions())
def test_auroc_auprc_brier_match_sklearn_with_ties(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert auprc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_metrics_match_sklearn_on_a_realistic_sample(ties: bool) -> None:
    y, p = make_predictions(3000, seed=3, ties=ties)
    assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert auprc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)


def test_auroc_known_values() -> None:
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auroc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auroc([0, 1], [0.5, 0.5]) == 0.5  # a tie counts one half
    assert auroc([0, 0, 1], [0.2, 0.6, 0.4]) == 0.5


@pytest.mark.parametrize(
    ("y", "metric", "expected_nan"),
    [
        ([1, 1, 1], auroc, True),
        ([0, 0, 0], auroc, True),
        ([0, 0, 0], auprc, True),
        ([1, 1, 1], auprc, False),  # precision is 1 everywhere
        ([0, 0, 0], brier, False),
    ],
)
def test_single_class_gives_nan_only_where_undefined(y: list[int], metric, expected_nan: bool) -> None:
    value = metric(y, [0.2, 0.5, 0.9])
    assert math.isnan(value) is expected_nan


def test_labels_may_be_bool_or_float() -> None:
    p = [0.1, 0.7, 0.4, 0.9]
    expected = auroc([0, 1, 0, 1], p)
    assert auroc([False, True, False, True], p) == expected
    assert auroc(np.array([0.0, 1.0, 0.0, 1.0], dtype=np.float32), p) == expected


# --------------------------------------------------------------------------------------------------------
# calibration error


def ece_by_hand(y: np.ndarray, p: np.ndarray, edges: np.ndarray) -> float:
    """Loop over bins (lo, hi], the first bin also holding its lower edge."""
    total = 0.0
    for k in range(len(edges) - 1):
        lo, hi = edges[k], edges[k + 1]
        members = [i for i in range(len(p)) if (lo < p[i] <= hi) or (k == 0 and p[i] == lo)]
        if members:
            accuracy = sum(y[i] for i in members) / len(members)
            confidence = sum(p[i] for i in members) / len(members)
            total += len(members) / len(p) * abs(accuracy - confidence)
    return total


def test_ece_tiny_table() -> None:
    # bin (0, 0.5]: p = .1 .3 .35 (mean .25), 2 of 3 positive -> |.6667 - .25| = .41667, weight 1/2
    # bin (0.5, 1]: p = .6 .8 .9 (mean .76667), 2 of 3 positive -> |.6667 - .76667| = .1, weight 1/2
    y = [0, 1, 1, 0, 1, 1]
    p = [0.1, 0.3, 0.35, 0.6, 0.8, 0.9]
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.5 * (2 / 3 - 0.25) + 0.5 * 0.1)


def test_ece_value_on_a_bin_edge_goes_to_the_lower_bin() -> None:
    # p = 0.5 belongs to (0, 0.5]: the lower bin then holds {0.5 (y=1)} and the upper {0.9 (y=1)}
    assert expected_calibration_error([1, 1], [0.5, 0.9], n_bins=2) == pytest.approx(0.5 * 0.5 + 0.5 * 0.1)
    assert expected_calibration_error([0], [0.0], n_bins=2) == 0.0


@pytest.mark.parametrize("n_bins", [1, 5, 15])
@pytest.mark.parametrize("ties", [False, True])
def test_ece_matches_loop_for_uniform_and_quantile_bins(n_bins: int, ties: bool) -> None:
    y, p = make_predictions(300, seed=n_bins, ties=ties)
    uniform = np.linspace(0, 1, n_bins + 1)
    assert expected_calibration_error(y, p, n_bins) == pytest.approx(ece_by_hand(y, p, uniform), abs=1e-12)
    quantile_edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
    assert expected_calibration_error(y, p, n_bins, "quantile") == pytest.approx(
        ece_by_hand(y, p, quantile_edges), abs=1e-12
    )


def test_quantile_bins_hold_equal_counts_and_collapse_ties() -> None:
    edges, index = calibration_bins(np.arange(1, 101) / 100, n_bins=4, strategy="quantile")
    assert edges.size == 5
    assert np.bincount(index).tolist() == [25, 25, 25, 25]
    edges, index = calibration_bins([0.3] * 10, n_bins=4, strategy="quantile")
    assert edges.tolist() == [0.3, 0.3] and set(index.tolist()) == {0}


def test_ece_of_perfectly_calibrated_bins_is_zero() -> None:
    # each bin's mean probability equals its observed frequency
    assert expected_calibration_error([0, 1, 0, 1, 1, 1], [0.5, 0.5, 0.5, 0.5, 1.0, 1.0], n_bins=10) == 0.0


# --------------------------------------------------------------------------------------------------------
# operating point


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 0.85, 1.0])
def test_confusion_matches_sklearn_and_threshold_is_inclusive(threshold: float) -> None:
    y, p = make_predictions(200, seed=1, ties=True)
    tn, fp, fn, tp = confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1]).ravel()
    counts = confusion_at_threshold(y, p, threshold)
    assert counts == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    assert confusion_at_threshold([1], [0.5], 0.5)["tp"] == 1


def test_operating_point_metrics_match_sklearn() -> None:
    y, p = make_predictions(500, seed=2)
    predicted = (p >= 0.4).astype(int)
    m = operating_point_metrics(y, p, 0.4)
    assert m["sensitivity"] == pytest.approx(recall_score(y, predicted))
    assert m["specificity"] == pytest.approx(recall_score(1 - y, 1 - predicted))
    assert m["ppv"] == pytest.approx(precision_score(y, predicted))
    assert m["npv"] == pytest.approx(precision_score(1 - y, 1 - predicted))
    assert m["f1"] == pytest.approx(f1_score(y, predicted))
    assert m["fpr"] == pytest.approx(1 - m["specificity"])
    assert m["fnr"] == pytest.approx(1 - m["sensitivity"])
    assert m["accuracy"] == pytest.approx(np.mean(predicted == y))
    assert m["threshold"] == 0.4
    assert m["undefined"] == {}


def test_undefined_operating_point_metrics_are_nan_with_reasons() -> None:
    m = operating_point_metrics([0, 0, 1], [0.1, 0.2, 0.3], threshold=0.9)  # nothing predicted positive
    assert math.isnan(m["ppv"]) and not math.isnan(m["npv"])
    assert set(m["undefined"]) == {"ppv"}
    assert "predicted positive" in m["undefined"]["ppv"]
    m = operating_point_metrics([1, 1], [0.1, 0.9], threshold=0.5)
    assert {k for k, v in m.items() if isinstance(v, float) and math.isnan(v)} == set(m["undefined"])
    assert set(m["undefined"]) == {"specificity", "fpr", "balanced_accuracy"}


def test_undefined_reason() -> None:
    assert "only one class" in undefined_reason("auroc", [1, 1], [0.2, 0.3])
    assert undefined_reason("auroc", [0, 1], [0.2, 0.3]) is None
    assert undefined_reason("ppv", [0, 1], [0.2, 0.3], threshold=0.9) is not None
    assert undefined_reason(MetricKey.NPV, [0, 1], [0.2, 0.3], threshold=0.1) is not None
    with pytest.raises(MmdxError, match="threshold"):
        undefined_reason("ppv", [0, 1], [0.2, 0.3])
    with pytest.raises(MmdxError, match="did you mean 'auroc'"):
        undefined_reason("aurco", [0, 1], [0.2, 0.3])


# --------------------------------------------------------------------------------------------------------
# threshold choice


def test_youden_threshold_maximises_j_over_the_exact_roc() -> None:
    y, p = make_predictions(400, seed=4, ties=True)
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    chosen = choose_threshold(y, p, "youden")
    m = operating_point_metrics(y, p, chosen)
    assert m["sensitivity"] + m["specificity"] - 1 == pytest.approx(np.max(tpr - fpr))
    assert chosen in set(p.tolist())


@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 0.95, 1.0])
def test_sensitivity_rule_is_the_highest_threshold_reaching_the_target(target: float) -> None:
    y, p = make_predictions(300, seed=5, ties=True)
    chosen = choose_threshold(y, p, "sensitivity", target)
    assert operating_point_metrics(y, p, chosen)["sensitivity"] >= target
    higher = np.unique(p[p > chosen])
    if higher.size:  # the next candidate up misses the target
        assert operating_point_metrics(y, p, higher[0])["sensitivity"] < target


def test_sensitivity_rule_counts_an_exact_hit() -> None:
    y = np.r_[np.ones(10, int), np.zeros(5, int)]
    p = np.r_[np.linspace(0.5, 0.95, 10), np.full(5, 0.1)]
    assert choose_threshold(y, p, "sensitivity", 0.9) == pytest.approx(0.55)


@pytest.mark.parametrize("target", [0.5, 0.9, 1.0])
def test_specificity_rule_is_the_lowest_threshold_reaching_the_target(target: float) -> None:
    y, p = make_predictions(300, seed=6, ties=True)
    chosen = choose_threshold(y, p, "specificity", target)
    assert operating_point_metrics(y, p, chosen)["specificity"] >= target
    lower = np.unique(p[p < chosen])
    if lower.size:
        assert operating_point_metrics(y, p, lower[-1])["specificity"] < target


def test_specificity_rule_can_call_nothing_positive() -> None:
    chosen = choose_threshold([0, 1, 0], [0.2, 0.3, 0.4], "specificity", 1.0)
    assert chosen > 0.4 and operating_point_metrics([0, 1, 0], [0.2, 0.3, 0.4], chosen)["specificity"] == 1.0
    with pytest.raises(MmdxError, match="specificity"):
        choose_threshold([0, 1], [1.0, 0.3], "specificity", 1.0)


@pytest.mark.parametrize(
    ("y", "rule", "target", "match"),
    [
        ([0, 1], "fixed", None, "needs target"),
        ([0, 1], "fixed", 1.5, r"\[0, 1\]"),
        ([0, 1], "sensitivity", None, "needs target"),
        ([0, 1], "sensitivity", 0.0, r"\(0, 1\]"),
        ([0, 1], "youden", 0.5, "takes no target"),
        ([0, 0], "youden", None, "n_positive=0"),
        ([0, 0], "sensitivity", 0.9, "n_positive=0"),
        ([1, 1], "specificity", 0.9, "n_negative=0"),
        ([0, 1], "yuoden", None, "did you mean 'youden'"),
    ],
)
def test_choose_threshold_errors(y: list[int], rule: str, target, match: str) -> None:
    with pytest.raises(MmdxError, match=match):
        choose_threshold(y, [0.2, 0.7], rule, target)


def test_fixed_rule_returns_target() -> None:
    assert choose_threshold([0, 1], [0.2, 0.7], "fixed", 0.37) == 0.37


# --------------------------------------------------------------------------------------------------------
# all metrics in one dict, per group


def test_binary_metrics_agrees_with_the_single_functions_and_is_json() -> None:
    y, p = make_predictions(300, seed=7)
    m = binary_metrics(y, p, 0.35)
    assert m["n"] == 300 and m["n_positive"] == int(y.sum()) and m["prevalence"] == pytest.approx(y.mean())
    assert m["auroc"] == auroc(y, p) and m["auprc"] == auprc(y, p) and m["brier"] == brier(y, p)
    assert m["ece"] == pytest.approx(expected_calibration_error(y, p)) and m["ece_bins"] == 15
    for key, value in operating_point_metrics(y, p, 0.35).items():
        assert m[key] == value
    parsed = json.loads(json.dumps(m, allow_nan=False))
    assert parsed["auroc"] == m["auroc"] and parsed["ece_strategy"] == "uniform"
    assert all(type(v) in (int, float, str, dict) for v in m.values())


def test_binary_metrics_with_one_class_goes_on_with_reasons() -> None:
    m = binary_metrics([0, 0, 0], [0.1, 0.6, 0.3], 0.5)
    assert math.isnan(m["auroc"]) and math.isnan(m["auprc"]) and math.isnan(m["sensitivity"])
    assert m["specificity"] == pytest.approx(2 / 3)
    nan_keys = {str(k) for k, v in m.items() if isinstance(v, float) and math.isnan(v)}
    assert nan_keys == set(m["undefined"])
    strict = json.dumps(json_ready(m), allow_nan=False)
    assert json.loads(strict)["auroc"] is None


def test_metrics_by_group_equals_metrics_on_each_subset() -> None:
    y, p = make_predictions(300, seed=8)
    groups = np.array(["image+tabular", "tabular", "image+tabular+text"] * 100, dtype=object)
    groups[:5] = None
    result = metrics_by_group(y, p, groups, 0.5, min_n=96)
    assert list(result) == sorted(result)
    assert MISSING_GROUP in result and result[MISSING_GROUP]["n"] == 5
    assert sum(r["n"] for r in result.values()) == 300
    for group, metrics in result.items():
        labels = np.array([MISSING_GROUP if g is None else g for g in groups])
        member = labels == group
        assert metrics["auroc"] == auroc(y[member], p[member]) or math.isnan(metrics["auroc"])
        assert metrics["too_small"] is bool(member.sum() < 96)
        assert (metrics["reason"] is None) is (not metrics["too_small"])
    assert "min_n=96" in result[MISSING_GROUP]["reason"]


# --------------------------------------------------------------------------------------------------------
# the vectorised kernels used by the bootstrap


@settings(max_examples=60, deadline=None)
@given(labelled_predictions(), st.data())
def test_weights_equal_repeating_cases(data: tuple[np.ndarray, np.ndarray], draw: st.DataObject) -> None:
    y, p = data
    weights = np.array(draw.draw(st.lists(st.integers(0, 3), min_size=y.size, max_size=y.size)))
    weights[0] = weights[1] = 1  # keep both classes
    for metric in (auroc, auprc, brier, expected_calibration_error):
        batched = batched_metric(metric)(y, p, weights[None, :].astype(float))
        assert batched.shape == (1,)
        repeated = metric(np.repeat(y, weights), np.repeat(p, weights))
        assert batched[0] == pytest.approx(repeated, abs=1e-12)


def test_batched_metric_only_knows_the_metrics_of_this_module() -> None:
    assert batched_metric(lambda y, p: 0.0) is None
    assert batched_metric(auroc) is not None


# --------------------------------------------------------------------------------------------------------
# validation at the boundary


@pytest.mark.parametrize(
    ("y_true", "y_prob", "match"),
    [
        ([0, 1, 1], [0.2, 0.4], "3 labels and 2 probabilities"),
        ([], [], "empty"),
        ([0, 1], [0.2, float("nan")], "NaN or infinite"),
        ([0, 1], [0.2, float("inf")], "NaN or infinite"),
        ([0, 1], [-0.1, 0.4], r"\[0, 1\].*sigmoid"),
        ([0, 1], [0.2, 1.3], r"\[0, 1\]"),
        ([0, 2], [0.2, 0.4], "binary labels 0/1"),
        ([0, 0.5], [0.2, 0.4], "binary labels 0/1"),
        ([0, float("nan")], [0.2, 0.4], "unlabelled"),
        ([0, 1], [[0.8, 0.2], [0.3, 0.7]], r"1-D.*probs\[:, 1\]"),
        (["a", "b"], [0.2, 0.4], "must hold numbers"),
    ],
)
def test_bad_inputs_raise_clear_errors(y_true, y_prob, match: str) -> None:
    for metric in (auroc, auprc, brier, expected_calibration_error):
        with pytest.raises(MetricInputError, match=match):
            metric(y_true, y_prob)


@pytest.mark.parametrize("threshold", [-0.1, 1.1, float("nan"), "0.5", None, True])
def test_bad_threshold_raises(threshold) -> None:
    with pytest.raises(MetricInputError, match="threshold"):
        operating_point_metrics([0, 1], [0.2, 0.7], threshold)


def test_bad_binning_raises() -> None:
    with pytest.raises(MetricInputError, match="n_bins"):
        expected_calibration_error([0, 1], [0.2, 0.7], n_bins=0)
    with pytest.raises(MmdxError, match="did you mean 'quantile'"):
        expected_calibration_error([0, 1], [0.2, 0.7], strategy="quantiles")


def test_bad_groups_raise() -> None:
    with pytest.raises(MetricInputError, match="3 group values for 2 cases"):
        metrics_by_group([0, 1], [0.2, 0.7], ["a", "b", "c"], 0.5)
