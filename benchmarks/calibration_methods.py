"""Calibration methods compared on the same trained models: temperature scaling, Platt scaling, and Platt
scaling with its offset anchored to the development cohort's class rate.

Both are fitted, exactly as ``mmdx train`` fits them (:class:`mmdx.training.calibration.TemperatureScaler`),
on the labelled validation cases of a run's own predictions (``split == "val"``), and scored on the labelled
cases of larger extra test cohorts from the same generator that the model never saw. The models are not
retrained: calibration is a function of the logit alone, so one set of predictions serves both methods.

For each model and method: calibration intercept (slope fixed at 1) and slope, mean predicted minus observed,
ECE (15 uniform bins) beside the ECE a perfectly calibrated model gets on the same cases (labels drawn from
the predictions, :func:`mmdx.shift.perfect_calibration_ece`), each with a percentile-bootstrap interval over
the test cases; and the paired differences Platt - temperature and anchored - Platt of the ECE and of
|intercept|. ``platt_anchored`` is what ``mmdx train`` fits by default (``train.calibration_prevalence:
development``): Platt's temperature, with the offset set so that the mean calibrated probability on the
validation rows equals the share of positives among the run's labelled training and validation rows. Targets (the
balanced-training work): slope in [0.9, 1.1], |intercept| <= 0.1, ECE within 0.01 of the perfect model's.
Usage::

    python -m benchmarks.calibration_methods --model NAME VAL.parquet TEST.parquet [TEST2.parquet ...] \\
        [--model ...] [--truth COHORT ...] --out results.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.external_validation import verdict
from mmdx.metrics import expected_calibration_error
from mmdx.shift import calibration_in_the_large, perfect_calibration_ece
from mmdx.statistics import calibration_slope_intercept
from mmdx.training.calibration import TemperatureScaler

METHODS = ("temperature", "platt", "platt_anchored")
#: paired differences reported: (name, method, baseline)
DIFFERENCES = (
    ("platt_minus_temperature", "platt", "temperature"),
    ("anchored_minus_platt", "platt_anchored", "platt"),
)
SLOPE_TARGET = (0.9, 1.1)
INTERCEPT_TARGET = 0.1
ECE_MARGIN = 0.01


def labelled(frame: pd.DataFrame, split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(logits, labels)`` of the labelled rows (of ``split`` when given)."""
    keep = frame["label"].notna()
    if split is not None:
        keep &= frame["split"] == split
    return frame.loc[keep, "logit"].to_numpy(np.float64), frame.loc[keep, "label"].to_numpy(np.float64)


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    fit = calibration_slope_intercept(y, p)
    return {
        "intercept": fit.intercept,
        "slope": fit.slope,
        "citl": calibration_in_the_large(y, p),
        "ece": expected_calibration_error(y, p),
    }


def _interval(estimate: float, values: np.ndarray) -> dict[str, float]:
    low, high = np.nanquantile(values, [0.025, 0.975])
    return {"estimate": float(estimate), "low": float(low), "high": float(high)}


def development_prevalence(frame: pd.DataFrame) -> float:
    """Share of positives among the labelled training and validation rows of a run's own predictions."""
    keep = frame["label"].notna() & frame["split"].isin(["train", "val"])
    return float(frame.loc[keep, "label"].mean())


def fit_methods(val: tuple[np.ndarray, np.ndarray], prevalence: float) -> dict[str, TemperatureScaler]:
    """Every method of :data:`METHODS` fitted on the validation ``(logits, labels)``."""
    zv, yv = val
    return {
        "temperature": TemperatureScaler(method="temperature").fit(zv, yv),
        "platt": TemperatureScaler(method="platt").fit(zv, yv),
        "platt_anchored": TemperatureScaler(method="platt").fit(zv, yv, prevalence=prevalence),
    }


def compare(
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    resamples: int,
    seed: int,
    prevalence: float | None = None,
) -> dict[str, Any]:
    """Fit every method on ``val`` and score it on ``test`` with bootstrap intervals (paired).
    ``prevalence``: the development class rate the anchored method uses (default: the validation split's)."""
    yv, (zt, yt) = val[1], test
    scalers = fit_methods(val, float(yv.mean()) if prevalence is None else prevalence)
    probabilities = {m: scaler.transform(zt) for m, scaler in scalers.items()}
    point = {m: scores(yt, p) for m, p in probabilities.items()}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    for _ in range(resamples):
        i = rng.integers(0, yt.size, yt.size)
        for m, p in probabilities.items():
            draws[m].append(scores(yt[i], p[i]))
    out: dict[str, Any] = {
        "n_val": int(yv.size),
        "n_test": int(yt.size),
        "prevalence": float(yt.mean()),
        "validation_prevalence": float(yv.mean()),
        "development_prevalence": scalers["platt_anchored"].prevalence_,
    }
    for m in METHODS:
        reference = perfect_calibration_ece(probabilities[m], seed=seed)
        row = {k: _interval(point[m][k], np.array([d[k] for d in draws[m]])) for k in point[m]}
        excess = {k: v - reference.mean for k, v in row["ece"].items()}
        out[m] = {
            "fitted": scalers[m].to_dict(),
            **row,
            "ece_perfect": reference.to_dict(),
            "ece_excess": excess,
            "verdicts": {
                "slope": verdict(row["slope"], *SLOPE_TARGET),
                "intercept": verdict(row["intercept"], -INTERCEPT_TARGET, INTERCEPT_TARGET),
                "ece": verdict(excess, -1.0, ECE_MARGIN),
            },
        }
    for name, method, baseline in DIFFERENCES:
        for key, f in (("ece", lambda d: d["ece"]), ("abs_intercept", lambda d: abs(d["intercept"]))):
            diffs = np.array([f(a) - f(b) for a, b in zip(draws[method], draws[baseline], strict=True)])
            out[f"{name}_{key}"] = _interval(f(point[method]) - f(point[baseline]), diffs)
    return out


