"""Discrimination, operating point, calibration and comparison sections against independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.special import expit, logit
from scipy.stats import binomtest, rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, confusion_matrix, roc_auc_score

from mmdx.audit.performance import (
    ECE_BINS,
    calibration_section,
    comparison_section,
    discrimination_section,
    operating_point_section,
)
from mmdx.audit.sections import SectionUnavailable, build_section
from mmdx.metrics import expected_calibration_error

from .frames import predictions_frame

B = 300


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return predictions_frame(seed=11)


def _split(frame: pd.DataFrame, split: str, column: str = "probability"):
    part = frame[frame["split"] == split]
    return part["label"].to_numpy().astype(int), part[column].to_numpy()


def test_discrimination_matches_sklearn_on_every_split(frame: pd.DataFrame) -> None:
    section = discrimination_section(frame, "test", B, 0.05, seed=1, bayes_auroc=0.9)
    assert section["split"] == "test" and section["bayes_auroc"] == 0.9
    assert list(section["by_split"]) == ["train", "val", "test"]
    for split, entry in section["by_split"].items():
        y, p = _split(frame, split)
        assert entry["n"] == len(y) and entry["n_positive"] == int(y.sum())
        assert entry["auroc"]["estimate"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert entry["auprc"]["estimate"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
        assert entry["roc_curve"]["auroc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert entry["pr_curve"]["average_precision"] == pytest.approx(
            average_precision_score(y, p), abs=1e-12
        )
        for key in ("auroc", "auprc"):
            interval = entry[key]
            assert interval["low"] <= interval["estimate"] <= interval["high"]
            assert interval["n_resamples"] == B and "stratified" in interval["method"]


def test_discrimination_interval_agrees_with_an_independent_stratified_bootstrap(frame: pd.DataFrame) -> None:
    y, p = _split(frame, "test")
    section = discrimination_section(frame, "test", 2000, 0.05, seed=5)
    rng = np.random.default_rng(99)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    # Mann-Whitney form of AUROC on each stratified resample (rows), from mid-ranks
    index = np.c_[rng.choice(pos, (2000, pos.size)), rng.choice(neg, (2000, neg.size))]
    ranks = rankdata(p[index], axis=1)
    u = ranks[:, : pos.size].sum(axis=1) - pos.size * (pos.size + 1) / 2
    low, high = np.quantile(u / (pos.size * neg.size), [0.025, 0.975])
    interval = section["by_split"]["test"]["auroc"]
    # two Monte Carlo estimates of the same percentiles: equal up to simulation error
    assert interval["low"] == pytest.approx(low, abs=0.015)
    assert interval["high"] == pytest.approx(high, abs=0.015)


def test_discrimination_is_reproducible_from_its_seed(frame: pd.DataFrame) -> None:
    first = discrimination_section(frame, "test", 200, 0.05, seed=7)
    assert discrimination_section(frame, "test", 200, 0.05, seed=7) == first
    assert discrimination_section(frame, "test", 200, 0.05, seed=8) != first


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda f: f[f["split"] != "test"], "no labelled case"),
        (lambda f: f.assign(label=np.where(f["split"] == "test", 1.0, f["label"])), "one class only"),
        (lambda f: f.assign(label=np.where(f["split"] == "test", np.nan, f["label"])), "no labelled case"),
    ],
)
def test_an_evaluation_split_that_cannot_be_scored_makes_the_sections_unavailable(
    frame: pd.DataFrame, change, reason: str
) -> None:
    changed = change(frame)
    for builder in (
        lambda: discrimination_section(changed, "test", 50, 0.05, 0),
        lambda: operating_point_section(changed, "test", 0.5, "youden", "val", 0.05),
        lambda: calibration_section(changed, "test", {"temperature": 1.8}, 50, 0.05, 0),
    ):
        section = build_section(builder)
        assert section["status"] == "not_available" and reason in section["reason"]


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.62])
def test_operating_point_matches_the_confusion_matrix_and_wilson_intervals(
    frame: pd.DataFrame, threshold: float
) -> None:
    y, p = _split(frame, "test")
    section = operating_point_section(frame, "test", threshold, "youden", "val", 0.05)
    tn, fp, fn, tp = confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1]).ravel()
    assert section["counts"] == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    expected = {
        "sensitivity": (tp, tp + fn),
        "specificity": (tn, tn + fp),
        "ppv": (tp, tp + fp),
        "npv": (tn, tn + fn),
        "fpr": (fp, fp + tn),
    }
    for name, (k, n) in expected.items():
        interval = section["metrics"][name]
        ci = binomtest(int(k), int(n)).proportion_ci(0.95, method="wilson")
        assert interval["estimate"] == pytest.approx(k / n)
        assert interval["low"] == pytest.approx(ci.low, abs=1e-9)
        assert interval["high"] == pytest.approx(ci.high, abs=1e-9)
    odds = threshold / (1 - threshold)
    net_benefit = tp / len(y) - fp / len(y) * odds
    assert section["net_benefit_at_threshold"]["model"] == pytest.approx(net_benefit)
    prevalence = y.mean()
    assert section["net_benefit_at_threshold"]["treat_all"] == pytest.approx(
        prevalence - (1 - prevalence) * odds
    )


def test_decision_curve_is_the_net_benefit_at_every_threshold(frame: pd.DataFrame) -> None:
    y, p = _split(frame, "test")
    curve = operating_point_section(frame, "test", 0.5, "youden", "val", 0.05)["decision_curve"]
    assert len(curve["thresholds"]) == 100 and curve["thresholds"][0] == 0.0
    for pt, model in zip(curve["thresholds"][::9], curve["model"][::9], strict=True):
        predicted = p >= pt
        tp, fp = np.sum(predicted & (y == 1)), np.sum(predicted & (y == 0))
        assert model == pytest.approx(tp / len(y) - fp / len(y) * pt / (1 - pt))
    assert all(v == 0.0 for v in curve["treat_none"])


def _ece(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    index = np.clip(np.ceil(p * bins).astype(int) - 1, 0, bins - 1)  # right-closed bins, 0 in the first
    return sum(
        abs(y[index == k].mean() - p[index == k].mean()) * np.mean(index == k) for k in np.unique(index)
    )


def test_calibration_matches_independent_brier_ece_and_logistic_fits(frame: pd.DataFrame) -> None:
    card = {"method": "temperature", "temperature": 1.8, "nll_before": 0.6, "nll_after": 0.55}
    section = calibration_section(frame, "test", card, B, 0.05, seed=2)
    assert section["ece_bins"] == ECE_BINS and section["temperature"] == 1.8
    assert section["prevalence"] is None  # a bundle whose offset was not anchored says nothing of it
    for name, column in (("before", "probability_uncalibrated"), ("after", "probability")):
        y, p = _split(frame, "test", column)
        block = section[name]
        assert block["brier"]["estimate"] == pytest.approx(brier_score_loss(y, p))
        assert block["ece"]["estimate"] == pytest.approx(_ece(y, p, ECE_BINS))
        x = logit(p).reshape(-1, 1)
        fit = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(x, y)
        assert block["fit"]["slope"] == pytest.approx(fit.coef_[0, 0], rel=1e-4)
        assert block["fit"]["intercept_with_slope"] == pytest.approx(fit.intercept_[0], abs=1e-4)
        # calibration-in-the-large: the offset a that makes sum(expit(a + logit p)) equal the events
        a = brentq(lambda a, y=y, x=x: np.sum(y - expit(a + x[:, 0])), -20, 20)
        assert block["fit"]["intercept"] == pytest.approx(a, abs=1e-6)
        assert block["reliability"]["count"] and sum(block["reliability"]["count"]) == len(y)
        assert block["mean_predicted"] == pytest.approx(p.mean())


def test_temperature_scaling_multiplies_the_calibration_slope_by_the_temperature(frame: pd.DataFrame) -> None:
    # logit(probability) = logit / T, so a recalibration slope b on the raw logits is b * T after scaling
    section = calibration_section(frame, "test", {"temperature": 1.8}, 50, 0.05, seed=0)
    assert section["after"]["fit"]["slope"] == pytest.approx(
        1.8 * section["before"]["fit"]["slope"], rel=1e-6
    )
    assert section["after"]["fit"]["intercept_with_slope"] == pytest.approx(
        section["before"]["fit"]["intercept_with_slope"], abs=1e-6
    )


def test_ece_bins_constant_is_the_default_binning() -> None:
    rng = np.random.default_rng(0)
    y, p = (rng.random(500) < 0.4).astype(int), rng.random(500)
    assert expected_calibration_error(y, p) == expected_calibration_error(y, p, n_bins=ECE_BINS)
    assert expected_calibration_error(y, p) != expected_calibration_error(y, p, n_bins=ECE_BINS + 1)


def _other_run(frame: pd.DataFrame, seed: int, noise: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    other = frame.copy()
    other["probability"] = expit(logit(frame["probability"]) + rng.normal(scale=noise, size=len(frame)))
    return other


def test_comparison_difference_is_the_difference_of_the_two_aurocs(frame: pd.DataFrame) -> None:
    other = _other_run(frame, seed=3, noise=1.5)
    section = comparison_section(frame, other, "test", ("a", "b"), ("v1", "v2"), B, 0.05, seed=4)
    y, pa = _split(frame, "test")
    _, pb = _split(other, "test")
    expected = roc_auc_score(y, pa) - roc_auc_score(y, pb)
    difference = section["difference"]["auroc"]
    assert difference["estimate"] == pytest.approx(expected, abs=1e-12)
    assert difference["low"] <= expected <= difference["high"]
    assert 0.0 < difference["p_value"] <= 1.0
    assert section["runs"][0]["auroc"]["estimate"] == pytest.approx(roc_auc_score(y, pa))
    assert section["difference"]["brier"]["estimate"] == pytest.approx(
        brier_score_loss(y, pa) - brier_score_loss(y, pb)
    )
    assert section["n"] == len(y) and section["only_in_this_run"] == 0


def test_comparison_of_a_run_with_itself_is_exactly_zero(frame: pd.DataFrame) -> None:
    section = comparison_section(frame, frame.copy(), "test", ("a", "b"), ("v", "v"), 100, 0.05, seed=0)
    difference = section["difference"]["auroc"]
    assert difference["estimate"] == 0.0 and difference["low"] == 0.0 and difference["high"] == 0.0
    assert difference["p_value"] == 1.0


def test_comparison_uses_only_the_shared_cases(frame: pd.DataFrame) -> None:
    other = _other_run(frame, seed=5, noise=0.5)
    test_ids = frame.loc[frame["split"] == "test", "case_id"]
    other = other[~other["case_id"].isin(test_ids.iloc[:40])]
    section = comparison_section(frame, other, "test", ("a", "b"), ("v", "w"), 50, 0.05, seed=0)
    assert section["n"] == len(test_ids) - 40 and section["only_in_this_run"] == 40
    shared = frame[frame["case_id"].isin(other["case_id"]) & (frame["split"] == "test")]
    assert section["runs"][0]["auroc"]["estimate"] == pytest.approx(
        roc_auc_score(shared["label"], shared["probability"])
    )


def test_comparison_refuses_runs_on_different_cohorts(frame: pd.DataFrame) -> None:
    flipped = frame.copy()
    flipped.loc[flipped.index[-3:], "label"] = 1 - flipped.loc[flipped.index[-3:], "label"]
    with pytest.raises(SectionUnavailable, match="different labels"):
        comparison_section(frame, flipped, "test", ("a", "b"), ("v", "w"), 50, 0.05, 0)
    renamed = frame.assign(case_id="X" + frame["case_id"])
    with pytest.raises(SectionUnavailable, match="share no labelled case"):
        comparison_section(frame, renamed, "test", ("a", "b"), ("v", "w"), 50, 0.05, 0)
