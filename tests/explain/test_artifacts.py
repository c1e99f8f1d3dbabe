"""The files of RUN/explanations: NIfTI on the image grid, JSON documents, versions, atomic replacement."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from mmdx.errors import MmdxError
from mmdx.explain.artifacts import (
    ExplanationWriter,
    case_folder_name,
    explanation_version,
    read_case,
    read_index,
    write_case,
)
from mmdx.explain.attribution import explain
from mmdx.explain.grids import ImageGrid
from mmdx.explain.inputs import ExplainInputs
from mmdx.explain.shapley import modality_shapley

from .toys import linear_model, random_batch

ORIGINAL = np.array(
    [[-0.8, 0.0, 0.0, 20.0], [0.0, 0.9, 0.0, -12.0], [0.0, 0.0, 3.0, 4.0], [0.0, 0.0, 0.0, 1.0]]
)


def explained():
    model = linear_model((8, 8), torch.ones(6), None, text=(30, 4, 12))
    batch = random_batch(2, 0, image_shape=(8, 8), vocab_size=30)
    grid = ImageGrid(np.array([[2.0, 0, 0.0], [0, 2.0, -12.0], [0, 0, 1.0]]), (8, 8), ORIGINAL, (20, 18))
    inputs = ExplainInputs.from_batch(batch, image_grids=[grid, None])
    return model, batch, explain(model, inputs, n_steps=4)


def test_case_files_overlay_the_original_image(tmp_path):
    model, batch, (first, second) = explained()
    shapley = modality_shapley(model, batch)
    files = write_case(tmp_path / "c1", first, shapley.case_dict(0), {"split": "test"}, "v1")
    assert set(files) == {"image_model_grid", "image_original_grid", "explanation"}
    image = nib.load(str(tmp_path / "c1" / files["image_original_grid"]))
    assert image.shape == (20, 18)
    np.testing.assert_allclose(image.affine, ORIGINAL, atol=1e-5)
    np.testing.assert_allclose(image.get_fdata(), first.image_original, atol=1e-6)
    grid = np.load(tmp_path / "c1" / files["image_model_grid"], allow_pickle=False)
    assert grid.dtype == np.float32 and grid.shape == (8, 8)
    document = json.loads((tmp_path / "c1" / "explanation.json").read_text())
    for key in (
        "case_id",
        "probability",
        "logit",
        "gates",
        "presence",
        "modality_totals",
        "shapley",
        "tabular",
        "tokens",
        "method",
        "n_steps",
        "convergence_delta",
        "explanation_version",
        "split",
    ):
        assert key in document
    shap = document["shapley"]
    assert shap["image"] + shap["tabular"] + shap["text"] == pytest.approx(
        shap["full_value"] - shap["base_value"]
    )
    # a case without an image grid gets the model-grid map only; the second method gets a suffix
    files = write_case(tmp_path / "c2", second, None, {}, "v1", suffix="_occlusion")
    assert set(files) == {"image_model_grid", "explanation"}
    assert files["explanation"] == "explanation_occlusion.json"


def test_writer_replaces_the_folder_only_when_complete(tmp_path):
    target = tmp_path / "explanations"
    target.mkdir()
    (target / "old.txt").write_text("previous run")
    _, _, (first, _) = explained()
    writer = ExplanationWriter(target)
    write_case(writer.case_folder(first.case_id), first, None, {}, "v2")
    assert (target / "old.txt").exists()  # nothing changed before commit
    writer.commit({"explanation_version": "v2", "cases": [{"case_id": first.case_id}]}, {"n_cases": 1})
    assert not (target / "old.txt").exists()
    assert read_index(target)["explanation_version"] == "v2"
    case = read_case(target, first.case_id)
    assert case.document["case_id"] == first.case_id and case.image_map.shape == (8, 8)
    aborted = ExplanationWriter(target)
    aborted.abort()
    assert not aborted.staging.exists() and (target / "index.json").exists()
    with pytest.raises(MmdxError, match="mmdx explain RUN --cases nope"):
        read_case(target, "nope")
    with pytest.raises(MmdxError, match="mmdx explain RUN"):
        read_index(tmp_path / "missing")


def test_version_depends_on_model_method_and_settings():
    base = explanation_version("abc", ["integrated_gradients"], {"n_steps": 32})
    assert base == explanation_version("abc", ["integrated_gradients"], {"n_steps": 32})
    assert (
        len(
            {
                base,
                explanation_version("abd", ["integrated_gradients"], {"n_steps": 32}),
                explanation_version("abc", ["occlusion"], {"n_steps": 32}),
                explanation_version("abc", ["integrated_gradients"], {"n_steps": 64}),
            }
        )
        == 4
    )


@pytest.mark.parametrize(
    ("case_id", "safe"),
    [
        ("C00012", True),
        ("case.1-b_2", True),
        ("../etc", False),
        ("a/b", False),
        ("..", False),
        ("naïve id", False),
    ],
)
def test_case_folder_names_stay_inside(case_id, safe):
    name = case_folder_name(case_id)
    assert (name == case_id) is safe
    assert "/" not in name and name not in (".", "..") and not name.startswith(".")


@pytest.mark.parametrize(
    ("name", "exists", "ok"),
    [
        ("image_attribution.nii.gz", True, True),
        ("image_attribution.nii.gz", False, False),
        ("../C2/explanation.json", True, False),
        ("..", True, False),
        ("", True, False),
    ],
)
def test_a_listed_case_file_stays_in_its_folder_and_exists(
    tmp_path, name: str, exists: bool, ok: bool
) -> None:
    from mmdx.explain.artifacts import ExplanationUnreadable, case_file

    for case in ("C1", "C2"):
        (tmp_path / case).mkdir()
        (tmp_path / case / "explanation.json").write_text("{}")
    if exists and name.endswith(".nii.gz") and "/" not in name:
        (tmp_path / "C1" / name).write_bytes(b"x")
    if ok:
        assert case_file(tmp_path, "C1", name) == tmp_path / "C1" / name
    else:
        with pytest.raises(ExplanationUnreadable, match="it lists is missing"):
            case_file(tmp_path, "C1", name)
