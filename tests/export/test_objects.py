"""The DICOM objects of one case, built from a synthetic DICOM series and a planted attribution map."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pytest

from mmdx.data.imaging import read_image
from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.export.objects import (
    CONTENT_QUALIFICATION,
    DISCLAIMER,
    ModelIdentity,
    ObjectKind,
    case_objects,
    derived_uid,
    key_slice,
    overlay_picture,
)
from mmdx.export.source import read_case_source
from mmdx.workflows.sample_run import image_kinds

IDENTITY = ModelIdentity("demo", "0123456789abcdef", "f" * 64, "0.1.0", "expl1234", "integrated_gradients")


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory):
    """A 3D DICOM case with an attribution map that is positive in one slice only."""
    root = tmp_path_factory.mktemp("objects") / "cohort"
    synthesize_cohort(root, SynthOptions(n_cases=10, seed=3, dims=3, size=16, workers=1))
    import pandas as pd

    cases = pd.read_csv(root / "cases.csv", dtype=str, keep_default_na=False).set_index("case_id")
    case_id = next(c for c, kind in image_kinds(root).items() if kind == "dicom")
    image = cases.loc[case_id, "image"]
    volume = read_image(image, root)
    attribution = np.zeros(volume.array.shape, np.float32)
    attribution[3:6, 4:9, 11] = 0.5  # a positive blob in slice 11
    attribution[10, 10, 2] = -0.25
    path = root.parent / "attribution.nii.gz"
    nib.save(nib.Nifti1Image(attribution, volume.affine), str(path))
    return read_case_source(root, image, path)


def _explanation(predicted: int) -> dict:
    return {
        "probability": 0.8 if predicted else 0.2,
        "threshold": 0.4,
        "predicted": predicted,
        "presence": {"image": True, "tabular": True, "text": False},
        "shapley": {"image": 0.3, "tabular": -0.1, "text": 0.0, "base_value": -0.5, "full_value": -0.3},
    }


@pytest.mark.parametrize("predicted", [0, 1])
def test_objects_say_research_and_their_decision(case, predicted: int) -> None:
    objects = case_objects(case, _explanation(predicted), IDENTITY, segmentation=True, overlay=True)
    assert [o.kind for o in objects] == [
        ObjectKind.PARAMETRIC_MAP,
        ObjectKind.SEGMENTATION,
        ObjectKind.SECONDARY_CAPTURE,
        ObjectKind.STRUCTURED_REPORT,
    ]
    for obj in objects:
        assert obj.dataset.ContentQualification == CONTENT_QUALIFICATION
        assert obj.dataset.SeriesDescription.endswith(DISCLAIMER)
        assert obj.dataset.StudyInstanceUID == case.datasets[0].StudyInstanceUID
        assert obj.dataset.PatientID == case.datasets[0].PatientID
    sr = hd.sr.Comprehensive3DSR.from_dataset(objects[-1].dataset)
    (group,) = sr.content.get_image_measurement_groups()
    (decision,) = group.get_qualitative_evaluations()
    assert decision.value.meaning == ("Positive" if predicted else "Negative")
    names = {m.name.value for m in group.get_measurements()}
    # the absent text modality has no Shapley measurement
    assert names == {"PROB", "THRESHOLD", "SHAPLEY-IMAGE", "SHAPLEY-TABULAR", "BASE-VALUE", "FULL-VALUE"}


def test_segmentation_is_relative_positive_attribution(case) -> None:
    (_, seg, _) = case_objects(case, _explanation(1), IDENTITY, segmentation=True)
    frames = hd.seg.Segmentation.from_dataset(seg.dataset).get_volume(combine_segments=False)
    values = frames.array[..., 0] if frames.array.ndim == 4 else frames.array
    assert values.max() == pytest.approx(1.0)
    assert values.min() == 0.0  # the negative pixel is not shown as evidence
    assert np.count_nonzero(values) == 3 * 5


def test_key_slice_and_overlay_colours(case) -> None:
    assert key_slice(case.frames) == 11
    pixels = np.zeros((4, 4))
    attribution = np.zeros((4, 4))
    attribution[0, 0], attribution[3, 3] = 1.0, -1.0
    picture = overlay_picture(pixels, attribution, (0.0, 2.0))
    assert picture.shape == (4, 4, 3) and picture.dtype == np.uint8
    assert picture[0, 0, 0] > picture[0, 0, 2]  # positive is red
    assert picture[3, 3, 2] > picture[3, 3, 0]  # negative is blue
    assert len(set(map(tuple, picture[1:3, 1:3].reshape(-1, 3)))) == 1  # no attribution: plain grey


def test_uids_are_stable_and_distinct() -> None:
    assert derived_uid("a", "b") == derived_uid("a", "b")
    assert derived_uid("a", "b") != derived_uid("a", "c") != derived_uid("ab")
    uid = derived_uid("x" * 500)
    assert uid.startswith("2.25.") and len(uid) <= 64
    assert hd.UID(uid) == uid


def test_overlay_marks_its_slice(case) -> None:
    (*_, overlay, _) = case_objects(case, _explanation(1), IDENTITY, overlay=True)
    assert overlay.kind == ObjectKind.SECONDARY_CAPTURE
    assert overlay.dataset.PhotometricInterpretation == "RGB"
    assert overlay.dataset.ImageComments.startswith("slice 12 of 16")
    red = overlay.dataset.pixel_array[..., 0].astype(int) - overlay.dataset.pixel_array[..., 2]
    rows, columns = np.nonzero(red > 50)
    assert set(columns) == {3, 4, 5} and set(rows) == {4, 5, 6, 7, 8}  # [I, J] blob seen as rows J, columns I


def _values(dataset) -> list[str]:
    """Every text value in a dataset, nested sequences included."""
    out = []
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                out.extend(_values(item))
        elif isinstance(element.value, str):
            out.append(element.value)
    return out


def test_model_identity_is_recorded(case) -> None:
    (_, report) = case_objects(case, _explanation(1), IDENTITY)
    text = " ".join(_values(report.dataset))
    for value in (IDENTITY.bundle_sha256, IDENTITY.version, IDENTITY.explanation_version):
        assert value in text


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_real_scanner_files_give_conformant_objects(name: str, tmp_path: Path, dciodvfy) -> None:
    """pydicom's CT and MR test files (real scanner headers) as the source of every kind of object."""
    import shutil

    from pydicom.data import get_testdata_file

    from mmdx.export.dciodvfy import verify

    (tmp_path / "images").mkdir()
    shutil.copy(get_testdata_file(name), tmp_path / "images" / name)
    volume = read_image(f"images/{name}", tmp_path)
    attribution = np.random.default_rng(1).normal(size=volume.array.shape).astype(np.float32)
    nib.save(nib.Nifti1Image(attribution, volume.affine), str(tmp_path / "map.nii.gz"))
    source = read_case_source(tmp_path, f"images/{name}", tmp_path / "map.nii.gz")
    objects = case_objects(source, _explanation(1), IDENTITY, segmentation=True, overlay=True)
    for obj in objects:
        path = tmp_path / f"{obj.kind}.dcm"
        obj.dataset.save_as(path, enforce_file_format=True)
        assert verify(path).errors == [], obj.kind
    pm = objects[0].dataset
    assert pm.FrameOfReferenceUID == source.datasets[0].FrameOfReferenceUID
    assert attribution.ndim == 2  # a single-frame file: one frame, its rows along J
    np.testing.assert_array_equal(pm.pixel_array, attribution.T)
