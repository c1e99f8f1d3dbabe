"""``train.ensemble``: K members trained with their own seeds, each calibrated on the validation split; the
bundle predicts with their calibrated mean, loads back as the same ensemble, and member 0 is the model the
same settings train alone. ``train.ensemble_split: folds``: each member trains without one fold of the
labelled training and validation cases and is calibrated on it; the run's validation metrics and threshold
come from the out-of-fold calibrated probabilities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from mmdx.bundle import load_bundle
from mmdx.config import load_config
from mmdx.errors import ConfigError
from mmdx.models.ensemble import EnsembleClassifier
from mmdx.predict import prepare_inputs, run_predictions
from mmdx.run import RunPaths
from mmdx.workflows.train import MEMBER_SEED_STRIDE, train_run


def test_an_ensemble_refuses_pretraining_it_would_not_repeat() -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
    with pytest.raises(ConfigError, match="ensemble: the members after the first would not be pretrained"):
        load_config(config, ["train.ensemble=3", "train.pretrain=contrastive"])
    with pytest.raises(ConfigError, match="train.ensemble"):
        load_config(config, ["train.ensemble=0"])


def test_a_member_whose_temperature_sits_at_its_bound_is_named_in_the_warnings() -> None:
    import math

    from mmdx.training.calibration import TemperatureScaler
    from mmdx.workflows.train import member_warnings

    fitted, stuck = TemperatureScaler(), TemperatureScaler()
    fitted.temperature_, stuck.temperature_ = 1.3, math.exp(4.0)
    records = [{"seed": 0, "held_out_cases": 560}, {"seed": 1000, "held_out_cases": 561}]
    (warning,) = member_warnings([fitted, stuck], records, folds=True)
    assert warning.startswith(
        "ensemble member 2 (seed 1000): the temperature 54.6 fitted on its fold (561 cases)"
    )
    assert "validation split (561 cases)" in member_warnings([fitted, stuck], records, folds=False)[0]
    assert member_warnings([fitted, stuck], records, folds=True, calibrate=False) == []


def test_a_member_whose_fold_is_too_small_to_calibrate_on_is_named() -> None:
    import numpy as np

    from mmdx.training.calibration import TemperatureScaler
    from mmdx.workflows.train import member_warnings

    scalers = [TemperatureScaler(), TemperatureScaler()]
    records = [{"seed": 0, "held_out_cases": 40}, {"seed": 1000, "held_out_cases": 40}]
    folds = [np.array([1] * 20 + [0] * 20), np.array([1] * 6 + [0] * 34)]  # the second has 6 positives
    (warning,) = member_warnings(scalers, records, folds=True, held_out_labels=folds)
    assert warning.startswith(
        "ensemble member 2 (seed 1000) is early-stopped and calibrated on its fold of 40 labelled cases "
        "(6 positive, 34 negative)"
    )
    assert (
        member_warnings(scalers, records, folds=False, held_out_labels=folds) == []
    )  # the split's own check
    balanced = [np.array([1] * 20 + [0] * 20)] * 2
    assert member_warnings(scalers, records, folds=True, held_out_labels=balanced) == []


def test_a_fold_ensemble_needs_no_second_cross_validation_and_one_model_ignores_it() -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
    assert not load_config(config, ["train.ensemble_split=folds"]).train.folded_ensemble  # one model
    assert load_config(config, ["train.ensemble_split=folds", "train.ensemble=2"]).train.folded_ensemble
    with pytest.raises(ConfigError, match="train.cross_validation_folds=0"):
        load_config(
            config, ["train.ensemble=3", "train.ensemble_split=folds", "train.cross_validation_folds=5"]
        )
    with pytest.raises(ConfigError, match="ensemble_split"):
        load_config(config, ["train.ensemble=3", "train.ensemble_split=bagging"])


@pytest.mark.slow
def test_an_ensemble_run_predicts_with_its_members_calibrated_mean(
    small_cohort_2d: Path, tmp_path: Path, tiny
) -> None:
    _, tiny_config = tiny
    base = ("train.epochs=2", "train.min_epochs=1")
    plain = train_run(tiny_config(*base), small_cohort_2d, tmp_path / "plain", progress=False)
    result = train_run(
        tiny_config(*base, "train.ensemble=2"), small_cohort_2d, tmp_path / "ens", progress=False
    )
    run = RunPaths(tmp_path / "ens")
    record = run.read_training_summary()["ensemble"]
    assert [m["seed"] for m in record["members"]] == [0, MEMBER_SEED_STRIDE]
    assert result.ensemble == record and 0 <= record["val_auroc"] <= 1
    assert (run.ensemble_member(1) / "checkpoints" / "best.safetensors").is_file()
    # member 0 is the single model of the same settings, bit for bit; member 1 differs
    weights = load_file(str(run.bundle / "model.safetensors"))
    for name, tensor in load_file(str(plain.run.bundle / "model.safetensors")).items():
        assert np.array_equal(weights[f"members.0.{name}"].numpy(), tensor.numpy())
        assert f"members.1.{name}" in weights
    assert any(
        not np.array_equal(weights[f"members.1.{n}"].numpy(), t.numpy())
        for n, t in load_file(str(plain.run.bundle / "model.safetensors")).items()
    )
    # the members' calibrations are in the weights; the bundle's own is the identity
    card = json.loads((run.bundle / "card.json").read_text())
    assert card["calibration"]["method"] == "ensemble" and card["calibration"]["temperature"] == 1.0
    assert card["training"]["ensemble"]["members"][0]["temperature"] == pytest.approx(plain.temperature)
    bundle = load_bundle(run.bundle)
    assert isinstance(bundle.model, EnsembleClassifier)
    np.testing.assert_allclose(bundle.model.scales.numpy()[0], 1 / plain.temperature, rtol=1e-6)
    # the ensemble's probability: the mean of the members' calibrated logits
    ensemble_p = run_predictions(bundle, prepare_inputs(bundle, small_cohort_2d, workers=1))
    single = load_bundle(plain.run.bundle)
    single_p = run_predictions(single, prepare_inputs(single, small_cohort_2d, workers=1))
    member0 = plain.temperature, plain.offset
    first = single_p.logits / member0[0] + member0[1]
    assert not np.allclose(ensemble_p.logits, first)
    second_weights = {k[len("members.1.") :]: v for k, v in weights.items() if k.startswith("members.1.")}
    single.model.load_state_dict(second_weights)
    other_p = run_predictions(single, prepare_inputs(single, small_cohort_2d, workers=1))
    t1, b1 = record["members"][1]["temperature"], record["members"][1]["offset"]
    np.testing.assert_allclose(ensemble_p.logits, (first + other_p.logits / t1 + b1) / 2, atol=1e-4)
    # the audit names the members and their calibrations, and validates against its schema
    from mmdx.audit.report import AuditOptions, audit_run
    from mmdx.workflows.evaluate import evaluate_run

    evaluate_run(run.root, workers=1)
    document, files = audit_run(run.root, options=AuditOptions(n_resamples=20, robustness=False, workers=1))
    members = document["sections"]["calibration"]["members"]
    assert [m["seed"] for m in members] == [0, MEMBER_SEED_STRIDE]
    page = files.html.read_text()
    assert "An ensemble of 2 models" in page and f"seeds 0, {MEMBER_SEED_STRIDE}" in page


@pytest.mark.slow
def test_a_fold_ensemble_calibrates_each_member_on_the_fold_it_did_not_train_on(
    small_cohort_2d: Path, tmp_path: Path, tiny
) -> None:
    import pandas as pd
    from scipy.special import expit, logit

    from mmdx.metrics import binary_metrics
    from mmdx.training.calibration import TemperatureScaler

    _, tiny_config = tiny
    config = tiny_config(
        "train.epochs=2", "train.min_epochs=1", "train.ensemble=3", "train.ensemble_split=folds"
    )
    result = train_run(config, small_cohort_2d, tmp_path / "folds", progress=False)
    run = RunPaths(tmp_path / "folds")
    cases = pd.read_csv(small_cohort_2d / "cases.csv", dtype={"case_id": str})
    labelled = cases[cases["label"].notna()]
    development = set(labelled.loc[labelled["split"].isin(["train", "val"]), "case_id"])
    test_ids = set(labelled.loc[labelled["split"] == "test", "case_id"])
    record = result.ensemble
    assert record["split"] == "folds" and len(record["members"]) == 3
    # the folds: disjoint, stratified, together every labelled training and validation case and no test case
    oof = run.read_out_of_fold()
    assert set(oof["case_ids"]) == development and not set(oof["case_ids"]) & test_ids
    fold = np.asarray(oof["fold"])
    assert sorted(np.bincount(fold).tolist()) == sorted(m["held_out_cases"] for m in record["members"])
    for m in record["members"]:
        assert m["train_cases"] + m["held_out_cases"] == len(development)
    positives = [np.asarray(oof["labels"])[fold == k].sum() for k in range(3)]
    assert max(positives) - min(positives) <= 1
    # each member's calibration is the one its held-out fold gives, not the validation split's
    dev_labels = labelled.set_index("case_id").loc[sorted(development), "label"].to_numpy(float)
    for k, member in enumerate(record["members"]):
        held = [c for c, f in zip(oof["case_ids"], fold, strict=True) if f == k]
        assert member["held_out_cases"] == len(held)
        # the out-of-fold logit of a case is its member's calibrated logit
        raw = np.asarray(oof["logits"])[fold == k]
        refit = TemperatureScaler(method="platt")
        uncalibrated = (raw - member["offset"]) * member["temperature"]
        refit.fit(uncalibrated, np.asarray(oof["labels"])[fold == k], prevalence=float(dev_labels.mean()))
        assert refit.temperature_ == pytest.approx(member["temperature"], rel=1e-4)
        assert refit.offset_ == pytest.approx(member["offset"], abs=1e-4)
    # the run's validation metrics and threshold: the out-of-fold calibrated probabilities of every
    # labelled development case
    assert result.val_metrics["n"] == len(development)
    expected = binary_metrics(np.asarray(oof["labels"]), expit(np.asarray(oof["logits"])), result.threshold)
    assert result.val_metrics["auroc"] == pytest.approx(expected["auroc"])
    assert result.val_metrics["ece"] == pytest.approx(expected["ece"])
    assert "calibration_slope" in result.val_metrics
    assert result.cross_validation["folds"] == 3 and result.cross_validation["cases"] == len(development)
    assert np.allclose(logit(expit(np.asarray(oof["logits"]))), oof["logits"], atol=1e-6)
    card = json.loads((run.bundle / "card.json").read_text())
    assert card["operating_point"]["chosen_on"] == "out-of-fold train+val"
    assert card["training"]["ensemble"]["split"] == "folds"
    # the audit says how the members were calibrated
    from mmdx.audit.report import AuditOptions, audit_run
    from mmdx.workflows.evaluate import evaluate_run

    evaluate_run(run.root, workers=1)
    document, files = audit_run(run.root, options=AuditOptions(n_resamples=20, robustness=False, workers=1))
    section = document["sections"]["calibration"]
    assert section["member_split"] == "folds"
    assert [m["held_out_cases"] for m in section["members"]] == [
        m["held_out_cases"] for m in record["members"]
    ]
    page = files.html.read_text()
    assert "calibrated on the fold it held out" in page and "AUROC on the fold each held out" in page
    assert "Cross-validated AUROC (training and validation splits)" in page
    # the explanations say that the cases the image method was chosen on are not held out from the ensemble
    from mmdx.workflows.explain import explain_run

    explain_run(run.root, limit=2, check_cases=2, choice_cases=4, image_method="auto", workers=1)
    summary = json.loads((run.root / "explanations" / "summary.json").read_text())
    assert summary["image_method"]["chosen_by"] == (
        "rule on the validation split (a fold ensemble: 2 of its members trained on these cases)"
    )
