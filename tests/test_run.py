"""The run directory's owner: every artifact has one reader and one writer here, and what they hold matches
the schemas in data_schemas/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from data_schemas import schema_path
from mmdx.errors import MmdxError
from mmdx.run import RunPaths, prediction_columns


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_path(name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture
def run_copy(audit_run: Path, tmp_path: Path) -> RunPaths:
    """A copy of the shared trained, evaluated and explained run that a test may damage."""
    target = tmp_path / "run"
    shutil.copytree(audit_run, target, ignore=shutil.ignore_patterns("checkpoints", "audit"))
    return RunPaths(target)


def test_a_real_run_matches_its_schemas(audit_run: Path) -> None:
    run = RunPaths(audit_run)
    frame = run.read_predictions()
    rows = json.loads(frame.to_json(orient="records"))
    predictions = _validator("predictions.schema.json")
    for row in rows:
        predictions.validate(row)
    metrics = run.read_metrics()
    assert metrics is not None
    _validator("metrics.schema.json").validate(metrics)
    _validator("explanations_index.schema.json").validate(run.read_explanation_index())


@pytest.mark.parametrize(
    ("schema", "document", "message"),
    [
        ("predictions.schema.json", {"case_id": "c1"}, "is a required property"),
        ("metrics.schema.json", {"threshold": "high"}, "is a required property"),
        ("explanations_index.schema.json", {"explanation_version": "not-hex"}, "is a required property"),
    ],
)
def test_the_schemas_refuse_what_is_not_a_run_artifact(schema: str, document: dict, message: str) -> None:
    with pytest.raises(jsonschema.ValidationError, match=message):
        _validator(schema).validate(document)


def test_predictions_without_a_schema_column_are_refused_by_the_reader_and_the_writer(
    run_copy: RunPaths,
) -> None:
    frame = pd.read_parquet(run_copy.predictions).drop(columns=["has_text"])
    with pytest.raises(ValueError, match="has_text"):
        run_copy.write_predictions(frame)
    frame.to_parquet(run_copy.predictions)
    with pytest.raises(MmdxError, match="lacks the column.*has_text.*mmdx evaluate RUN"):
        run_copy.read_predictions()
    run_copy.predictions.write_bytes(b"not parquet")
    with pytest.raises(MmdxError, match="cannot be read"):
        run_copy.read_predictions()
    run_copy.predictions.unlink()
    with pytest.raises(
        MmdxError, match=r"predictions.parquet is missing from the run; run 'mmdx evaluate RUN'"
    ):
        run_copy.read_predictions()


def test_json_artifacts_read_back_what_was_written(run_copy: RunPaths) -> None:
    run_copy.write_metrics({"threshold": float("nan"), "splits": {}})
    assert run_copy.read_metrics() == {"threshold": None, "splits": {}}  # strict JSON: NaN is null
    run_copy.training.unlink()
    assert run_copy.read_training_summary() is None
    run_copy.validation_report.write_text("{broken")
    with pytest.raises(MmdxError, match="validation_report.json is not valid JSON"):
        run_copy.read_validation_report()


def test_paths_of_a_run(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "r")
    assert run.review_store_url == f"sqlite:///{(tmp_path / 'r' / 'review.sqlite').resolve().as_posix()}"
    assert set(prediction_columns()) >= {"case_id", "split", "label", "probability", "modalities"}
    assert list(run.artifacts())[:4] == [
        "predictions.parquet",
        "metrics.json",
        "validation_report.json",
        "training.json",
    ]
    assert not run.holds_a_run() and run.load_preprocessing() is None
    with pytest.raises(MmdxError, match="run directory not found"):
        run.require("bundle")
