"""`mmdx evaluate` and `mmdx predict` on a trained run: every usable case predicted, metrics recomputable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipelines.cli import main


@pytest.fixture(scope="module")
def evaluated(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("evaluated") / "run"
    shutil.copytree(tiny_run, run)  # the shared run stays as training left it
    assert main(["evaluate", str(run), "--workers", "1"]) == 0
    return run


def test_evaluate_writes_predictions_and_metrics(evaluated: Path) -> None:
    frame = pd.read_parquet(evaluated / "predictions.parquet")
    metrics = json.loads((evaluated / "metrics.json").read_text())
    for column in (
        "case_id",
        "split",
        "label",
        "probability",
        "gate_image",
        "gate_tabular",
        "gate_text",
        "has_image",
        "has_tabular",
        "has_text",
        "modalities",
    ):
        assert column in frame.columns
    assert frame["case_id"].is_unique
    test = frame[frame["split"] == "test"]
    assert metrics["splits"]["test"]["auroc"] == pytest.approx(
        roc_auc_score(test["label"], test["probability"])
    )
    assert metrics["splits"]["test"]["n"] == len(test)
    # a modality a case lacks has a zero gate
    for modality in ("image", "tabular", "text"):
        assert (frame.loc[~frame[f"has_{modality}"], f"gate_{modality}"] == 0).all()
    assert set(metrics["modality_removed"]) == {"image", "tabular", "text", "none"}
    assert set(metrics["by_modality_pattern"]["test"]) == set(test["modalities"])
    assert metrics["bayes_auroc"] > 0.5
    assert np.isclose(metrics["calibration"]["val"]["ece_bins"], 15)


def test_predict_unlabelled_cohort(evaluated: Path, small_cohort_2d: Path, tmp_path: Path, capsys) -> None:
    cohort = tmp_path / "unlabelled"
    shutil.copytree(small_cohort_2d, cohort)
    cases = pd.read_csv(cohort / "cases.csv", dtype=str, keep_default_na=False)
    cases["label"] = ""
    cases.loc[0, "case_id"] = cases.loc[1, "case_id"]  # one duplicate row, rejected and reported
    cases.to_csv(cohort / "cases.csv", index=False)
    out = tmp_path / "p.csv"
    assert main(["predict", str(evaluated), str(cohort), "--out", str(out), "--workers", "1"]) == 0
    predicted = pd.read_csv(out)
    assert len(predicted) == len(cases) - 1 and predicted["label"].isna().all()
    assert "rejected by validation" in capsys.readouterr().out
    reference = pd.read_parquet(evaluated / "predictions.parquet").set_index("case_id")
    # the duplicated id now carries row 0's data; every other case must match the run's predictions
    common = predicted.set_index("case_id").index.intersection(reference.index).drop(cases.loc[0, "case_id"])
    np.testing.assert_allclose(
        predicted.set_index("case_id").loc[common, "probability"],
        reference.loc[common, "probability"],
        rtol=1e-6,
    )


def test_errors_name_what_is_missing(tmp_path: Path, capsys) -> None:
    assert main(["evaluate", str(tmp_path / "norun")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), str(tmp_path)]) == 2
    assert "manifest.json is missing" in capsys.readouterr().err


def test_new_cases_get_no_training_split(evaluated: Path, small_cohort_2d: Path, tmp_path: Path) -> None:
    """A cohort without a split column: validation assigns splits to train on it, but brand-new cases
    predicted by a bundle belong to none of its splits."""
    cohort = tmp_path / "new"
    shutil.copytree(small_cohort_2d, cohort)
    cases = pd.read_csv(cohort / "cases.csv", dtype=str, keep_default_na=False)
    given = cases.index < 10  # these ten keep the split their cohort gives them
    cases.loc[~given, "split"] = ""
    cases.to_csv(cohort / "cases.csv", index=False)
    out = tmp_path / "p.parquet"
    assert main(["predict", str(evaluated), str(cohort), "--out", str(out), "--workers", "1"]) == 0
    predicted = pd.read_parquet(out).set_index("case_id")
    splits = cases.set_index("case_id")["split"]
    assert (predicted["split"] == splits.loc[predicted.index]).all()
    assert (predicted["split"] == "").sum() >= len(cases) - 12
