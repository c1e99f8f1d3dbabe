"""Out-of-fold calibration: stratified folds, every training case scored by a model that did not train on
it, the calibration fitted on those logits with the validation split's, and what the run records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmdx.config import load_config
from mmdx.errors import ConfigError
from mmdx.run import RunPaths
from mmdx.training.calibration import TemperatureScaler
from mmdx.training.cross_fit import OutOfFold, assign_folds
from mmdx.workflows.train import train_run


def test_folds_are_stratified_and_cover_every_case_once() -> None:
    labels = np.array([1] * 23 + [0] * 57)
    fold = assign_folds(labels, 5, seed=3)
    assert sorted(set(fold.tolist())) == [0, 1, 2, 3, 4]
    for k in range(5):
        positives = int(np.sum(labels[fold == k]))
        negatives = int(np.sum(fold == k)) - positives
        assert positives in (4, 5) and negatives in (11, 12)
    assert np.array_equal(fold, assign_folds(labels, 5, seed=3))
    assert not np.array_equal(fold, assign_folds(labels, 5, seed=4))


def test_too_few_cases_of_a_class_for_the_folds_names_the_key() -> None:
    with pytest.raises(ConfigError, match="train.calibration_folds 5.*2 case"):
        assign_folds(np.array([1, 1] + [0] * 30), 5, seed=0)


def test_one_fold_is_refused_by_the_config() -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
    with pytest.raises(ConfigError, match="calibration_folds"):
        load_config(config, ["train.calibration_folds=1"])


def test_the_record_round_trips() -> None:
    record = OutOfFold(
        2, ["a", "b", "c", "d"], np.array([0, 1, 0, 1]), np.array([0.5, -1.0, 2.0, 0.1]),
        np.array([1.0, 0.0, 1.0, 0.0]), [3, 4], [1.5, 2.5],
    )  # fmt: skip
    back = OutOfFold.from_dict(json.loads(json.dumps(record.to_dict())))
    assert back.case_ids == record.case_ids and np.array_equal(back.logits, record.logits)
    assert back.summary() == record.summary() and back.auroc() == 1.0


@pytest.mark.slow
def test_calibration_is_fitted_on_out_of_fold_and_validation_logits(
    small_cohort_2d: Path, tmp_path: Path, tiny
) -> None:
    _, tiny_config = tiny
    config = tiny_config("train.epochs=2", "train.min_epochs=1", "train.calibration_folds=3")
    result = train_run(config, small_cohort_2d, tmp_path / "run", progress=False)
    run = RunPaths(tmp_path / "run")
    folds = OutOfFold.from_dict(run.read_out_of_fold())
    assert not (tmp_path / "run" / "folds").exists()  # the fold models are not kept
    assert result.out_of_fold == folds.summary() and folds.folds == 3 and len(folds.best_epochs) == 3
    # every labelled training case, each scored once, by the fold model that left it out
    cohort = __import__("pandas").read_csv(small_cohort_2d / "cases.csv", dtype={"case_id": str})
    train_ids = set(cohort.loc[(cohort["split"] == "train") & cohort["label"].notna(), "case_id"])
    assert len(folds.case_ids) == len(set(folds.case_ids)) and set(folds.case_ids) <= train_ids
    assert len(folds.case_ids) > 0.9 * len(train_ids) and np.isfinite(folds.logits).all()
    assert sorted(np.bincount(folds.fold).tolist())[-1] - sorted(np.bincount(folds.fold).tolist())[0] <= 2

    # the bundle's calibration is the Platt fit on the pooled logits, not on the validation split's alone
    from mmdx.bundle import load_bundle

    bundle = load_bundle(run.bundle)
    card = json.loads((run.bundle / "card.json").read_text())
    assert "out-of-fold" in card["calibration"]["fitted_on"] and card["training"]["out_of_fold"]["folds"] == 3
    assert card["operating_point"]["chosen_on"] == "val + out-of-fold"
    val_logits = _val_logits(run, small_cohort_2d)
    pooled = TemperatureScaler(method="platt").fit(
        np.concatenate([folds.logits, val_logits[1]]), np.concatenate([folds.labels, val_logits[0]])
    )
    assert bundle.calibration.temperature_ == pytest.approx(pooled.temperature_, rel=1e-6)
    assert bundle.calibration.offset_ == pytest.approx(pooled.offset_, abs=1e-6)
    alone = TemperatureScaler(method="platt").fit(val_logits[1], val_logits[0])
    assert abs(alone.temperature_ - pooled.temperature_) > 1e-3 or abs(alone.offset_ - pooled.offset_) > 1e-3
    training = run.read_training_summary()
    assert training["out_of_fold"]["cases"] == len(folds.case_ids)


def _val_logits(run: RunPaths, cohort: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and raw logits of the run's model on the cohort's validation split."""
    from mmdx.workflows.evaluate import evaluate_run

    evaluate_run(run.root, cohort)
    frame = run.read_predictions()
    val = frame[(frame["split"] == "val") & frame["label"].notna()]
    return val["label"].to_numpy(float), val["logit"].to_numpy(float)
