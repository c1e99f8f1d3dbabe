"""The performance sections of the audit report: discrimination, the operating point, calibration, and the
paired comparison of two runs. Each function reads predictions (``predictions.parquet`` rows) and returns
plain, strict-JSON data; all statistics come from :mod:`mmdx.statistics`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmdx.audit.sections import (
    AUDIT_SECTIONS,
    AuditInputs,
    Column,
    Section,
    SectionSpec,
    SectionUnavailable,
    evaluation_arrays,
    labelled_split,
)
from mmdx.data.splits import SPLITS
from mmdx.keys import Keys
from mmdx.metrics import (
    MetricKey,
    auprc,
    auroc,
    brier,
    confusion_at_threshold,
    expected_calibration_error,
    json_ready,
)
from mmdx.statistics import (
    bootstrap_ci,
    calibration_slope_intercept,
    decision_curve,
    operating_point_cis,
    paired_bootstrap_difference,
    pr_curve_points,
    reliability_curve,
    roc_curve_points,
)

#: Bins of the reported expected calibration error (uniform on [0, 1]); the vectorised bootstrap of
#: :func:`~mmdx.metrics.expected_calibration_error` uses its default binning, which is this one.
ECE_BINS = 15
ECE_STRATEGY = "uniform"
#: Points kept per curve for drawing (exact areas are computed before any downsampling).
CURVE_POINTS = 200
#: Threshold probabilities of the decision curve: 0.00, 0.01, ..., 0.99.
DECISION_THRESHOLDS = np.arange(100) / 100.0


def _class_counts(y: np.ndarray) -> dict[str, Any]:
    n_pos = int(y.sum())
    return {
        "n": int(y.size),
        "n_positive": n_pos,
        "n_negative": int(y.size) - n_pos,
        "prevalence": n_pos / y.size,
    }


def discrimination_section(
    frame: pd.DataFrame,
    split: str,
    n_resamples: int,
    alpha: float,
    seed: int,
    bayes_auroc: float | None = None,
) -> dict[str, Any]:
    """AUROC and AUPRC with stratified bootstrap intervals, ROC and PR curves, for every labelled split.

    The evaluation ``split`` must hold both classes; the other splits are shown beside it (training vs
    evaluation) whenever they have labelled cases. ``bayes_auroc``: the best AUROC any model can reach,
    known for synthetic cohorts only.
    """
    evaluation_arrays(frame, split)  # raises with the reason when the evaluation split cannot be scored
    by_split: dict[str, Any] = {}
    for name in [*SPLITS, *sorted(set(frame[Keys.SPLIT].astype(str)) - set(SPLITS))]:
        part = labelled_split(frame, name)
        if part.empty:
            continue
        y = part[Keys.LABEL].to_numpy(dtype=np.float64).astype(np.int64)
        p = part[Column.PROBABILITY].to_numpy(dtype=np.float64)
        entry: dict[str, Any] = {
            **_class_counts(y),
            "auroc": bootstrap_ci(auroc, y, p, n_resamples, alpha, stratified=True, seed=seed).to_dict(),
            "auprc": bootstrap_ci(auprc, y, p, n_resamples, alpha, stratified=True, seed=seed).to_dict(),
            "roc_curve": None,
            "pr_curve": None,
        }
        if 0 < y.sum() < y.size:
            entry["roc_curve"] = roc_curve_points(y, p, CURVE_POINTS).to_dict()
        if y.sum() > 0:
            entry["pr_curve"] = pr_curve_points(y, p, CURVE_POINTS).to_dict()
        by_split[name] = entry
    return {
        "split": split,
        "alpha": alpha,
        "n_resamples": n_resamples,
        "seed": seed,
        "bayes_auroc": bayes_auroc,
        "by_split": by_split,
    }


def operating_point_section(
    frame: pd.DataFrame, split: str, threshold: float, rule: str, chosen_on: str, alpha: float
) -> dict[str, Any]:
    """Sensitivity, specificity, PPV, NPV and FPR at the bundle's threshold (Wilson intervals), the
    confusion counts, and the decision curve (net benefit) of the evaluation split."""
    y, p = evaluation_arrays(frame, split)
    counts = confusion_at_threshold(y, p, threshold)
    intervals = operating_point_cis(y, p, threshold, alpha)
    curve = decision_curve(y, p, DECISION_THRESHOLDS)
    at_threshold = None
    if threshold < 1.0:
        point = decision_curve(y, p, [threshold])
        at_threshold = {
            "model": float(point.model[0]),
            "treat_all": float(point.treat_all[0]),
            "treat_none": 0.0,
        }
    return {
        "split": split,
        "threshold": threshold,
        "rule": rule,
        "chosen_on": chosen_on,
        "alpha": alpha,
        **_class_counts(y),
        "counts": {str(k): int(v) for k, v in counts.items()},
        "predicted_positive": int(counts[MetricKey.TP] + counts[MetricKey.FP]),
        "metrics": {str(k): v.to_dict() for k, v in intervals.items()},
        "decision_curve": curve.to_dict(),
        "net_benefit_at_threshold": at_threshold,
    }


def _calibration_of(
    y: np.ndarray, p: np.ndarray, n_resamples: int, alpha: float, seed: int, reliability_bins: int
) -> dict[str, Any]:
    return {
        "ece": bootstrap_ci(expected_calibration_error, y, p, n_resamples, alpha, seed=seed).to_dict(),
        "brier": bootstrap_ci(brier, y, p, n_resamples, alpha, seed=seed).to_dict(),
        "fit": calibration_slope_intercept(y, p).to_dict(),
        "reliability": reliability_curve(y, p, reliability_bins, "uniform", alpha).to_dict(),
        "mean_predicted": float(p.mean()),
        "observed_rate": float(y.mean()),
    }


def calibration_section(
    frame: pd.DataFrame,
    split: str,
    calibration_card: dict[str, Any],
    n_resamples: int,
    alpha: float,
    seed: int,
    reliability_bins: int = 10,
    members: list[dict[str, Any]] | None = None,
    member_split: str = "shared",
) -> dict[str, Any]:
    """Reliability diagrams, ECE (15 uniform bins) and Brier score with bootstrap intervals, calibration
    slope and intercept, before (``sigmoid(logit)``) and after calibration (``probability``).

    ``calibration_card``: the bundle card's ``calibration`` entry (``method``, ``temperature``, ``offset``, and the
    validation NLL before and after, when fitted). ``members``: an ensemble's members (the card's
    ``training.ensemble.members``: seed, temperature, offset), each calibrated on its own; the ensemble's
    logit is then calibrated already and the two columns agree. ``member_split``: the card's
    ``training.ensemble.split`` (``shared``: each member calibrated on the validation split; ``folds``: on the
    fold of the training and validation cases it did not train on).
    """
    y, before = evaluation_arrays(frame, split, Column.PROBABILITY_UNCALIBRATED)
    _, after = evaluation_arrays(frame, split, Column.PROBABILITY)
    return {
        "split": split,
        "alpha": alpha,
        "method": str(calibration_card.get("method", "temperature")),
        "temperature": float(calibration_card.get("temperature", 1.0)),
        "offset": float(calibration_card.get("offset", 0.0)),
        "prevalence": calibration_card.get("prevalence"),
        "fitted_on": "val",
        "validation_nll_before": calibration_card.get("nll_before"),
        "validation_nll_after": calibration_card.get("nll_after"),
        "member_split": member_split,
        "members": [
            {k: m.get(k) for k in ("seed", "held_out_cases", "temperature", "offset", "val_auroc")}
            for m in members or []
        ],
        "ece_bins": ECE_BINS,
        "ece_strategy": ECE_STRATEGY,
        "reliability_bins": reliability_bins,
        "n": int(y.size),
        "before": _calibration_of(y, before, n_resamples, alpha, seed, reliability_bins),
        "after": _calibration_of(y, after, n_resamples, alpha, seed, reliability_bins),
    }


def comparison_section(
    frame: pd.DataFrame,
    other: pd.DataFrame,
    split: str,
    names: tuple[str, str],
    model_versions: tuple[str, str],
    n_resamples: int,
    alpha: float,
    seed: int,
) -> dict[str, Any]:
    """This run (A) against another (B) on the labelled cases of ``split`` that both predicted.

    Paired stratified bootstrap of the differences A - B in AUROC, AUPRC and Brier score: both models are
    scored on the same resampled cases in every replicate. Raises :class:`SectionUnavailable` when the runs
    share no such case or disagree about a case's label (they were then scored on different cohorts).
    """
    a = labelled_split(frame, split).set_index(Keys.CASE_ID)
    b = labelled_split(other, split).set_index(Keys.CASE_ID)
    common = a.index.intersection(b.index)
    if common.empty:
        raise SectionUnavailable(
            f"the two runs share no labelled case of split '{split}' ({len(a)} in {names[0]}, {len(b)} in "
            f"{names[1]}); compare runs evaluated on the same cohort"
        )
    y = a.loc[common, Keys.LABEL].to_numpy(dtype=np.float64)
    y_other = b.loc[common, Keys.LABEL].to_numpy(dtype=np.float64)
    conflicting = int(np.count_nonzero(y != y_other))
    if conflicting:
        raise SectionUnavailable(
            f"{conflicting} shared case(s) of split '{split}' have different labels in the two runs, so the "
            "runs were evaluated on different cohorts; compare runs evaluated on the same cohort"
        )
    y = y.astype(np.int64)
    if y.sum() in (0, y.size):
        raise SectionUnavailable(
            f"the {y.size} shared labelled case(s) of split '{split}' hold one class only; AUROC needs both"
        )
    pa = a.loc[common, Column.PROBABILITY].to_numpy(dtype=np.float64)
    pb = b.loc[common, Column.PROBABILITY].to_numpy(dtype=np.float64)
    runs = []
    for name, version, p in ((names[0], model_versions[0], pa), (names[1], model_versions[1], pb)):
        runs.append(
            {
                "name": name,
                "model_version": version,
                "auroc": bootstrap_ci(auroc, y, p, n_resamples, alpha, seed=seed).to_dict(),
                "auprc": bootstrap_ci(auprc, y, p, n_resamples, alpha, seed=seed).to_dict(),
                "brier": bootstrap_ci(brier, y, p, n_resamples, alpha, seed=seed).to_dict(),
                "roc_curve": roc_curve_points(y, p, CURVE_POINTS).to_dict(),
            }
        )
    differences = {
        name: paired_bootstrap_difference(fn, y, pa, pb, n_resamples, alpha, seed=seed).to_dict()
        for name, fn in (("auroc", auroc), ("auprc", auprc), ("brier", brier))
    }
    return json_ready(
        {
            "split": split,
            "alpha": alpha,
            "n_resamples": n_resamples,
            "seed": seed,
            **_class_counts(y),
            "only_in_this_run": int(len(a.index.difference(common))),
            "only_in_other_run": int(len(b.index.difference(common))),
            "runs": runs,
            "difference": differences,
        }
    )


def _discrimination(inputs: AuditInputs) -> dict[str, Any]:
    o = inputs.options
    return discrimination_section(inputs.frame, o.split, o.n_resamples, o.alpha, o.seed, inputs.bayes_auroc)


def _operating_point(inputs: AuditInputs) -> dict[str, Any]:
    point = inputs.bundle.card.get("operating_point") or {}
    return operating_point_section(
        inputs.frame,
        inputs.options.split,
        inputs.bundle.threshold,
        str(point.get("rule", "unknown")),
        str(point.get("chosen_on", "val")),
        inputs.options.alpha,
    )


def _calibration(inputs: AuditInputs) -> dict[str, Any]:
    o = inputs.options
    ensemble = (inputs.bundle.card.get("training") or {}).get("ensemble") or {}
    return calibration_section(
        inputs.frame,
        o.split,
        inputs.bundle.card.get("calibration") or {},
        o.n_resamples,
        o.alpha,
        o.seed,
        o.reliability_bins,
        members=ensemble.get("members"),
        member_split=str(ensemble.get("split", "shared")),
    )


def _comparison(inputs: AuditInputs) -> dict[str, Any]:
    if inputs.other is None:
        raise SectionUnavailable("no second run given (--compare RUN2)")
    other_frame, other_bundle, other_name = inputs.other
    name = inputs.run.root.name
    if other_name == name:
        other_name = f"{other_name} (other)"
    o = inputs.options
    return comparison_section(
        inputs.frame,
        other_frame,
        o.split,
        (name, other_name),
        (inputs.bundle.version, other_bundle.version),
        o.n_resamples,
        o.alpha,
        o.seed,
    )


AUDIT_SECTIONS.register(
    SectionSpec(Section.DISCRIMINATION, "discrimination (bootstrap x{n_resamples})", _discrimination)
)
AUDIT_SECTIONS.register(SectionSpec(Section.OPERATING_POINT, "operating point", _operating_point))
AUDIT_SECTIONS.register(
    SectionSpec(Section.CALIBRATION, "calibration (bootstrap x{n_resamples})", _calibration)
)
AUDIT_SECTIONS.register(
    SectionSpec(Section.COMPARISON, "comparison (paired bootstrap x{n_resamples})", _comparison)
)
