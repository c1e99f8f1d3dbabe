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


def test_auto_records_the_rule_the_candidates_and_the_choice_and_reuses_it(audit_run, tmp_path):
    """The session's audit run was explained with --image-method auto (tests/support/audit_runs.py)."""
    import json

    from mmdx.explain.attribution import EXPLANATION_METHODS
    from mmdx.run import RunPaths

    run = RunPaths(audit_run)
    choice = run.read_image_method_choice()
    image_methods = {s.name for s in EXPLANATION_METHODS if "image" in s.modalities}
    assert {c["method"] for c in choice["candidates"]} == image_methods
    assert choice["chosen"] in image_methods and "randomisation" in choice["rule"]
    assert choice["passed"] == any(
        c["passed"] and c["method"] == choice["chosen"] for c in choice["candidates"]
    )
    assert len(choice["case_ids"]) == 4
    for candidate in choice["candidates"]:  # each pass or failure is stated with its interval over the cases
        low, high = candidate["randomisation_interval"]
        assert low <= candidate["randomisation_abs"] <= high and candidate["verdict"] is not None
    summary = run.read_explanation_summary()
    assert summary["image_method"]["name"] == choice["chosen"]
    checks = summary["image_method"]["checks"]
    assert checks["randomisation_interval"] is not None and checks["verdict"] is not None
    assert summary["image_method"]["passed"] == choice["passed"]
    index = run.read_explanation_index()
    assert index["image_method"] == choice["chosen"]
    case = run.read_explanation_case(index["cases"][0]["case_id"]).document
    assert case["image_method"] == choice["chosen"] and case["image_map_check"]["name"] == choice["chosen"]
    assert case["method"] == "integrated_gradients" and case["tabular"] is not None
    # a second run with the same settings reuses the recorded choice (no new measurements)
    import shutil

    copy = RunPaths(shutil.copytree(audit_run, tmp_path / "run"))
    recorded = json.loads(copy.image_method_choice.read_text())
    copy.image_method_choice.write_text(json.dumps({**recorded, "reason": "kept"}))
    again = explain_run(copy.root, limit=2, check_cases=0, workers=1, image_method="auto", choice_cases=4)
    assert again.summary["image_method"]["reason"] == "kept"
    # a choice recorded under another rule (an older mmdx) is measured again
    copy.image_method_choice.write_text(json.dumps({**recorded, "reason": "kept", "rule": "an older rule"}))
    again = explain_run(copy.root, limit=2, check_cases=0, workers=1, image_method="auto", choice_cases=4)
    assert again.summary["image_method"]["reason"] != "kept"
    assert json.loads(copy.image_method_choice.read_text())["rule"] == recorded["rule"]
