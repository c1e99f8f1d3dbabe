"""``mmdx explain`` end to end on the command line: both methods, the files written and their checks."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mmdx.data.imaging import read_image
from pipelines.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained_run(small_cohort_2d, tmp_path_factory) -> Path:
    from mmdx.config import load_config
    from mmdx.workflows.evaluate import evaluate_run
    from mmdx.workflows.train import train_run

    config = load_config(
        ROOT / "configs" / "demo.yaml",
        ["train.epochs=1", "data.loader.batch_size=64"],
    )
    run = tmp_path_factory.mktemp("runs") / "explain"
    train_run(config, small_cohort_2d, run, progress=False)
    evaluate_run(run)
    return run


@pytest.mark.slow
def test_mmdx_explain_end_to_end(trained_run, small_cohort_2d, capsys):
    code = main(
        [
            "explain",
            str(trained_run),
            "--limit",
            "5",
            "--method",
            "both",
            "--steps",
            "8",
            "--check-cases",
            "3",
            "--batch-size",
            "3",
            "--internal-batch-size",
            "16",
            "--choice-cases",
            "3",
            "--quiet",
        ]
    )
    assert code == 0
    assert "explanations:" in capsys.readouterr().out
    folder = trained_run / "explanations"
    index = json.loads((folder / "index.json").read_text())
    summary = json.loads((folder / "summary.json").read_text())
    assert len(index["cases"]) == 5 and index["methods"] == ["integrated_gradients", "occlusion"]
    assert (
        index["image_method"] == summary["image_method"]["name"]
    )  # chosen by the rule (--image-method auto)
    assert summary["image_method"]["chosen_by"] == "rule on the validation split"
    assert summary["explanation_version"] == index["explanation_version"]
    ig = summary["methods"]["integrated_gradients"]
    assert ig["convergence_delta"]["n_cases"] == 5
    assert summary["ground_truth_available"] is True and "ground_truth" in ig
    assert set(ig["deletion"]) == {"image", "tabular", "text"} and "randomisation" in ig
    cases = pd.read_csv(small_cohort_2d / "cases.csv").set_index("case_id")
    for entry in index["cases"]:
        document = json.loads((folder / entry["folder"] / "explanation.json").read_text())
        shapley = document["shapley"]
        present = sum(shapley[m] for m in ("image", "tabular", "text"))
        assert present == pytest.approx(shapley["full_value"] - shapley["base_value"], abs=1e-9)
        assert document["probability"] == pytest.approx(entry["probability"], abs=1e-5)
        for token in document["tokens"] or []:
            assert len(token["text"]) == token["end"] - token["start"]
        if document["presence"]["image"]:
            image = read_image(small_cohort_2d / cases.loc[entry["case_id"], "image"])
            overlay = nib.load(str(folder / entry["folder"] / "image_attribution.nii.gz"))
            assert overlay.shape == image.array.shape
            np.testing.assert_allclose(overlay.affine, image.affine, atol=1e-4)
            grid = np.load(folder / entry["folder"] / "image_attribution_model_grid.npy")
            assert grid.shape == (32, 32)
            assert (folder / entry["folder"] / "image_attribution_occlusion.nii.gz").is_file()
        else:
            assert document["modality_totals"]["image"] is None and "image" in document["missing_modalities"]
