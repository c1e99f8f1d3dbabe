"""Opening a run for review and reading one case from its cohort."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from mmdx.errors import MmdxError
from mmdx.review import open_review_context, run_id_of
from mmdx.review.case_inputs import read_case_inputs
from tests.support.review_runs import TestRun


def test_run_id_is_the_directory_name(tmp_path: Path) -> None:
    assert run_id_of(tmp_path / "demo") == "demo"
    assert run_id_of(tmp_path / "demo" / ".") == "demo"


def test_context_holds_the_bundle_metadata(review_run: TestRun, accounts) -> None:
    context = open_review_context(review_run.path, accounts.store, idle_timeout_s=120)
    assert context.run_id == "run" and context.idle_timeout_s == 120
    assert 0 < context.threshold < 1 and context.model_version
    assert context.image_config is not None and context.cohort_dir is not None
    assert "pneumonia" in context.positive_meaning
    with pytest.raises(MmdxError, match="idle timeout"):
        open_review_context(review_run.path, accounts.store, idle_timeout_s=0)
    with pytest.raises(MmdxError, match="cohort directory not found"):
        open_review_context(review_run.path, accounts.store, cohort_dir=review_run.path / "nowhere")


def test_a_run_without_predictions_is_refused_clearly(run_copy: Path, accounts) -> None:
    (run_copy / "predictions.parquet").unlink()
    with pytest.raises(MmdxError, match="mmdx evaluate"):
        open_review_context(run_copy, accounts.store)


def test_predictions_from_another_version_are_refused(run_copy: Path, accounts) -> None:
    context = open_review_context(run_copy, accounts.store)
    frame = pd.read_parquet(run_copy / "predictions.parquet").drop(columns=["gate_text"])
    frame.to_parquet(run_copy / "predictions.parquet")
    with pytest.raises(MmdxError, match="gate_text"):
        context.run.read_predictions()


def test_case_inputs(review_run: TestRun, tmp_path: Path) -> None:
    context_cohort = Path(
        pd.read_json(review_run.path / "bundle" / "card.json", typ="series")["cohort"]["path"]
    )
    inputs = read_case_inputs(context_cohort, review_run.markup_case, ("age",))
    assert inputs.note_text is not None and "<script>" in inputs.note_text
    assert "age" in inputs.values and all(v == v for v in inputs.values.values())
    with pytest.raises(MmdxError, match="not in the cohort"):
        read_case_inputs(context_cohort, "NOPE")
    # a case id that would climb out of the cohort finds no mask, whatever lies there
    escaped = tmp_path / "cohort"
    shutil.copytree(context_cohort, escaped)
    cases = pd.read_csv(escaped / "cases.csv", dtype=str, keep_default_na=False)
    cases.loc[0, "case_id"] = "../../outside"
    cases.to_csv(escaped / "cases.csv", index=False)
    (tmp_path / "outside.nii.gz").write_bytes(b"x")
    assert read_case_inputs(escaped, "../../outside").mask_path is None
