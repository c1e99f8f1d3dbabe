"""The "External validation" section: the run's model on another site's cohort beside its own test split.

Reads one external evaluation (``RUN/external/SITE/``, written by ``mmdx evaluate RUN --cohort DIR --name
SITE``; chosen with ``mmdx audit --external SITE``, or the only one there is): discrimination and
calibration internal (the run's evaluation split) and external (the scored external cases), each with a
bootstrap interval; the drift report's flags and its feature table; what each local recalibration did, with
the ECE a perfectly calibrated model gets on as many cases; and the TRIPOD+AI items the section answers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mmdx.audit.sections import (
    AUDIT_SECTIONS,
    AuditInputs,
    Section,
    SectionSpec,
    SectionUnavailable,
    evaluation_arrays,
)
from mmdx.errors import MmdxError
from mmdx.metrics import auroc, brier, expected_calibration_error
from mmdx.shift import calibration_in_the_large
from mmdx.statistics import bootstrap_ci, calibration_slope_intercept

#: TRIPOD+AI items (Collins et al., BMJ 2024) an external validation answers, and how.
TRIPOD_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("5a", "Source of data", "the external cohort, its site and size"),
    ("12e", "Performance measures", "AUROC, Brier score, ECE, calibration-in-the-large, slope and intercept"),
    (
        "12f",
        "Model updating or recalibration",
        "prevalence adjustment and logistic recalibration on a local sample",
    ),
    ("20c", "Development versus evaluation data", "the drift report: prevalence, predictors, missingness"),
    (
        "23a",
        "Performance with confidence intervals",
        "internal and external estimates with bootstrap intervals",
    ),
    ("24", "Model updating results", "calibration before and after each recalibration, with intervals"),
)


def _site(inputs: AuditInputs) -> str:
    sites = inputs.run.external_sites()
    chosen = getattr(inputs.options, "external", None)
    if chosen is None:
        if not sites:
            raise SectionUnavailable(
                "the run has no external evaluation; run 'mmdx evaluate RUN --cohort DIR --name SITE' first"
            )
        if len(sites) > 1:
            raise SectionUnavailable(
                f"the run has {len(sites)} external evaluations ({', '.join(sites)}); choose one with --external SITE"
            )
        return sites[0]
    if chosen not in sites:
        raise SectionUnavailable(
            f"no external evaluation '{chosen}' in the run (found: {', '.join(sites) or 'none'}); "
            f"run 'mmdx evaluate RUN --cohort DIR --name {chosen}'"
        )
    return chosen


def performance(y: np.ndarray, p: np.ndarray, n_resamples: int, alpha: float, seed: int) -> dict[str, Any]:
    """AUROC (stratified bootstrap), Brier, ECE and calibration-in-the-large (bootstrap) with intervals,
    and the calibration slope and intercept, of labels ``y`` and probabilities ``p``."""
    out: dict[str, Any] = {"n": int(y.size), "n_positive": int(y.sum()), "prevalence": float(y.mean())}
    for name, fn, stratified in (
        ("auroc", auroc, True),
        ("brier", brier, False),
        ("ece", expected_calibration_error, False),
        ("citl", calibration_in_the_large, False),
    ):
        out[name] = bootstrap_ci(fn, y, p, n_resamples, alpha, stratified=stratified, seed=seed).to_dict()
    fit = calibration_slope_intercept(y, p)
    out["calibration_slope"] = fit.slope
    out["calibration_intercept"] = fit.intercept
    return out


def _drift(drift: dict[str, Any] | None) -> dict[str, Any]:
    if not drift or drift.get("status") != "ok":
        reason = (drift or {}).get("reason", "drift.json is missing; evaluate the site again")
        return {"available": False, "reason": reason}
    return {
        "available": True,
        "labelled": drift["labelled"],
        "correction": drift["correction"],
        "caveat": drift.get("caveat"),
        "prevalence": drift["prevalence"],
        "flags": drift["flags"],
        "domain_auroc": (drift.get("domain_classifier") or {}).get("auroc"),
        "features": [
            {k: row.get(k) for k in ("feature", "p_value", "p_adjusted", "flag", "standardised_difference")}
            for row in drift["features"]
        ],
    }


def _recalibration(results: dict[str, Any] | None) -> dict[str, Any]:
    if not results:
        return {"methods": [], "saved": None}
    rows = []
    for name, entry in [("original", results["original"]), *results["methods"].items()]:
        if entry.get("status", "ok") != "ok" or entry.get("scores") is None:
            continue
        scores = entry["scores"]
        label = name + (f" (chose {entry['selected']})" if entry.get("selected") else "")
        rows.append(
            {
                "method": label + (", recommended" if name == results.get("recommended") else ""),
                "selected": entry.get("selected"),
                "intercept": entry.get("intercept"),
                "slope": entry.get("slope"),
                "citl": scores["citl"],
                "calibration_intercept": scores["calibration_intercept"],
                "calibration_slope": scores["calibration_slope"],
                "ece": scores["ece"],
                "ece_perfect": entry["ece_perfect"]["mean"],
            }
        )
    return {
        "methods": rows,
        "n_local_sample": results["n_local_sample"],
        "n_scored": results["n_scored"],
        "interval_method": results["interval_method"],
        "saved": results.get("artefact"),
        "recommended": results.get("recommended"),
    }


def external_section(inputs: AuditInputs) -> dict[str, Any]:
    site = _site(inputs)
    paths = inputs.run.external(site)
    try:
        frame = paths.read_predictions()
    except MmdxError as exc:
        raise SectionUnavailable(str(exc)) from None
    metrics = paths.read_metrics() or {}
    if metrics.get("model_version") not in (None, inputs.bundle.version):
        raise SectionUnavailable(
            f"the external evaluation '{site}' was made by model {metrics.get('model_version')}, not the run's "
            f"{inputs.bundle.version}: evaluate the site again"
        )
    o = inputs.options
    y_int, p_int = evaluation_arrays(inputs.frame, o.split)
    y_ext, p_ext = evaluation_arrays(frame, "test")
    internal = performance(y_int, p_int, o.n_resamples, o.alpha, o.seed)
    external = performance(y_ext, p_ext, o.n_resamples, o.alpha, o.seed)
    bayes = metrics.get("bayes_auroc")
    return {
        "site": site,
        "cohort": metrics.get("cohort"),
        "internal_split": o.split,
        "internal": internal,
        "external": external,
        "auroc_drop": internal["auroc"]["estimate"] - external["auroc"]["estimate"],
        "bayes_auroc": bayes if bayes is None or math.isfinite(bayes) else None,
        "drift": _drift(paths.read_drift()),
        "recalibration": _recalibration(paths.read_recalibration()),
        "tripod_ai": [{"item": i, "topic": t, "covers": c} for i, t, c in TRIPOD_ITEMS],
        "method": f"{o.alpha:g}-level percentile bootstrap, {o.n_resamples} resamples (seed {o.seed}); AUROC "
        "stratified by class",
    }


AUDIT_SECTIONS.register(
    SectionSpec(
        Section.EXTERNAL_VALIDATION, "external validation (bootstrap x{n_resamples})", external_section
    )
)
