"""External validation: score a run's model on another site's cohort, report drift, recalibrate locally.

``mmdx evaluate RUN --cohort DIR --name SITE`` writes under ``RUN/external/SITE/`` only (through
:class:`mmdx.run.ExternalPaths`): the predictions, metrics with bootstrap intervals, the per-pattern and
modality-removed tables, the drift report against the training summary stored in the bundle, and what each
recalibration does; the chosen recalibration is saved as a new versioned artefact in
``RUN/calibrations/SITE-v<k>/`` (:mod:`mmdx.training.recalibration`). The run's own files are never
written.

With ``local_sample=N``, N labelled cases (whole patients, drawn with ``seed``) form the local labelled
sample a recalibration may be fitted on (``split`` ``val`` in the predictions); every other case is scored
(``split`` ``test``). Recalibrations compared on the scored cases:

* ``prevalence`` (no labels): the model's home calibration-in-the-large (measured on the run's own
  held-out validation and test cases when ``RUN/predictions.parquet`` holds them) is removed, then the new prevalence is
  estimated by EM on the predicted probabilities of every external case and the odds moved to it;
* ``prevalence_labelled``: the odds moved to the local sample's observed rate;
* ``intercept``: recalibration-in-the-large fitted on the local sample;
* ``logistic``: intercept and slope fitted on the local sample;
* ``closed_test`` (recommended with a local sample, and saved unless ``method`` says otherwise): the closed
  testing procedure of Vergouwe et al. (2017, :func:`mmdx.shift.closed_test`) keeps the simplest of the
  label-free ``prevalence`` adjustment (its base: nothing fitted on the labels), ``intercept`` and
  ``logistic`` that likelihood-ratio tests on the local sample do not reject at 0.05 (``selected``). A
  logistic fit with the label-free adjustment as an offset is the same fit, reparametrised (its maximum
  likelihood does not change), so the unlabelled cases enter through the base model only.

Intervals (``scores``): each recalibration is refitted on every bootstrap replicate of the sample it was
fitted on (the local sample, or all external cases for the label-free one) and scored on a replicate of the
scored cases, so an interval covers both the fit and the evaluation; ``scores_given_fit`` resamples the
scored cases only (the recalibration as fitted); the change in ECE is also given as a paired bootstrap
difference on the scored cases.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from mmdx.bundle import MANIFEST, Bundle, load_bundle, sha256_file
from mmdx.data.dataset import build_case_table
from mmdx.data.drift import domain_auroc, drift_report, summarise_cohort, with_values
from mmdx.data.ground_truth import read_truth
from mmdx.data.validation import validate_cohort
from mmdx.errors import MmdxError
from mmdx.metrics import auroc, brier, expected_calibration_error
from mmdx.predict import CohortInputs, predictions_frame, prepare_inputs, run_predictions
from mmdx.run import ExternalPaths, RunPaths
from mmdx.shift import (
    calibration_in_the_large,
    closed_test,
    em_prevalence,
    fit_logistic,
    perfect_calibration_ece,
    to_logit,
)
from mmdx.statistics import bootstrap_ci, calibration_slope_intercept, paired_bootstrap_difference
from mmdx.training.recalibration import (
    Recalibration,
    next_version_dir,
    save_recalibration,
)
from mmdx.workflows.evaluate import cohort_metrics

Progress = Callable[[int, int], None]

#: Bootstrap replicates of every interval.
DEFAULT_RESAMPLES = 1000
#: The recalibration marked as recommended (and saved by default) with and without a labelled local sample.
RECOMMENDED_WITH_LABELS = "closed_test"
RECOMMENDED_WITHOUT_LABELS = "prevalence"
#: Significance level of the closed testing procedure's likelihood-ratio tests.
CLOSED_TEST_ALPHA = 0.05
NO_SUMMARY = (
    "the bundle holds no training summary (training_summary.json; bundles written before mmdx stored it): no "
    "drift report. Retrain with this mmdx version to get one"
)


@dataclass(frozen=True)
class ExternalResult:
    """What an external evaluation wrote: its folder, metrics, drift report, recalibration results and the
    saved recalibration artefact (None when none was fitted)."""

    paths: ExternalPaths
    metrics: dict[str, Any]
    drift: dict[str, Any]
    recalibration: dict[str, Any]
    artefact: Path | None

    @property
    def predictions_path(self) -> Path:
        return self.paths.predictions

    @property
    def metrics_path(self) -> Path:
        return self.paths.metrics


def local_sample_index(frame: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    """Row positions of about ``n`` labelled cases, whole patients drawn with ``seed`` (a patient's cases
    are never split between the local sample and the scored cases)."""
    labelled = frame["label"].notna().to_numpy()
    if n <= 0:
        return np.empty(0, dtype=int)
    if n >= int(labelled.sum()):
        raise MmdxError(
            f"--local-sample {n} leaves no labelled case to score (the cohort has {int(labelled.sum())}); "
            "choose a smaller sample"
        )
    patients = frame.loc[labelled, "patient_id"].astype(str).unique()
    order = np.random.default_rng(seed).permutation(len(patients))
    chosen: list[int] = []
    by_patient = frame[labelled].groupby(frame.loc[labelled, "patient_id"].astype(str)).indices
    positions = np.flatnonzero(labelled)
    for i in order:
        chosen.extend(positions[by_patient[patients[i]]].tolist())
        if len(chosen) >= n:
            break
    return np.sort(np.asarray(chosen, dtype=int))


def _home_reference(run: RunPaths, bundle: Bundle) -> dict[str, Any]:
    """The prevalence the model's probabilities are calibrated to at home, from its own held-out cases
    (the odds shift that makes the mean prediction equal the observed rate on the validation and test
    splits of ``RUN/predictions.parquet``), else the training prevalence as it is."""
    summary = bundle.training_summary or {}
    n, k = summary.get("n_labelled"), summary.get("n_positive")
    home = k / n if n else None
    out: dict[str, Any] = {"training_prevalence": home, "offset": 0.0, "source": "training prevalence"}
    try:
        frame = run.read_predictions() if run.predictions.is_file() else None
    except MmdxError:
        frame = None
    if frame is not None:
        # every held-out home case (validation and test splits: the model never trained on them)
        val = frame[frame["split"].isin(["val", "test"]) & frame["label"].notna()]
        if home is None and len(frame[frame["label"].notna() & (frame["split"] == "train")]):
            train = frame[(frame["split"] == "train") & frame["label"].notna()]
            home = float(train["label"].mean())
            out["training_prevalence"] = home
        if len(val) >= 20 and 0 < val["label"].sum() < len(val):
            z = to_logit(val["probability"].to_numpy())
            offset, _ = fit_logistic(z, val["label"].to_numpy(dtype=float), slope=False)
            out.update(
                offset=offset,
                n_home=len(val),
                source="the run's held-out home cases (validation and test splits): home "
                "calibration-in-the-large removed first",
            )
    if home is None:
        raise MmdxError(
            f"the training prevalence is unknown ({NO_SUMMARY.split(':')[0]} and {run.predictions} is missing); "
            "run 'mmdx evaluate RUN' on the training cohort first"
        )
    return out


def _fit(
    method: str,
    z: np.ndarray,
    y: np.ndarray | None,
    reference: dict[str, Any],
    unlabelled: np.ndarray | None = None,
) -> tuple[float, float, dict]:
    """``(intercept, slope, details)`` of a recalibration on the calibrated logits ``z`` (labels ``y`` of the
    local sample, or None for the label-free one; ``unlabelled``: every external case's calibrated logit,
    the label-free base of ``closed_test``)."""
    home = reference["training_prevalence"]
    base = reference["offset"] - float(to_logit(np.array(home)))
    if method == "prevalence":
        estimate = em_prevalence(expit(z + reference["offset"]), home)
        return (
            base + float(to_logit(np.array(estimate.prevalence))),
            1.0,
            {
                "prevalence": estimate.prevalence,
                "iterations": estimate.iterations,
                "converged": estimate.converged,
            },
        )
    assert y is not None
    if method == "prevalence_labelled":
        rate = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
        return base + float(to_logit(np.array(rate))), 1.0, {"prevalence": rate}
    if method == "closed_test":
        assert unlabelled is not None
        base_intercept, _, label_free = _fit("prevalence", unlabelled, None, reference)
        test = closed_test(z, y, base_intercept, CLOSED_TEST_ALPHA)
        details = {"selected": test.selected, "base": "prevalence", "closed_test": test.to_dict()}
        if test.selected == "base":
            details["prevalence"] = label_free["prevalence"]
        return test.intercept, test.slope, details
    intercept, slope = fit_logistic(z, y, slope=method == "logistic")
    return intercept, slope, {}


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    z = to_logit(p)
    try:
        intercept, _ = fit_logistic(z, y, slope=False)
        _, slope = fit_logistic(z, y, slope=True)
    except (ValueError, np.linalg.LinAlgError):
        intercept = slope = math.nan
    return {
        "citl": calibration_in_the_large(y, p),
        "calibration_intercept": intercept,
        "calibration_slope": slope,
        "ece": expected_calibration_error(y, p),
        "brier": brier(y, p),
    }


def _intervals(values: list[dict[str, float]], point: dict[str, float]) -> dict[str, dict[str, float]]:
    out = {}
    for key, estimate in point.items():
        column = np.array([v[key] for v in values], dtype=float)
        column = column[np.isfinite(column)]
        low, high = np.quantile(column, [0.025, 0.975]) if column.size else (math.nan, math.nan)
        out[key] = {"estimate": estimate, "low": float(low), "high": float(high), "n_valid": int(column.size)}
    return out


@dataclass(frozen=True)
class _Scored:
    """The scored cases' calibrated logits and labels, and whether calibration can be scored on them."""

    z: np.ndarray
    y: np.ndarray

    @property
    def ok(self) -> bool:
        return self.y.size > 0 and 0 < int(self.y.sum()) < self.y.size


