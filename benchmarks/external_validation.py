"""External validation benchmark: a trained run scored on a synthetic second site with a known shift.

The second site (``mmdx synth --site-shift``) has another prevalence and covariate shifts in named features
(listed in its ``cohort.yaml`` under ``generator.site_shift``). For each seed of the 100-case local
labelled sample, :func:`mmdx.workflows.external.evaluate_external` scores the other cases and the
benchmark records, against the targets:

* drift: prevalence flagged; with labels, the flagged features are exactly the shifted ones (Holm, 0.05);
* label-free prevalence adjustment: |mean predicted - observed| <= 0.02, with its bootstrap interval;
* recalibration on the local sample: slope in [0.85, 1.15], intercept within +-0.15, ECE within 0.01 of the
  ECE a perfectly calibrated model gets on the same cases (simulated), for the recommended closed testing
  procedure (which update it selected on each seed), and for plain recalibration-in-the-large and logistic
  recalibration.

A target is "met" when the whole 95% interval lies inside it, "not resolved" when the estimate does but the
interval does not, "not met" otherwise. Usage::

    python -m benchmarks.external_validation RUN SITE_COHORT --seeds 0 1 2 --out results.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import yaml

from mmdx.workflows.external import evaluate_external

CITL_TARGET = 0.02
SLOPE_TARGET = (0.85, 1.15)
INTERCEPT_TARGET = 0.15
ECE_MARGIN = 0.01


def verdict(interval: dict[str, float], low: float, high: float) -> str:
    """``met`` when the interval lies inside ``[low, high]``, ``not resolved`` when only the estimate
    does, ``not met`` otherwise."""
    if low <= interval["low"] and interval["high"] <= high:
        return "met"
    return "not resolved" if low <= interval["estimate"] <= high else "not met"


def drift_outcome(drift: dict[str, Any], shifted: list[str]) -> dict[str, Any]:
    """The features flagged against those shifted by construction, and whether the prevalence was."""
    flagged = sorted(r["feature"] for r in drift["features"] if r["flag"])
    return {
        "prevalence_flagged": bool(drift["prevalence"].get("flag")),
        "flagged": flagged,
        "shifted": sorted(shifted),
        "exactly_the_shifted": flagged == sorted(shifted),
        "missingness_flagged": sorted(r["feature"] for r in drift["missingness"] if r["flag"]),
        "flagged_marginal": sorted(r["feature"] for r in drift.get("features_marginal", []) if r["flag"]),
        "domain_auroc": (drift.get("domain_classifier") or {}).get("auroc"),
        "correction": drift["correction"],
        "p_adjusted": {r["feature"]: r["p_adjusted"] for r in drift["features"]},
    }


def update_outcome(entry: dict[str, Any]) -> dict[str, Any]:
    """A local-sample recalibration's scores against the targets, refitted and given the fit."""
    s, g = entry["scores"], entry["scores_given_fit"]
    reference = entry["ece_perfect"]["mean"]
    ece_excess = {k: s["ece"][k] - reference for k in ("estimate", "low", "high")}
    ece_excess_given_fit = {k: g["ece"][k] - reference for k in ("estimate", "low", "high")}
    out = {
        "intercept_fitted": entry["intercept"],
        "slope_fitted": entry["slope"],
        "scores": s,
        "ece_perfect": entry["ece_perfect"],
        "ece_excess": ece_excess,
        "ece_change_paired": entry["ece_change"],
        "slope_verdict": verdict(s["calibration_slope"], *SLOPE_TARGET),
        "intercept_verdict": verdict(s["calibration_intercept"], -INTERCEPT_TARGET, INTERCEPT_TARGET),
        "ece_verdict": verdict(ece_excess, -1.0, ECE_MARGIN),
        "scores_given_fit": g,
        "ece_excess_given_fit": ece_excess_given_fit,
        "given_fit_verdicts": {
            "slope": verdict(g["calibration_slope"], *SLOPE_TARGET),
            "intercept": verdict(g["calibration_intercept"], -INTERCEPT_TARGET, INTERCEPT_TARGET),
            "ece": verdict(ece_excess_given_fit, -1.0, ECE_MARGIN),
        },
    }
    if "selected" in entry:
        out["selected"] = entry["selected"]
        out["tests"] = entry["closed_test"]["tests"]
    return out


