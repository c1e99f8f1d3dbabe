"""The tabular-encoder benchmark trains one tabular-only run per cohort, encoder and seed, and compares them
on their cross-validated AUROC over the training split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import tabular_encoders


def test_cohorts_are_named_with_their_config() -> None:
    parsed = tabular_encoders.parse_cohorts(["demo=/data/demo600:configs/demo.yaml", "x=/c:/abs/x.yaml"])
    assert parsed["demo"] == (Path("/data/demo600"), tabular_encoders.REPO / "configs" / "demo.yaml")
    assert parsed["x"] == (Path("/c"), Path("/abs/x.yaml"))
    with pytest.raises(SystemExit, match="NAME=COHORT_DIR:CONFIG_YAML"):
        tabular_encoders.parse_cohorts(["demo=/data/demo600"])


def test_each_run_is_tabular_only_and_cross_validated(tmp_path, monkeypatch) -> None:
    commands = []
    monkeypatch.setattr(tabular_encoders.subprocess, "run", lambda command, **_: commands.append(command))
    tabular_encoders.train(Path("/c"), Path("/cfg.yaml"), "linear", 2, tmp_path / "run")
    settings = [commands[0][i + 1] for i, item in enumerate(commands[0]) if item == "--set"]
    assert {"model.image=null", "model.text=null", "model.tabular.name=linear"} <= set(settings)
    assert {"train.cross_validation_folds=5", "seed=2"} <= set(settings)
    (tmp_path / "run" / "bundle").mkdir(parents=True)
    (tmp_path / "run" / "bundle" / "manifest.json").write_text("{}")
    tabular_encoders.train(Path("/c"), Path("/cfg.yaml"), "linear", 2, tmp_path / "run")
    assert len(commands) == 1  # a finished run is not trained again


def test_an_encoder_may_carry_its_settings(tmp_path, monkeypatch) -> None:
    commands = []
    monkeypatch.setattr(tabular_encoders.subprocess, "run", lambda command, **_: commands.append(command))
    tabular_encoders.train(Path("/c"), Path("/cfg.yaml"), "linear+group_lasso=0.05+dim=32", 0, tmp_path / "r")
    settings = [commands[0][i + 1] for i, item in enumerate(commands[0]) if item == "--set"]
    names = [s for s in settings if s.startswith("model.tabular.")]
    # the name first, so that its settings survive the switch of component (mmdx.config.apply_overrides)
    assert names == ["model.tabular.name=linear", "model.tabular.group_lasso=0.05", "model.tabular.dim=32"]
    with pytest.raises(SystemExit, match="NAME\\+KEY=VALUE"):
        tabular_encoders.encoder_overrides("linear+group_lasso")


def test_the_better_encoder_comes_out_ahead_on_the_training_folds(tmp_path, monkeypatch, capsys) -> None:
    from mmdx.run import RunPaths
    from mmdx.training.cross_fit import OutOfFold

    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.4).astype(float)
    ids = [f"c{i}" for i in range(400)]

    def fake_train(cohort, config, encoder, seed, out):
        run = RunPaths(out).create()
        noise = {"ft_transformer": 2.0, "linear": 0.5}[encoder]
        record = OutOfFold(
            5, ids, np.arange(400) % 5, labels + rng.normal(0, noise, 400), labels, [1] * 5, [1.0] * 5
        )
        run.write_out_of_fold(record.to_dict())
        (out / "training.json").write_text(json.dumps({"cross_validation": {"auroc": record.auroc()}}))
        return out

    monkeypatch.setattr(tabular_encoders, "train", fake_train)
    args = ["demo=/c:/cfg.yaml", "--encoders", "ft_transformer", "linear", "--seeds", "0", "1"]
    assert tabular_encoders.main([*args, "--out", str(tmp_path), "--jobs", "1", "--resamples", "200"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if "| linear |" in line)
    low = float(row.split("[")[1].split(",")[0])
    assert low > 0  # linear's folds score better, with an interval above 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["demo"]["n_training_cases"] == 400


def test_references_score_the_test_cases_with_values(small_cohort_2d, tiny_run) -> None:
    from mmdx.data.ground_truth import read_truth
    from mmdx.metrics import auroc

    inputs = tabular_encoders._value_inputs(small_cohort_2d, tiny_run)
    ids, x, y, split, has = inputs
    prep = json.loads((tiny_run / "bundle" / "preprocessing.json").read_text())
    n_features = len(prep["features"]) + len(prep["numeric_columns"])
    assert x.shape[0] == len(ids) and x.shape[1] > 2 * n_features  # values, indicators, one-hot categories
    assert not np.isnan(y[has]).any() and set(split[has]) <= {"train", "val", "test"}
    refs = tabular_encoders.references(small_cohort_2d, small_cohort_2d, tiny_run, inputs)
    kept = [case for case, keep in zip(ids, has, strict=True) if keep]
    truth = read_truth(small_cohort_2d).records
    term = [truth[case]["logit_terms"]["tabular"] for case in kept]
    expected = auroc(y[has].astype(int), 1 / (1 + np.exp(-np.array(term))))
    assert refs["generator's tabular term"]["auroc"] == pytest.approx(expected)
    assert refs["logistic regression"]["n"] == len(kept) and refs["logistic regression"]["auroc"] > 0.6