def _score_fit(
    method: str,
    fit: tuple[float, float, dict],
    sample: tuple[np.ndarray, np.ndarray | None, np.ndarray | None],
    scored: _Scored,
    reference: dict[str, Any],
    rng: np.random.Generator,
    n_resamples: int,
    seed: int,
) -> dict[str, Any]:
    """One recalibration's scores on the scored cases, refitted on each replicate of ``sample``."""
    intercept, slope, details = fit
    entry: dict[str, Any] = {"status": "ok", "intercept": intercept, "slope": slope, **details}
    if not scored.ok:
        return {**entry, "scores": None, "reason": "no labelled scored cases of both classes: not scored"}
    fit_z, fit_y, unlabelled = sample
    zt, yt = scored.z, scored.y
    before, after = expit(zt), expit(intercept + slope * zt)
    replicates, conditional = [], []
    for _ in range(n_resamples):
        i = rng.integers(0, len(fit_z), len(fit_z))
        j = rng.integers(0, len(zt), len(zt))
        conditional.append(_scores(yt[j], after[j]))
        u = None if unlabelled is None else unlabelled[rng.integers(0, len(unlabelled), len(unlabelled))]
        try:
            a, b, _ = _fit(method, fit_z[i], None if fit_y is None else fit_y[i], reference, u)
        except ValueError:
            continue
        replicates.append(_scores(yt[j], expit(a + b * zt[j])))
    ece_change = paired_bootstrap_difference(
        expected_calibration_error, yt, after, before, n_resamples, stratified=False, seed=seed
    )
    return {
        **entry,
        "scores": _intervals(replicates, _scores(yt, after)),
        # this fitted recalibration, resampling the scored cases only
        "scores_given_fit": _intervals(conditional, _scores(yt, after)),
        "ece_perfect": perfect_calibration_ece(after, seed=seed).to_dict(),
        "ece_change": ece_change.to_dict(),
        "auroc": auroc(yt, after),
    }


