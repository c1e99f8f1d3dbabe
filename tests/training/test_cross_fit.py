"""Cross-validation on the training split: stratified folds, every training case scored by a model that did
not train on it, the cross-validated AUROC recorded, and the run's own model and calibration unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

from mmdx.config import load_config
from mmdx.errors import ConfigError
from mmdx.run import RunPaths
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
    with pytest.raises(ConfigError, match="train.cross_validation_folds 5.*2 case"):
        assign_folds(np.array([1, 1] + [0] * 30), 5, seed=0)


def test_one_fold_is_refused_by_the_config() -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
    with pytest.raises(ConfigError, match="cross_validation_folds"):
        load_config(config, ["train.cross_validation_folds=1"])


def test_cross_validation_refuses_pretraining_it_would_not_repeat() -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
    with pytest.raises(ConfigError, match="cross_validation_folds.*not pretrained"):
        load_config(config, ["train.cross_validation_folds=5", "train.pretrain=contrastive"])


def test_the_record_round_trips_and_averages_the_folds_aurocs() -> None:
    # fold 0 ranks perfectly, fold 1 inversely; pooled, fold 1's logits sit far above fold 0's
    record = OutOfFold(
        2, ["a", "b", "c", "d", "e", "f", "g", "h"], np.array([0, 0, 0, 0, 1, 1, 1, 1]),
        np.array([2.0, 1.0, -1.0, -2.0, 9.0, 10.0, 11.0, 12.0]),
        np.array([1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]), [3, 4], [1.5, 2.5],
    )  # fmt: skip
    assert record.fold_aurocs() == [1.0, 0.0] and record.auroc() == 0.5
    assert record.summary()["pooled_auroc"] == 0.5 and record.summary()["auroc_sd"] == pytest.approx(0.707107)
    back = OutOfFold.from_dict(json.loads(json.dumps(record.to_dict())))
    assert back.case_ids == record.case_ids and np.array_equal(back.logits, record.logits)
    assert back.summary() == record.summary()


def test_a_malformed_record_is_one_line() -> None:
    from mmdx.errors import MmdxError

    with pytest.raises(MmdxError, match="malformed"):
        OutOfFold.from_dict({"folds": 2})


@pytest.mark.slow
def test_cross_validation_scores_every_training_case_and_leaves_the_model_alone(
    small_cohort_2d: Path, tmp_path: Path, tiny
) -> None:
    _, tiny_config = tiny
    base = ("train.epochs=2", "train.min_epochs=1")
    plain = train_run(tiny_config(*base), small_cohort_2d, tmp_path / "plain", progress=False)
    result = train_run(
        tiny_config(*base, "train.cross_validation_folds=3"), small_cohort_2d, tmp_path / "cv", progress=False
    )
    run = RunPaths(tmp_path / "cv")
    folds = OutOfFold.from_dict(run.read_out_of_fold())
    assert not (tmp_path / "cv" / "folds").exists()  # the fold models are not kept
    assert result.cross_validation == folds.summary() and folds.folds == 3 and len(folds.best_epochs) == 3
    assert run.read_training_summary()["cross_validation"]["cases"] == len(folds.case_ids)
    card = json.loads((run.bundle / "card.json").read_text())
    assert card["training"]["cross_validation"]["auroc"] == pytest.approx(folds.auroc())
    assert len(card["training"]["cross_validation"]["fold_aurocs"]) == 3
    # every labelled training case, each scored once, by the fold model that left it out
    cases = pd.read_csv(small_cohort_2d / "cases.csv", dtype={"case_id": str})
    train_ids = set(cases.loc[(cases["split"] == "train") & cases["label"].notna(), "case_id"])
    assert len(folds.case_ids) == len(set(folds.case_ids)) and set(folds.case_ids) <= train_ids
    assert len(folds.case_ids) > 0.9 * len(train_ids) and np.isfinite(folds.logits).all()
    assert np.ptp(np.bincount(folds.fold)) <= 2
    # the run's own model, calibration and threshold are those of the same run without cross-validation
    for name, tensor in load_file(str(plain.run.bundle / "model.safetensors")).items():
        assert np.array_equal(tensor.numpy(), load_file(str(run.bundle / "model.safetensors"))[name].numpy())
    assert (result.temperature, result.offset, result.threshold) == (
        plain.temperature, plain.offset, plain.threshold,
    )  # fmt: skip
    assert card["calibration"] == json.loads((plain.run.bundle / "card.json").read_text())["calibration"]


def test_too_many_folds_fail_before_anything_trains(tmp_path: Path, tiny) -> None:
    from mmdx.data.synth import SynthOptions, synthesize_cohort

    synthesize_cohort(tmp_path / "c", SynthOptions(n_cases=40, seed=2, dims=2, size=32, workers=1))
    _, tiny_config = tiny
    with pytest.raises(ConfigError, match="train.cross_validation_folds 20: the training split holds"):
        train_run(
            tiny_config("train.cross_validation_folds=20"), tmp_path / "c", tmp_path / "r", progress=False
        )
    assert not (tmp_path / "r" / "checkpoints").exists()
