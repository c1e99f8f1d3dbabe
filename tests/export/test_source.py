"""Reading a case's source DICOM headers and checking its attribution map against their grid."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

from mmdx.data.imaging import read_image
from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.export.source import SourceProblem, header_affine, read_case_source, read_source_headers
from mmdx.workflows.sample_run import image_kinds


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("source") / "cohort"
    synthesize_cohort(root, SynthOptions(n_cases=12, seed=9, dims=3, size=16, workers=1))
    return root


def _image(cohort: Path, kind: str) -> str:
    cases = pd.read_csv(cohort / "cases.csv", dtype=str, keep_default_na=False).set_index("case_id")
    return cases.loc[next(c for c, k in image_kinds(cohort).items() if k == kind), "image"]


def test_headers_are_sorted_along_the_normal_whatever_the_file_names(cohort: Path) -> None:
    folder = cohort / _image(cohort, "dicom")
    datasets = read_source_headers(folder)
    z = [float(d.ImagePositionPatient[2]) for d in datasets]
    assert z == sorted(z) and len(set(z)) == len(z)
    # the same grid as the image reader's, which the attribution map is written on
    np.testing.assert_allclose(header_affine(datasets), read_image(folder).affine, atol=1e-6)
    assert "PixelData" not in datasets[0]


def _map(cohort: Path, image: str, path: Path, *, shift: float = 0.0, drop_slice: bool = False) -> Path:
    volume = read_image(image, cohort)
    values = np.random.default_rng(0).normal(size=volume.array.shape).astype(np.float32)
    if drop_slice:
        values = values[:, :, 1:]
    affine = volume.affine.copy()
    affine[0, 3] += shift
    nib.save(nib.Nifti1Image(values, affine), str(path))
    return path


def test_frames_follow_the_sorted_slices(cohort: Path, tmp_path: Path) -> None:
    image = _image(cohort, "dicom")
    path = _map(cohort, image, tmp_path / "a.nii.gz")
    source = read_case_source(cohort, image, path)
    values = np.asarray(nib.load(str(path)).dataobj)
    assert source.frames.shape == (values.shape[2], values.shape[1], values.shape[0])
    np.testing.assert_array_equal(source.frames[4], values[:, :, 4].T)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"shift": 3.0}, "mm away from the DICOM image's grid"),
        ({"drop_slice": True}, "has shape"),
    ],
)
def test_a_map_off_the_grid_is_refused(cohort: Path, tmp_path: Path, change: dict, message: str) -> None:
    image = _image(cohort, "dicom")
    with pytest.raises(SourceProblem, match=message):
        read_case_source(cohort, image, _map(cohort, image, tmp_path / "a.nii.gz", **change))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("", "no image"),
        ("images/absent", "missing from the cohort"),
        ("../outside", "outside the cohort"),
        (None, "NIfTI, not DICOM"),
    ],
)
def test_images_that_cannot_be_referenced(cohort: Path, tmp_path: Path, image, message: str) -> None:
    image = _image(cohort, "nifti") if image is None else image
    with pytest.raises(SourceProblem, match=message):
        read_case_source(cohort, image, tmp_path / "unused.nii.gz")


def test_stray_files_in_a_series_folder_are_ignored(cohort: Path, tmp_path: Path) -> None:
    folder = tmp_path / "series"
    original = cohort / _image(cohort, "dicom")
    folder.mkdir()
    for path in original.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "README.txt").write_text("not DICOM")
    assert len(read_source_headers(folder)) == len(list(original.iterdir()))
    other = pydicom.dcmread(next(original.iterdir()))
    other.SeriesInstanceUID = "1.2.3.4"
    other.save_as(folder / "other.dcm")
    with pytest.raises(SourceProblem, match="2 series"):
        read_source_headers(folder)