def _original(scored: _Scored, rng: np.random.Generator, n_resamples: int, seed: int) -> dict[str, Any]:
    if not scored.ok:
        return {"scores": None, "reason": "no labelled scored cases of both classes"}
    zt, yt = scored.z, scored.y
    before = expit(zt)
    draws = (rng.integers(0, len(yt), len(yt)) for _ in range(n_resamples))
    return {
        "scores": _intervals([_scores(yt[i], before[i]) for i in draws], _scores(yt, before)),
        "ece_perfect": perfect_calibration_ece(before, seed=seed).to_dict(),
    }


def _recalibration_results(
    frame: pd.DataFrame, bundle: Bundle, reference: dict[str, Any], n_resamples: int, seed: int
) -> dict[str, Any]:
    z_all = bundle.calibration.calibrated_logit(frame["logit"].to_numpy(dtype=float))
    labelled = frame["label"].notna().to_numpy()
    scored_rows = (frame["split"] == "test").to_numpy() & labelled
    local = (frame["split"] == "val").to_numpy() & labelled
    y_all = frame["label"].to_numpy(dtype=float)
    scored = _Scored(z_all[scored_rows], y_all[scored_rows].astype(int))
    zl, yl = z_all[local], y_all[local]
    labels = bool(local.sum()) and 0 < yl.sum() < len(yl)
    methods = ["prevalence"] + (
        ["prevalence_labelled", "intercept", "logistic", "closed_test"] if labels else []
    )
    rng = np.random.default_rng(seed)
    results: dict[str, Any] = {
        "n_scored": int(scored_rows.sum()),
        "n_local_sample": int(local.sum()),
        "n_local_positive": int(yl.sum()) if local.sum() else 0,
        "reference": reference,
        "n_resamples": n_resamples,
        "seed": seed,
        "interval_method": "percentile bootstrap: refitted on a replicate of its fitting sample, scored on a "
        "replicate of the scored cases",
        "original": _original(scored, rng, n_resamples, seed),
        "recommended": RECOMMENDED_WITH_LABELS if labels else RECOMMENDED_WITHOUT_LABELS,
        "methods": {},
    }
    for method in methods:
        if method == "prevalence":
            sample: tuple[np.ndarray, np.ndarray | None, np.ndarray | None] = (z_all, None, None)
        else:
            sample = (zl, yl, z_all if method == "closed_test" else None)
        try:
            fit = _fit(method, *sample[:2], reference, sample[2])
        except (ValueError, np.linalg.LinAlgError) as exc:
            results["methods"][method] = {"status": "not_available", "reason": str(exc)}
            continue
        intercept, slope, _ = fit
        if not (math.isfinite(intercept) and math.isfinite(slope) and slope > 0):
            results["methods"][method] = {
                "status": "not_available",
                "reason": f"the fitted slope is {slope:.3g}: on this sample the model does not rank the cases "
                "the right way round; recalibrate on a larger local sample",
            }
            continue
        results["methods"][method] = _score_fit(
            method, fit, sample, scored, reference, rng, n_resamples, seed
        )
    return results


