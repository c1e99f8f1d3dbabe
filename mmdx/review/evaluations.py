"""The evaluations of a run the dashboard can show: the run's own, and each external one.

``RUN/metrics.json`` holds the run's own evaluation (its held-out test split); ``RUN/external/<site>/``
each evaluation on another site's cohort (``mmdx evaluate RUN --cohort DIR --name SITE``: metrics with
bootstrap intervals, the drift report, the local recalibrations). :func:`evaluation_choices` lists them and
:func:`evaluation_summary` gathers what the page shows of one: aggregate numbers only, no case, read only
after the principal is checked like any case reader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmdx.errors import MmdxError
from mmdx.review.access import authorize_case_reading
from mmdx.review.context import ReviewContext

#: The key of the run's own evaluation among :func:`evaluation_choices` (an external one is its site name).
OWN_EVALUATION = ""

#: The metrics shown, in order, with their labels.
METRIC_LABELS = {
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "brier": "Brier score",
    "ece": "ECE (15 bins)",
    "citl": "mean predicted − observed",
    "sensitivity": "sensitivity at the threshold",
    "specificity": "specificity at the threshold",
}

#: What each recalibration method is, for the recalibration table.
RECALIBRATION_LABELS = {
    "original": "the model as it left home",
    "prevalence": "prevalence adjusted without labels",
    "prevalence_labelled": "prevalence of the local sample",
    "intercept": "recalibration-in-the-large",
    "logistic": "logistic recalibration",
    "closed_test": "closed testing procedure",
}


@dataclass(frozen=True)
class EvaluationSummary:
    """What the evaluation page shows of one evaluation.

    Attributes:
        key: :data:`OWN_EVALUATION` or the site name; ``title``: how the page names it; ``folder``: where
            its files are.
        n_cases, n_positive: the scored cases (the run's own test split, or the external cases not used to
            recalibrate) and how many are positive.
        metrics: one row per metric (``metric``, ``estimate``, ``low``, ``high``; the interval NaN when the
            evaluation stored none).
        cases: the scored cases' predictions summarised per role (``cases``, ``mean predicted``,
            ``observed rate``, ``predicted positive``).
        bayes_auroc: the AUROC of the exact Bayes posterior on the same cases (synthetic cohorts), else None.
        drift_flags: the drift report's plain-language flags (external only).
        recalibration: one row per recalibration (external only, None otherwise).
        recommended: the recalibration the evaluation marks as recommended, and ``selected``: the update
            the closed testing procedure chose (when it ran).
        notes: what the page should say beside the numbers.
    """

    key: str
    title: str
    folder: Path
    n_cases: int
    n_positive: int
    metrics: pd.DataFrame
    cases: pd.DataFrame
    bayes_auroc: float | None = None
    drift_flags: list[str] = field(default_factory=list)
    recalibration: pd.DataFrame | None = None
    recommended: str | None = None
    selected: str | None = None
    notes: list[str] = field(default_factory=list)


def evaluation_choices(context: ReviewContext) -> dict[str, str]:
    """Every evaluation of the run, ``{key: label}``: the run's own first, then each external site."""
    choices = {OWN_EVALUATION: "this run's own evaluation (its held-out test split)"}
    for site in context.run.external_sites():
        choices[site] = f"external site: {site}"
    return choices


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _metrics_table(test: dict[str, Any], intervals: dict[str, Any], citl: float) -> pd.DataFrame:
    rows = []
    for name, label in METRIC_LABELS.items():
        interval = intervals.get(name) or {}
        estimate = _number(interval.get("estimate", test.get(name, citl if name == "citl" else None)))
        if math.isnan(estimate):
            continue
        rows.append(
            {
                "metric": label,
                "estimate": estimate,
                "low": _number(interval.get("low")),
                "high": _number(interval.get("high")),
            }
        )
    return pd.DataFrame(rows, columns=["metric", "estimate", "low", "high"])


def _cases_table(predictions: pd.DataFrame, threshold: float, roles: dict[str, str]) -> pd.DataFrame:
    rows = []
    for split, role in roles.items():
        part = predictions[predictions["split"].astype(str) == split]
        if part.empty:
            continue
        p = part["probability"].to_numpy(dtype=np.float64)
        labels = part["label"].to_numpy(dtype=np.float64) if "label" in part else np.full(len(part), np.nan)
        known = np.isfinite(labels)
        rows.append(
            {
                "cases": role,
                "n": len(part),
                "mean predicted": float(p.mean()),
                "observed rate": float(labels[known].mean()) if known.any() else math.nan,
                "predicted positive": float((p >= threshold).mean()),
            }
        )
    return pd.DataFrame(rows, columns=["cases", "n", "mean predicted", "observed rate", "predicted positive"])


