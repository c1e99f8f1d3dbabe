"""``mmdx explain``: case selection, clear errors, and one end-to-end run on a tiny trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmdx.errors import MmdxError
from mmdx.workflows.explain import explain_run, select_cases

ROOT = Path(__file__).resolve().parents[2]

PREDICTIONS = pd.DataFrame(
    {
        "case_id": ["A1", "A2", "B1", "B2", "B3"],
        "split": ["train", "test", "test", "val", "test"],
        "label": [1.0, 0.0, 1.0, np.nan, 0.0],
        "probability": [0.9, 0.2, 0.6, 0.5, 0.1],
        "predicted": [1, 0, 1, 1, 0],
    }
)


@pytest.mark.parametrize(
    ("cases", "split", "limit", "expected"),
    [
        (None, "test", None, ["A2", "B1", "B3"]),
        (None, "test", 2, ["A2", "B1"]),
        (None, "all", None, ["A1", "A2", "B1", "B2", "B3"]),
        (["B3", "A1", "B3"], "test", None, ["B3", "A1"]),
    ],
)
def test_select_cases(cases, split, limit, expected):
    assert select_cases(PREDICTIONS, cases, split, limit)["case_id"].tolist() == expected


def test_select_cases_errors():
    with pytest.raises(MmdxError, match="did you mean 'B1'"):
        select_cases(PREDICTIONS, ["B11"], "test", None)
    with pytest.raises(MmdxError, match=r"splits present: test, train\); use --split"):
        select_cases(PREDICTIONS[PREDICTIONS["split"] != "val"], None, "val", None)
    with pytest.raises(MmdxError, match="--limit"):
        select_cases(PREDICTIONS, None, "test", 0)


def test_a_run_without_predictions_names_the_file_and_the_command(tmp_path):
    with pytest.raises(MmdxError, match="run directory not found"):
        explain_run(tmp_path / "nowhere")
    (tmp_path / "run" / "bundle").mkdir(parents=True)
    with pytest.raises(MmdxError, match=r"predictions\.parquet is missing.*mmdx evaluate RUN"):
        explain_run(tmp_path / "run")
    with pytest.raises(MmdxError, match="--steps"):
        explain_run(tmp_path / "run", n_steps=0)