def _metrics(
    frame: pd.DataFrame,
    bundle: Bundle,
    inputs: CohortInputs,
    site: str,
    batch_size: int,
    n_resamples: int,
    seed: int,
) -> dict[str, Any]:
    metrics = {"site": site, **cohort_metrics(frame, bundle, inputs, batch_size, intervals={})}
    test = frame[(frame["split"] == "test") & frame["label"].notna()]
    y, p = test["label"].to_numpy(dtype=int), test["probability"].to_numpy(dtype=float)
    if len(test) and 0 < y.sum() < len(y):
        for name, fn, stratified in (
            ("auroc", auroc, True),
            ("brier", brier, False),
            ("ece", expected_calibration_error, False),
            ("citl", calibration_in_the_large, False),
        ):
            metrics["intervals"][name] = bootstrap_ci(
                fn, y, p, n_resamples, stratified=stratified, seed=seed
            ).to_dict()
        fit = calibration_slope_intercept(y, p)
        metrics["calibration_fit"] = {"slope": fit.slope, "intercept": fit.intercept}
    truth = read_truth(inputs.cohort.root)
    if truth is not None and len(test):
        posterior = [truth.records.get(c, {}).get("posterior") for c in test["case_id"]]
        if all(v is not None for v in posterior) and 0 < y.sum() < len(y):
            metrics["bayes_auroc"] = auroc(y, np.asarray(posterior, dtype=float))
    return metrics


def _domain_classifier(bundle: Bundle, inputs: CohortInputs, seed: int) -> dict[str, Any]:
    """Training site against this site, when the training cohort is still where the card says."""
    path = (bundle.card.get("cohort") or {}).get("path")
    if not path or not Path(path).is_dir():
        return {"available": False, "reason": f"the training cohort is not at hand ({path})"}
    try:
        home = validate_cohort(path, workers=1, check_images=False)
        table = build_case_table(home, bundle.preprocessing)
    except MmdxError as exc:
        return {"available": False, "reason": f"the training cohort cannot be read: {exc}"}
    split = home.cases.set_index("case_id").loc[table.case_ids, "split"].to_numpy()
    train = np.flatnonzero(split == "train")

    def features(t: Any, index: np.ndarray) -> np.ndarray:
        return np.column_stack([t.canonical[index], t.presence[index].astype(float)])

    value = domain_auroc(
        features(table, train), features(inputs.table, np.arange(len(inputs.table.case_ids))), seed
    )
    return {
        "available": True,
        "auroc": value,
        "n_training": int(train.size),
        "n_external": len(inputs.table.case_ids),
        "inputs": "tabular values (missing as missing) and modality presence",
        "method": "gradient-boosted trees, 5-fold cross-validated predictions",
    }