def _recalibration_table(results: dict[str, Any]) -> pd.DataFrame:
    rows = []
    recommended = results.get("recommended")
    for name, entry in [("original", results.get("original") or {}), *results.get("methods", {}).items()]:
        scores = entry.get("scores") if entry.get("status", "ok") == "ok" else None
        if not scores:
            continue
        label = RECALIBRATION_LABELS.get(name, name)
        if entry.get("selected"):
            label += f" (chose {RECALIBRATION_LABELS.get(entry['selected'], entry['selected'])})"
        rows.append(
            {
                "recalibration": label,
                "recommended": name == recommended,
                "mean predicted − observed": _number(scores["citl"]["estimate"]),
                "calibration slope": _number(scores["calibration_slope"]["estimate"]),
                "slope low": _number(scores["calibration_slope"]["low"]),
                "slope high": _number(scores["calibration_slope"]["high"]),
                "ECE": _number(scores["ece"]["estimate"]),
                "ECE of a perfectly calibrated model": _number((entry.get("ece_perfect") or {}).get("mean")),
            }
        )
    return pd.DataFrame(rows)


def _own(context: ReviewContext) -> EvaluationSummary:
    metrics = context.run.read_metrics()
    if not metrics:
        raise MmdxError(f"the run has no metrics.json in {context.run.root}; run 'mmdx evaluate RUN'")
    test = (metrics.get("splits") or {}).get("test") or {}
    predictions = context.run.read_predictions()
    scored = predictions[(predictions["split"].astype(str) == "test") & predictions["label"].notna()]
    citl = float(scored["probability"].mean() - scored["label"].mean()) if len(scored) else math.nan
    return EvaluationSummary(
        key=OWN_EVALUATION,
        title="this run's own evaluation",
        folder=context.run.root,
        n_cases=int(test.get("n", len(scored))),
        n_positive=int(test.get("n_positive", scored["label"].sum() if len(scored) else 0)),
        metrics=_metrics_table(test, metrics.get("intervals") or {}, citl),
        cases=_cases_table(predictions, context.threshold, {"test": "held-out test split"}),
        bayes_auroc=_optional(metrics.get("bayes_auroc")),
        notes=["Intervals of the run's own evaluation: 'mmdx audit RUN'."],
    )


def _optional(value: Any) -> float | None:
    number = _number(value)
    return None if math.isnan(number) else number


def _external(context: ReviewContext, site: str) -> EvaluationSummary:
    paths = context.run.external(site)
    paths.require()
    metrics = paths.read_metrics() or {}
    if metrics.get("model_version") not in (None, context.model_version):
        raise MmdxError(
            f"the external evaluation '{site}' was made by model {metrics.get('model_version')}, not this "
            f"run's {context.model_version}: evaluate the site again ('mmdx evaluate RUN --cohort DIR --name "
            f"{site}')"
        )
    test = (metrics.get("splits") or {}).get("test") or {}
    predictions = paths.read_predictions()
    drift = paths.read_drift() or {}
    results = paths.read_recalibration()
    recalibration = _recalibration_table(results) if results else None
    recommended = (results or {}).get("recommended")
    selected = ((results or {}).get("methods", {}).get("closed_test") or {}).get("selected")
    notes = [
        "Ground-truth labels of the site's cases were used only for these aggregate numbers; the worklist "
        "shows this run's own cases."
    ]
    if drift.get("status") != "ok" and drift.get("reason"):
        notes.append(f"No drift report: {drift['reason']}")
    return EvaluationSummary(
        key=site,
        title=f"external site {site}",
        folder=paths.root,
        n_cases=int(test.get("n", 0)),
        n_positive=int(test.get("n_positive", 0)),
        metrics=_metrics_table(test, metrics.get("intervals") or {}, math.nan),
        cases=_cases_table(
            predictions,
            context.threshold,
            {"test": "scored", "val": "local labelled sample (recalibration)"},
        ),
        bayes_auroc=_optional(metrics.get("bayes_auroc")),
        drift_flags=[str(flag) for flag in drift.get("flags", [])],
        recalibration=recalibration,
        recommended=recommended,
        selected=selected,
        notes=notes,
    )


def evaluation_summary(context: ReviewContext, principal: object, key: str) -> EvaluationSummary:
    """The evaluation ``key`` (:data:`OWN_EVALUATION` or a site of :func:`evaluation_choices`). Raises
    :class:`~mmdx.store.PermissionDenied` for a principal that may not read the run's cases, and
    :class:`MmdxError` naming the file and what to do when the evaluation is missing or was made by
    another model."""
    authorize_case_reading(context.store, principal, context.run_id)
    if key == OWN_EVALUATION:
        return _own(context)
    if key not in context.run.external_sites():
        raise MmdxError(
            f"no external evaluation '{key}' in {context.run.root}; run 'mmdx evaluate RUN --cohort DIR "
            f"--name {key}'"
        )
    return _external(context, key)
