"""External validation end to end: the run's own files stay byte for byte, the external folder, the drift
report, the recalibration artefact applied by predict, a bundle without a training summary, and the audit's
External validation section against independent computations."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from mmdx.audit.html import render_html
from mmdx.audit.report import AuditOptions, build_report
from mmdx.bundle import MANIFEST, TRAINING_SUMMARY, load_bundle
from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.errors import MmdxError
from mmdx.run import RunPaths
from mmdx.workflows.evaluate import evaluate_run
from mmdx.workflows.external import NO_SUMMARY, evaluate_external
from mmdx.workflows.predict import predict_cohort

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohorts") / "harbour"
    synthesize_cohort(out, SynthOptions(n_cases=90, seed=8, dims=2, size=32, site_shift=True, workers=2))
    return out


@pytest.fixture(scope="module")
def evaluated(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("external") / "run"
    shutil.copytree(tiny_run, run)
    evaluate_run(run, workers=1)
    return run


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def test_external_evaluation_leaves_the_run_untouched(evaluated: Path, site: Path, tmp_path: Path) -> None:
    before = _hashes(evaluated)
    result = evaluate_external(
        evaluated, site, "harbour", local_sample=30, method="intercept", n_resamples=40, workers=1
    )
    after = _hashes(evaluated)
    assert {k: after[k] for k in before} == before  # every byte of every file the run had
    new = sorted(set(after) - set(before))
    assert new and all(k.startswith(("external/harbour/", "calibrations/harbour-v1/")) for k in new)

    paths = RunPaths(evaluated).external("harbour")
    frame = paths.read_predictions()
    assert set(frame["split"]) == {"test", "val"} and (frame["split"] == "val").sum() >= 30
    # whole patients: none is both in the local sample and scored
    assert not set(frame.loc[frame["split"] == "val", "patient_id"]) & set(
        frame.loc[frame["split"] == "test", "patient_id"]
    )
    metrics = paths.read_metrics()
    assert metrics["splits"]["test"]["n"] == (frame["split"] == "test").sum()
    assert {"auroc", "brier", "ece", "citl"} <= set(metrics["intervals"])
    assert "bayes_auroc" in metrics
    drift = paths.read_drift()
    assert drift["status"] == "ok" and drift["labelled"]
    assert drift["domain_classifier"]["available"] and 0.0 <= drift["domain_classifier"]["auroc"] <= 1.0
    assert {r["feature"] for r in drift["features"]} >= {"spo2", "creatinine", "glucose", "heart_rate"}
    recal = paths.read_recalibration()
    assert set(recal["methods"]) == {
        "prevalence",
        "prevalence_labelled",
        "intercept",
        "logistic",
        "closed_test",
    }
    assert recal["recommended"] == "closed_test" and recal["saved_method"] == "intercept"
    assert result.artefact == evaluated / "calibrations" / "harbour-v1"
    # the closed test's choice is one of the plain fits (the label-free adjustment as its base), all recorded
    closed = recal["methods"]["closed_test"]
    fits = closed["closed_test"]["fits"]
    assert fits["base"]["intercept"] == pytest.approx(recal["methods"]["prevalence"]["intercept"])
    assert fits["intercept"]["intercept"] == pytest.approx(recal["methods"]["intercept"]["intercept"])
    chosen_fit = fits[closed["selected"]]
    assert (closed["intercept"], closed["slope"]) == (
        pytest.approx(chosen_fit["intercept"]),
        pytest.approx(chosen_fit["slope"]),
    )

    # predict applies the saved recalibration to the bundle's calibrated logit:
    # sigmoid(intercept + slope * (logit / temperature + offset))
    chosen = recal["methods"]["intercept"]
    assert chosen["status"] == "ok" and chosen["slope"] == 1.0
    out = predict_cohort(
        evaluated, site, tmp_path / "p.csv", workers=1, calibration=result.artefact
    ).predictions
    home = load_bundle(evaluated).calibration
    assert home.method == "platt" and home.offset_ != 0.0
    calibrated_logit = out["logit"].to_numpy() / home.temperature_ + home.offset_
    expected = expit(chosen["intercept"] + chosen["slope"] * calibrated_logit)
    assert out["probability"].to_numpy() == pytest.approx(expected)
    assert "probability_home" in out.columns

    # a second evaluation adds a new version and never overwrites the first
    again = evaluate_external(evaluated, site, "harbour", seed=1, n_resamples=20, workers=1)
    assert again.artefact.name == "harbour-v2" and (evaluated / "calibrations" / "harbour-v1").is_dir()

    # with a local sample and no method named, the recommended closed test is saved with its choice
    third = evaluate_external(evaluated, site, "harbour", local_sample=30, seed=2, n_resamples=20, workers=1)
    saved = json.loads((third.artefact / "calibration.json").read_text())
    entry = third.recalibration["methods"]["closed_test"]
    assert third.artefact.name == "harbour-v3" and saved["method"] == "closed_test"
    assert saved["selected"] == entry["selected"] and saved["intercept"] == pytest.approx(entry["intercept"])


def test_audit_external_section_matches_independent_computations(evaluated: Path, site: Path) -> None:
    if not (evaluated / "external" / "harbour" / "metrics.json").is_file():
        evaluate_external(evaluated, site, "harbour", local_sample=30, n_resamples=20, workers=1)
    document = build_report(
        evaluated, options=AuditOptions(n_resamples=50, robustness=False, external="harbour")
    )
    section = document["sections"]["external_validation"]
    assert section["status"] == "ok", section.get("reason")
    frame = RunPaths(evaluated).external("harbour").read_predictions()
    scored = frame[frame["split"] == "test"]
    y, p = scored["label"].to_numpy(dtype=int), scored["probability"].to_numpy()
    external = section["external"]
    assert external["n"] == len(scored) and external["n_positive"] == int(y.sum())
    assert external["auroc"]["estimate"] == pytest.approx(roc_auc_score(y, p))
    assert external["brier"]["estimate"] == pytest.approx(np.mean((p - y) ** 2))
    assert external["citl"]["estimate"] == pytest.approx(p.mean() - y.mean())
    fit = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(
        logit(np.clip(p, 1e-9, 1 - 1e-9))[:, None], y
    )
    assert external["calibration_slope"] == pytest.approx(fit.coef_[0][0], abs=1e-3)
    internal = RunPaths(evaluated).read_predictions()
    test = internal[(internal["split"] == "test") & internal["label"].notna()]
    assert section["internal"]["auroc"]["estimate"] == pytest.approx(
        roc_auc_score(test["label"], test["probability"])
    )
    assert section["drift"]["available"] and {t["item"] for t in section["tripod_ai"]} >= {"12f", "24"}
    assert "External validation" in render_html(document)


def test_a_bundle_without_training_summary_loads_and_says_why_there_is_no_drift(
    evaluated: Path, site: Path, tmp_path: Path
) -> None:
    run = tmp_path / "old"
    shutil.copytree(evaluated, run, ignore=shutil.ignore_patterns("external", "calibrations"))
    bundle = run / "bundle"
    (bundle / TRAINING_SUMMARY).unlink()
    manifest = json.loads((bundle / MANIFEST).read_text())
    del manifest["files"][TRAINING_SUMMARY]
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    assert load_bundle(run).training_summary is None
    result = evaluate_external(run, site, "harbour", n_resamples=20, workers=1)
    assert result.drift == {"status": "not_available", "reason": NO_SUMMARY}
    assert "\n" not in NO_SUMMARY
    assert set(result.recalibration["methods"]) == {"prevalence"}
    assert result.artefact is not None and result.artefact.name == "harbour-v1"


def test_an_unlabelled_site_gets_the_label_free_recalibration_and_a_marginal_drift_report(
    evaluated: Path, site: Path, tmp_path: Path
) -> None:
    import pandas as pd

    cohort = tmp_path / "unlabelled"
    shutil.copytree(site, cohort)
    cases = pd.read_csv(cohort / "cases.csv")
    cases["label"] = ""
    cases.to_csv(cohort / "cases.csv", index=False)
    result = evaluate_external(evaluated, cohort, "unlabelled", n_resamples=10, workers=1)
    assert not result.drift["labelled"] and "prevalence" in result.drift["caveat"]
    assert result.drift["prevalence"]["estimated_without_labels"] is not None
    (method,) = result.recalibration["methods"].values()
    assert method["status"] == "ok" and method["scores"] is None and 0.0 < method["prevalence"] < 1.0
    assert result.artefact is not None and result.artefact.name == "unlabelled-v1"
    assert result.metrics["splits"] == {}


def test_evaluating_another_cohort_without_a_name_keeps_the_runs_own_evaluation(
    evaluated: Path, site: Path
) -> None:
    before = _hashes(evaluated)
    with pytest.raises(MmdxError, match="--name SITE") as info:
        evaluate_run(evaluated, site, workers=1)
    assert str(site) in str(info.value) and "\n" not in str(info.value)
    assert _hashes(evaluated) == before