def _drift(bundle: Bundle, inputs: CohortInputs, estimated: float | None, seed: int) -> dict[str, Any]:
    if bundle.training_summary is None:
        return {"status": "not_available", "reason": NO_SUMMARY}
    columns = bundle.preprocessing.tabular_columns
    summary = summarise_cohort(inputs.cohort, inputs.table, columns)
    labelled = bool(np.isfinite(inputs.table.labels).all())
    report = drift_report(
        bundle.training_summary,
        with_values(summary, inputs.table, columns),
        labelled,
        estimated_prevalence=estimated,
    )
    return {"status": "ok", **report, "domain_classifier": _domain_classifier(bundle, inputs, seed)}


def evaluate_external(
    run_dir: str | Path,
    cohort_dir: str | Path,
    site: str,
    *,
    local_sample: int = 0,
    method: str | None = None,
    seed: int = 0,
    n_resamples: int = DEFAULT_RESAMPLES,
    workers: int = 2,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> ExternalResult:
    """Evaluate the run's model on ``cohort_dir`` as site ``site``; see the module docs. ``method``: the
    recalibration saved as an artefact (default: the recommended one, ``closed_test`` with a local sample,
    else ``prevalence``)."""
    run = RunPaths(Path(run_dir))
    run.require("bundle")
    paths = run.external(site)
    if not Path(cohort_dir).is_dir():
        raise MmdxError(f"cohort {cohort_dir} not found; pass --cohort DIR")
    bundle = load_bundle(run.bundle)
    method = method or (RECOMMENDED_WITH_LABELS if local_sample else RECOMMENDED_WITHOUT_LABELS)
    if method != "prevalence" and not local_sample:
        raise MmdxError(f"recalibration '{method}' needs labelled local cases: pass --local-sample N")
    inputs = prepare_inputs(bundle, cohort_dir, workers=workers, progress=progress)
    frame = predictions_frame(
        bundle, inputs, run_predictions(bundle, inputs, batch_size), assigned_splits=False
    )
    frame["split"] = "test"
    frame.loc[frame.index[local_sample_index(frame, local_sample, seed)], "split"] = "val"

    reference = _home_reference(run, bundle)
    recalibration = _recalibration_results(frame, bundle, reference, n_resamples, seed)
    estimated = recalibration["methods"]["prevalence"].get("prevalence")
    metrics = _metrics(frame, bundle, inputs, site, batch_size, n_resamples, seed)
    drift = _drift(bundle, inputs, estimated, seed)

    paths.create()
    paths.write_validation_report(inputs.cohort.report)
    paths.write_predictions(frame)
    paths.write_metrics(metrics)
    paths.write_drift(drift)
    artefact = None
    chosen = recalibration["methods"].get(method, {"status": "not_available", "reason": "not computed"})
    if chosen["status"] != "ok":
        recalibration["not_saved"] = f"recalibration '{method}' was not saved: {chosen['reason']}"
    else:
        artefact = save_recalibration(
            next_version_dir(run.calibrations, site),
            Recalibration(
                method=method,
                intercept=chosen["intercept"],
                slope=chosen["slope"],
                site=site,
                model_version=bundle.version,
                n_cases=recalibration["n_local_sample"] if method != "prevalence" else len(frame),
                n_positive=recalibration["n_local_positive"] if method != "prevalence" else None,
                prevalence=chosen.get("prevalence"),
                fitted_on=str(inputs.cohort.root),
                selected=chosen.get("selected", ""),
            ),
            sha256_file(run.bundle / MANIFEST),
        )
        recalibration["artefact"] = str(artefact)
    recalibration["saved_method"] = method if artefact else None
    paths.write_recalibration(recalibration)
    return ExternalResult(paths, metrics, drift, recalibration, artefact)
