"""The audit report of a real (small) run: every section's numbers against an independent computation on the
run's files, the JSON twin against its schema, the HTML against the JSON, and the command line."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from fairlearn.metrics import equalized_odds_difference
from sklearn.metrics import average_precision_score, brier_score_loss, confusion_matrix, roc_auc_score

from data_schemas import schema_path
from mmdx.audit.html import render_html
from mmdx.audit.report import AuditOptions, build_report
from mmdx.errors import MmdxError
from mmdx.store import AuditAction, ReviewStore, Verdict
from tests.support.audit_runs import OPTIONS, PASSWORD, RUN_NAME, BuiltReport

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def predictions(audit_report: BuiltReport) -> pd.DataFrame:
    return pd.read_parquet(audit_report.run / "predictions.parquet")


@pytest.fixture(scope="module")
def test_split(predictions: pd.DataFrame) -> pd.DataFrame:
    return predictions[predictions["split"] == "test"]


def _section(report: BuiltReport, name: str) -> dict:
    section = report.document["sections"][name]
    assert section["status"] == "ok", section.get("reason")
    return section


def test_the_json_twin_is_the_document_and_valid_against_its_schema(audit_report: BuiltReport) -> None:
    written = json.loads(audit_report.files.json.read_text())
    assert written == audit_report.document
    schema = json.loads(schema_path("audit_report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(written)
    statuses = {name: s["status"] for name, s in written["sections"].items()}
    assert statuses == {name: "ok" for name in statuses}, statuses
    assert written["settings"]["n_resamples"] == OPTIONS.n_resamples and written["run"]["name"] == RUN_NAME


def test_discrimination(audit_report: BuiltReport, predictions: pd.DataFrame) -> None:
    section = _section(audit_report, "discrimination")
    for split, entry in section["by_split"].items():
        part = predictions[predictions["split"] == split]
        y, p = part["label"].astype(int), part["probability"]
        assert entry["n"] == len(part) and entry["n_positive"] == y.sum()
        assert entry["auroc"]["estimate"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert entry["auprc"]["estimate"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
        assert entry["auroc"]["low"] <= entry["auroc"]["estimate"] <= entry["auroc"]["high"]
    metrics = json.loads((audit_report.run / "metrics.json").read_text())
    assert section["bayes_auroc"] == metrics["bayes_auroc"]


def test_operating_point(audit_report: BuiltReport, test_split: pd.DataFrame) -> None:
    section = _section(audit_report, "operating_point")
    card = json.loads((audit_report.run / "bundle" / "card.json").read_text())
    threshold = card["operating_point"]["threshold"]
    assert section["threshold"] == threshold and section["rule"] == card["operating_point"]["rule"]
    y, p = test_split["label"].astype(int), test_split["probability"]
    tn, fp, fn, tp = confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1]).ravel()
    assert section["counts"] == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    assert (test_split["predicted"] == (p >= threshold)).all()  # the run's own calls agree
    if tp + fn:
        assert section["metrics"]["sensitivity"]["estimate"] == pytest.approx(tp / (tp + fn))
    if tn + fp:
        assert section["metrics"]["specificity"]["estimate"] == pytest.approx(tn / (tn + fp))


def test_calibration(audit_report: BuiltReport, test_split: pd.DataFrame) -> None:
    section = _section(audit_report, "calibration")
    y = test_split["label"].astype(int)
    assert section["before"]["brier"]["estimate"] == pytest.approx(
        brier_score_loss(y, test_split["probability_uncalibrated"])
    )
    assert section["after"]["brier"]["estimate"] == pytest.approx(
        brier_score_loss(y, test_split["probability"])
    )
    fitted = json.loads((audit_report.run / "bundle" / "calibration.json").read_text())
    temperature = fitted["temperature"]
    assert section["temperature"] == pytest.approx(temperature)
    # the offset anchored to the development class rate, and the report says so
    assert section["prevalence"] == pytest.approx(fitted["prevalence"]) and 0 < section["prevalence"] < 1
    assert "share of positives among the labelled training and validation cases" in (
        audit_report.files.html.read_text()
    )
    metrics = json.loads((audit_report.run / "metrics.json").read_text())["calibration"]["test"]
    assert section["before"]["ece"]["estimate"] == pytest.approx(metrics["ece_before"])
    assert section["after"]["ece"]["estimate"] == pytest.approx(metrics["ece_after"])
    before, after = section["before"]["fit"], section["after"]["fit"]
    if before["slope"] is not None and after["slope"] is not None:
        assert after["slope"] == pytest.approx(temperature * before["slope"], rel=1e-4)


def test_subgroups(audit_report: BuiltReport, test_split: pd.DataFrame) -> None:
    section = _section(audit_report, "subgroups")
    attributes = [t["attribute"] for t in section["attributes"]]
    assert attributes == ["sex", "age_band", "site", "modality_pattern"]
    threshold = section["threshold"]
    for table in section["attributes"]:
        column = "modalities" if table["attribute"] == "modality_pattern" else table["attribute"]
        assert sum(row["n"] for row in table["rows"]) == len(test_split)
        for row in table["rows"]:
            part = test_split[test_split[column] == row["group"]]
            y = part["label"].astype(int)
            assert row["n"] == len(part)
            if 0 < y.sum() < len(y):
                assert row["auroc"] == pytest.approx(roc_auc_score(y, part["probability"]))
            assert row["too_small"] == (
                len(part) < OPTIONS.min_group_size or min(y.sum(), len(y) - y.sum()) < 2
            )
        compared = table["gaps"]["groups_compared"]
        if len(compared) >= 2:
            kept = test_split[test_split[column].isin(compared)]
            expected = equalized_odds_difference(
                kept["label"].astype(int),
                (kept["probability"] >= threshold).astype(int),
                sensitive_features=kept[column],
            )
            assert table["gaps"]["equalized_odds_difference"] == pytest.approx(expected)
    assert any(t["n_flagged"] for t in section["attributes"]), "the 26-case test split has small groups"


def test_cohort_flow(audit_report: BuiltReport, predictions: pd.DataFrame) -> None:
    section = _section(audit_report, "cohort_flow")
    validation = json.loads((audit_report.run / "validation_report.json").read_text())
    assert section["rows_in"] == validation["summary"]["rows"] and section["predicted"] == len(predictions)
    assert section["not_predicted"] == 0
    for split, counts in section["splits"].items():
        part = predictions[predictions["split"] == split]
        assert counts["positive"] == (part["label"] == 1).sum()
        assert counts["modality_patterns"] == part["modalities"].value_counts().to_dict()
        assert counts["characteristics"]["sex"] == part["sex"].value_counts().sort_index().to_dict()


def test_robustness_agrees_with_mmdx_evaluate(audit_report: BuiltReport) -> None:
    section = _section(audit_report, "robustness")
    assert section["reproduction"]["reproduced"], section["reproduction"]
    rows = {(r["kind"], r["modality"], r["level"]): r for r in section["conditions"]}
    discrimination = _section(audit_report, "discrimination")["by_split"]["test"]["auroc"]["estimate"]
    assert rows[("intact", None, 0.0)]["auroc"]["estimate"] == pytest.approx(discrimination, abs=1e-6)
    # mmdx evaluate removes each modality by its own code path (on uncalibrated probabilities: AUROC is
    # unchanged by the monotone temperature scaling)
    removed = json.loads((audit_report.run / "metrics.json").read_text())["modality_removed"]
    for modality in ("image", "tabular", "text"):
        row = rows[("modality_removed", modality, 0.0)]
        assert row["auroc"]["estimate"] == pytest.approx(removed[modality]["auroc"], abs=1e-6)
        change = row["auroc_change"]["estimate"]
        assert change == pytest.approx(removed[modality]["auroc"] - removed["none"]["auroc"], abs=1e-6)
    assert {r["level"] for r in section["conditions"] if r["kind"] == "image_noise"} == {0.1, 0.3}
    noisy = [r for r in section["conditions"] if r["kind"] == "image_noise"]
    assert all(r["n_affected"] == rows[("modality_removed", "image", 0.0)]["n_affected"] for r in noisy)
    # each branch: its own head's AUROC beside the AUROC lost when it is removed (the removal row, negated)
    card = json.loads((audit_report.run / "bundle" / "card.json").read_text())
    branches = {b["modality"]: b for b in section["branches"]}
    assert set(branches) == {"image", "tabular", "text"}
    for modality, branch in branches.items():
        change = rows[("modality_removed", modality, 0.0)]["auroc_change"]
        assert branch["lost_when_removed"]["estimate"] == pytest.approx(-change["estimate"])
        assert branch["lost_when_removed"]["low"] == pytest.approx(-change["high"])
        assert 0.0 <= branch["alone"]["estimate"] <= 1.0
        assert branch["own_val_auroc"] == card["training"]["branches"][modality]["own_val_auroc"]
        assert branch["under_used"] == (
            branch["alone"]["estimate"] >= 0.6
            and branch["alone"]["low"] > 0.5
            and branch["lost_when_removed"]["estimate"] < 0.01
        )
    full = rows[("tabular_missingness", None, 1.0)]
    # every observed value gone means no tabular modality at all: the same as removing it
    assert full["auroc"]["estimate"] == pytest.approx(
        rows[("modality_removed", "tabular", 0.0)]["auroc"]["estimate"]
    )


def test_explanations(audit_report: BuiltReport) -> None:
    section = _section(audit_report, "explanations")
    summary = json.loads((audit_report.run / "explanations" / "summary.json").read_text())
    assert section["n_cases"] == summary["n_cases"] == 10
    method = summary["methods"]["integrated_gradients"]
    ours = section["methods"]["integrated_gradients"]
    for modality, curve in ours["deletion"].items():
        assert curve["auc_attribution"] == method["deletion"][modality]["auc_attribution"]
        assert curve["faster_than_random"] == (curve["auc_attribution"] < curve["auc_random"])
    assert ours["ground_truth"] == method["ground_truth"] and section["ground_truth_available"]
    for modality, check in ours["randomisation"]["modalities"].items():
        low, high = check["spearman_abs_interval"]
        assert low <= check["spearman_abs_mean"] <= high
        assert check["verdict"] == method["randomisation"][modality]["verdict"]
    html = audit_report.files.html.read_text()
    low, high = ours["randomisation"]["modalities"]["image"]["spearman_abs_interval"]
    assert f"{low:.3f} to {high:.3f}" in html
    for status, verb in (("affirmed", "raises"), ("negated", "lowers")):
        assert f"the phrase that {verb} the risk most is a planted {status} phrase" in html
        assert "top_signed_phrase_is_planted" in method["ground_truth"]["text"][status]


def test_clinician_review(audit_report: BuiltReport, predictions: pd.DataFrame) -> None:
    section = _section(audit_report, "clinician_review")
    review = audit_report.review
    verdicts = list(review.latest.values())
    assert section["verdict_counts"] == {v.value: verdicts.count(v) for v in Verdict}
    assert section["n_verdicts"] == len(verdicts)
    assert section["n_cases_reviewed"] == len({case for _, case in review.latest})
    assert section["excluded_other_model_versions"] == review.other_version_verdicts
    agree, disagree = verdicts.count(Verdict.AGREE), verdicts.count(Verdict.DISAGREE)
    assert section["agreement"]["estimate"] == pytest.approx(agree / (agree + disagree))
    (comment,) = section["comments"]
    assert "lesion missed" in comment["comment"] and "Brown" not in comment["comment"]
    assert "07700" not in comment["comment"] and comment["reviewer"].startswith("R")
    with ReviewStore(review.url) as store:
        auditor = store.authenticate("aud", PASSWORD)
        exports = store.audit_events(auditor, action=AuditAction.EXPORT, run_id=RUN_NAME)
    assert exports and exports[-1].detail["what"] == "audit_report"


def test_comparison(audit_report: BuiltReport, test_split: pd.DataFrame) -> None:
    section = _section(audit_report, "comparison")
    other = pd.read_parquet(audit_report.compare / "predictions.parquet").set_index("case_id")
    y = test_split["label"].astype(int)
    expected = roc_auc_score(y, test_split["probability"]) - roc_auc_score(
        y, other.loc[test_split["case_id"], "probability"]
    )
    assert section["difference"]["auroc"]["estimate"] == pytest.approx(expected, abs=1e-12)
    assert section["runs"][1]["name"] == f"{RUN_NAME}-b" and section["n"] == len(test_split)


def test_provenance(audit_report: BuiltReport) -> None:
    section = _section(audit_report, "provenance")
    card = json.loads((audit_report.run / "bundle" / "card.json").read_text())
    assert section["cohort"]["fingerprint"] == card["cohort"]["fingerprint"]
    assert (
        section["cohort_now"]["matches_training"] is True and section["split_now"]["matches_training"] is True
    )
    digest = hashlib.sha256((audit_report.run / "predictions.parquet").read_bytes()).hexdigest()
    assert section["artifacts"]["predictions.parquet"] == digest
    assert section["seeds"] == {
        "training": card["seed"],
        "bootstrap": OPTIONS.seed,
        "robustness": OPTIONS.seed,
        "explanations": 0,
    }
    assert section["config"]["model"]["fusion"]["name"] == "gated_attention"
    assert section["packages"]["torch"] and section["hardware"]["audit"]["cpu_count"]
    history = json.loads((audit_report.run / "training.json").read_text())["result"]["history"]
    assert [h["epoch"] for h in section["training_history"]] == [h["epoch"] for h in history]
    assert section["training_history"][-1]["branch_val_auroc"] == history[-1]["branch_val_auroc"]


def test_model_card(audit_report: BuiltReport) -> None:
    section = _section(audit_report, "model_card")
    card = json.loads((audit_report.run / "bundle" / "card.json").read_text())
    assert section["intended_use"] == card["intended_use"] and section["out_of_scope"] == card["out_of_scope"]
    assert [(r["key"], r["unit"]) for r in section["inputs"]["tabular"]] == [
        (r["key"], r["unit"]) for r in card["inputs"]["tabular"]
    ]
    assert {item["source"] for item in section["limitations"]} == {"config", "computed"}
    texts = " ".join(item["text"] for item in section["limitations"])
    assert "synthetic" in texts and "too small to judge" in texts
    assert all(item["coverage"] == "reported" for item in section["tripod_ai"]["items"])
    assert [b["modality"] for b in section["branches"]] == ["image", "tabular", "text"]
    assert section["training"]["strategy"] == "joint"


def test_the_html_is_rendered_from_the_json_alone(audit_report: BuiltReport) -> None:
    html = audit_report.files.html.read_text()
    assert render_html(json.loads(audit_report.files.json.read_text())) == html
    auroc = audit_report.document["sections"]["discrimination"]["by_split"]["test"]["auroc"]
    assert (
        f"{auroc['estimate']:.3f}" in html and f"{auroc['low']:.3f}\u00a0to\u00a0{auroc['high']:.3f}" in html
    )
    assert "http" not in html.lower() and "<script" not in html
    assert "Brown" not in html and "07700" not in html


def test_the_report_is_reproducible(audit_report: BuiltReport) -> None:
    options = AuditOptions(
        **{**OPTIONS.to_dict(), "robustness": False, "noise_levels": (0.1,), "missingness_levels": (0.5,)}
    )
    first = build_report(audit_report.run, options=options, compare=audit_report.compare)
    second = build_report(audit_report.run, options=options, compare=audit_report.compare)
    for name in ("discrimination", "calibration", "subgroups", "comparison"):
        assert first["sections"][name] == second["sections"][name]
        assert first["sections"][name] == audit_report.document["sections"][name]


def test_missing_artifacts(audit_report: BuiltReport, tmp_path: Path) -> None:
    run = tmp_path / "partial"
    shutil.copytree(audit_report.run, run, ignore=shutil.ignore_patterns("checkpoints", "audit"))
    shutil.rmtree(run / "explanations")
    (run / "validation_report.json").unlink()
    document = build_report(run, options=AuditOptions(n_resamples=20, robustness=False))
    sections = document["sections"]
    assert sections["explanations"]["status"] == "not_available"
    assert "run 'mmdx explain RUN' first" in sections["explanations"]["reason"]
    assert (
        sections["cohort_flow"]["status"] == "not_available"
        and "mmdx evaluate" in sections["cohort_flow"]["reason"]
    )
    assert sections["clinician_review"]["reason"] == "no review store given (--store URL)"
    assert sections["robustness"]["reason"] == "skipped on request (--no-robustness)"
    limitations = " ".join(i["text"] for i in sections["model_card"]["limitations"])
    assert "Explanations were not assessed" in limitations
    assert any(i["coverage"] != "reported" for i in sections["model_card"]["tripod_ai"]["items"])
    (run / "predictions.parquet").unlink()
    with pytest.raises(
        MmdxError, match=r"predictions.parquet is missing from the run; run 'mmdx evaluate RUN' first"
    ):
        build_report(run)


def test_predictions_of_another_model_version_are_refused(audit_report: BuiltReport, tmp_path: Path) -> None:
    run = tmp_path / "retrained"
    shutil.copytree(
        audit_report.run, run, ignore=shutil.ignore_patterns("checkpoints", "audit", "explanations")
    )
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["model_version"] = "0123456789abcdef"
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(
        MmdxError, match="written by model version 0123456789abcdef.*run 'mmdx evaluate RUN' again"
    ):
        build_report(run, options=AuditOptions(n_resamples=10, robustness=False))


def test_a_moved_cohort_makes_robustness_unavailable(audit_report: BuiltReport, tmp_path: Path) -> None:
    document = build_report(
        audit_report.run,
        options=AuditOptions(n_resamples=20),
        cohort_dir=tmp_path / "gone",
    )
    assert "--cohort DIR" in document["sections"]["robustness"]["reason"]
    assert document["sections"]["provenance"]["cohort_now"]["matches_training"] is None


def test_the_model_card_shows_a_cross_validation_when_the_run_has_one(audit_report: BuiltReport) -> None:
    document = json.loads(audit_report.files.json.read_text())
    assert "Cross-validated AUROC" not in render_html(document)
    training = document["sections"]["model_card"]["training"]
    training["cross_validation"] = {"auroc": 0.7912, "auroc_sd": 0.0311, "folds": 5, "cases": 415}
    html = render_html(document)
    assert (
        "Cross-validated AUROC (training split)" in html and "0.791 ± 0.031, mean of 5 folds over 415" in html
    )