def score_seed(
    run: Path, cohort: Path, seed: int, local: int, resamples: int, workers: int = 1
) -> dict[str, Any]:
    started = time.perf_counter()
    result = evaluate_external(
        run,
        cohort,
        f"benchmark-seed{seed}",
        local_sample=local,
        seed=seed,
        n_resamples=resamples,
        workers=workers,
    )
    recal = result.recalibration
    prevalence = recal["methods"]["prevalence"]
    out: dict[str, Any] = {
        "seed": seed,
        "n_scored": recal["n_scored"],
        "n_local": recal["n_local_sample"],
        "n_local_positive": recal["n_local_positive"],
        "auroc": result.metrics["intervals"]["auroc"],
        "bayes_auroc": result.metrics.get("bayes_auroc"),
        "reference": recal["reference"],
        "original": recal["original"],
        "recommended": recal.get("recommended"),
        "label_free": {
            "estimated_prevalence": prevalence["prevalence"],
            "scores": prevalence["scores"],
            "scores_given_fit": prevalence["scores_given_fit"],
            "ece_perfect": prevalence["ece_perfect"],
            "citl_verdict": verdict(prevalence["scores"]["citl"], -CITL_TARGET, CITL_TARGET),
            "citl_verdict_given_fit": verdict(
                prevalence["scores_given_fit"]["citl"], -CITL_TARGET, CITL_TARGET
            ),
        },
        "seconds": time.perf_counter() - started,
    }
    if result.drift.get("status") == "ok":
        shifted = yaml.safe_load((cohort / "cohort.yaml").read_text())["generator"]["site_shift"][
            "shifted_features"
        ]
        out["drift"] = drift_outcome(result.drift, shifted)
    for method in ("closed_test", "intercept", "logistic"):
        entry = recal["methods"].get(method)
        if entry is not None and entry["status"] == "ok" and entry.get("scores") is not None:
            out[method] = update_outcome(entry)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a trained run, evaluated on its own cohort")
    parser.add_argument("cohort", type=Path, help="the second site's cohort (mmdx synth --site-shift)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--local", type=int, default=100, help="labelled local cases (default 100)")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="processes decoding images (default 1)")
    parser.add_argument("--out", type=Path, help="write every number as JSON here")
    args = parser.parse_args(argv)
    results = []
    for seed in args.seeds:
        results.append(score_seed(args.run, args.cohort, seed, args.local, args.resamples, args.workers))
        if args.out:  # written after every seed: a long run keeps what it has
            args.out.write_text(json.dumps(results, indent=1))

    def iv(d: dict[str, float]) -> str:
        return f"{d['estimate']:+.4f} ({d['low']:+.4f} to {d['high']:+.4f})"

    for r in results:
        print(
            f"seed {r['seed']}: {r['n_scored']} scored, {r['n_local']} local ({r['n_local_positive']} positive); "
            f"AUROC {iv(r['auroc'])}, Bayes {r['bayes_auroc']}"
        )
        if "drift" in r:
            d = r["drift"]
            print(
                f"  drift: prevalence flagged {d['prevalence_flagged']}; flagged {d['flagged']} "
                f"(shifted {d['shifted']}; exactly: {d['exactly_the_shifted']}); missingness {d['missingness_flagged']}; "
                f"marginal tests (as without labels) {d['flagged_marginal']}; domain classifier AUROC {d['domain_auroc']}"
            )
        o = r["original"]["scores"]
        print(f"  original: CITL {iv(o['citl'])} slope {iv(o['calibration_slope'])} ECE {iv(o['ece'])}")
        lf = r["label_free"]
        print(
            f"  label-free prevalence {lf['estimated_prevalence']:.4f}: CITL {iv(lf['scores']['citl'])} -> "
            f"{lf['citl_verdict']}; given the fit {iv(lf['scores_given_fit']['citl'])} -> {lf['citl_verdict_given_fit']}"
        )
        for method in ("closed_test", "intercept", "logistic"):
            if method not in r:
                continue
            lg = r[method]
            s = lg["scores"]
            chose = f" (selected {lg['selected']})" if "selected" in lg else ""
            print(
                f"  {method}{chose}: slope {iv(s['calibration_slope'])} -> {lg['slope_verdict']}; intercept "
                f"{iv(s['calibration_intercept'])} -> {lg['intercept_verdict']}; ECE {iv(s['ece'])} vs perfect "
                f"{lg['ece_perfect']['mean']:.4f}: excess {iv(lg['ece_excess'])} -> {lg['ece_verdict']}; "
                f"paired ECE change {iv(lg['ece_change_paired'])}"
            )
            g, v = lg["scores_given_fit"], lg["given_fit_verdicts"]
            print(
                f"    given the fit: slope {iv(g['calibration_slope'])} -> {v['slope']}; intercept "
                f"{iv(g['calibration_intercept'])} -> {v['intercept']}; ECE excess {iv(lg['ece_excess_given_fit'])} -> {v['ece']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