def _fmt(d: dict[str, float], digits: int = 3) -> str:
    return f"{d['estimate']:+.{digits}f} [{d['low']:+.{digits}f}, {d['high']:+.{digits}f}]"


def report(name: str, result: dict[str, Any]) -> str:
    lines = [f"{name}: {result['n_val']} validation cases, {result['n_test']} test cases"]
    for m in METHODS:
        r = result[m]
        lines.append(
            f"  {m}: T {r['fitted']['temperature']:.3f} offset {r['fitted']['offset']:+.3f}; intercept "
            f"{_fmt(r['intercept'])} ({r['verdicts']['intercept']}); slope {_fmt(r['slope'])} "
            f"({r['verdicts']['slope']}); mean predicted - observed {_fmt(r['citl'])}; ECE {_fmt(r['ece'])} "
            f"vs perfect {r['ece_perfect']['mean']:.3f}, excess {_fmt(r['ece_excess'])} ({r['verdicts']['ece']})"
        )
    for name, method, baseline in DIFFERENCES:
        lines.append(
            f"  {method} - {baseline}: ECE {_fmt(result[f'{name}_ece'])}, |intercept| "
            f"{_fmt(result[f'{name}_abs_intercept'])}"
        )
    return "\n".join(lines)


def posterior_calibration(cohort: Path, resamples: int, seed: int) -> dict[str, Any]:
    """How well a synthetic cohort's own labels follow its exact Bayes posterior
    (``ground_truth/truth.jsonl``): the share of positives beside the posterior's mean, and the posterior's
    calibration intercept and slope with percentile-bootstrap intervals. An intercept away from 0 means the
    cohort drew more (or fewer) positives than its posterior expects, which every model trained on its labels
    inherits."""
    with (cohort / "ground_truth" / "truth.jsonl").open(encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh]
    rows = [(r["label"], r["posterior"]) for r in records if r.get("label") is not None]
    y = np.array([label for label, _ in rows], dtype=np.float64)
    p = np.array([posterior for _, posterior in rows], dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = [scores(y[i], p[i]) for i in (rng.integers(0, y.size, y.size) for _ in range(resamples))]
    point = scores(y, p)
    return {
        "n": int(y.size),
        "label_rate": float(y.mean()),
        "posterior_mean": float(p.mean()),
        **{k: _interval(point[k], np.array([d[k] for d in draws])) for k in ("intercept", "slope")},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        nargs="+",
        action="append",
        default=[],
        metavar="NAME VAL TEST",
        help="a name, the run's own predictions (its validation rows are used) and one or more test predictions",
    )
    parser.add_argument(
        "--truth",
        type=Path,
        nargs="+",
        default=[],
        metavar="COHORT",
        help="synthetic cohorts: how their labels follow their own Bayes posterior (class rate, intercept, slope)",
    )
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write every number as JSON here")
    args = parser.parse_args(argv)
    if not args.model and not args.truth:
        parser.error("give at least one --model or --truth")
    results = {}
    for cohort in args.truth:
        found = posterior_calibration(cohort, args.resamples, args.seed)
        results[f"truth:{cohort.name}"] = found
        print(
            f"{cohort.name}: {found['n']} labelled cases, {found['label_rate']:.3f} positive against a Bayes "
            f"posterior mean of {found['posterior_mean']:.3f}; the posterior's intercept "
            f"{_fmt(found['intercept'])}, slope {_fmt(found['slope'])}",
            flush=True,
        )
    for spec in args.model:
        if len(spec) < 3:
            parser.error(f"--model {' '.join(spec)}: expected NAME VAL TEST [TEST ...]")
        name, val_file, *test_files = spec
        own = pd.read_parquet(val_file)
        test = labelled(pd.concat([pd.read_parquet(f) for f in test_files], ignore_index=True))
        results[name] = compare(
            labelled(own, "val"), test, args.resamples, args.seed, development_prevalence(own)
        )
        print(report(name, results[name]), flush=True)
        if args.out:
            args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
