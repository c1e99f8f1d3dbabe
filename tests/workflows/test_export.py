"""``mmdx export --to DIR`` on real explained runs (2D single slices and 3D series)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from mmdx.errors import MmdxError
from mmdx.explain.artifacts import case_folder_name
from mmdx.export.dciodvfy import verify
from mmdx.export.registry import ExportDestination
from mmdx.export.source import read_source_headers
from mmdx.workflows.export import export_run


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*/*.dcm"))


@pytest.mark.slow
def test_every_explained_dicom_case_is_exported_and_conformant(explained, tmp_path: Path, dciodvfy) -> None:
    out = tmp_path / "dicom"
    result = export_run(
        explained.path, "dir", ExportDestination(str(out)), segmentation=True, overlay=True, progress=False
    )
    assert sorted(c.case_id for c in result.exported) == sorted(explained.dicom)
    # the NIfTI case is reported, not dropped silently
    assert [c for c, _ in result.skipped] == explained.nifti
    assert "NIfTI" in result.skipped[0][1]
    index = json.loads((out / "index.json").read_text())
    assert sorted(index["cases"]) == sorted(explained.dicom)
    files = _files(out)
    assert len(files) == 4 * len(explained.dicom)
    for path in files:
        report = verify(path)
        assert report.errors == [], f"{path.name}: {report.errors}"
    # the parametric map holds exactly the attribution map of the run, frame k on source slice k
    case = explained.dicom[0]
    folder = explained.path / "explanations" / case_folder_name(case)
    attribution = np.asarray(
        __import__("nibabel").load(str(folder / "image_attribution.nii.gz")).dataobj, dtype=np.float32
    )
    if attribution.ndim == 2:
        attribution = attribution[:, :, None]
    pm = pydicom.dcmread(out / case_folder_name(case) / "parametric_map.dcm")
    frames = pm.pixel_array.reshape(-1, pm.Rows, pm.Columns)
    sources = read_source_headers(_case_image(explained.cohort, case))
    # each frame carries the attribution of the source slice at its position (highdicom may order frames
    # differently from the sources; position ties them)
    slice_at = {tuple(round(float(v), 3) for v in s.ImagePositionPatient): k for k, s in enumerate(sources)}
    expected = attribution.transpose(2, 1, 0)
    assert len(frames) == len(sources)
    for frame, item in zip(frames, pm.PerFrameFunctionalGroupsSequence, strict=True):
        position = tuple(round(float(v), 3) for v in item.PlanePositionSequence[0].ImagePositionPatient)
        np.testing.assert_array_equal(frame, expected[slice_at[position]])
    referenced = {
        item.ReferencedSOPInstanceUID
        for series in pm.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced == {s.SOPInstanceUID for s in sources}
    assert pm.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    assert pm.StudyInstanceUID == sources[0].StudyInstanceUID
    # highdicom reads it back as a parametric map
    assert hd.pm.ParametricMap.from_dataset(pm).SOPInstanceUID == pm.SOPInstanceUID


def _case_image(cohort: Path, case_id: str) -> Path:
    import pandas as pd

    cases = pd.read_csv(cohort / "cases.csv", dtype=str, keep_default_na=False).set_index("case_id")
    return cohort / cases.loc[case_id, "image"]


@pytest.mark.slow
def test_same_explanation_gives_same_uids(explained_2d, tmp_path: Path) -> None:
    first = export_run(explained_2d.path, "dir", ExportDestination(str(tmp_path / "a")), progress=False)
    second = export_run(explained_2d.path, "dir", ExportDestination(str(tmp_path / "b")), progress=False)
    uids = [[u for _, u, _ in c.objects] for c in first.exported]
    assert uids == [[u for _, u, _ in c.objects] for c in second.exported]
    assert len({u for case in uids for u in case}) == sum(len(case) for case in uids)


@pytest.mark.slow
def test_changed_cohort_is_reported_not_exported(explained_2d, tmp_path: Path) -> None:
    """A cohort whose image moved since 'mmdx explain' must not get a map on the wrong grid."""
    cohort = tmp_path / "cohort"
    shutil.copytree(explained_2d.cohort, cohort)
    case = explained_2d.dicom[0]
    image = _case_image(cohort, case)
    dataset = pydicom.dcmread(image)
    position = [float(v) for v in dataset.ImagePositionPatient]
    dataset.ImagePositionPatient = [position[0] + 5.0, *position[1:]]
    dataset.save_as(image)
    result = export_run(
        explained_2d.path, "dir", ExportDestination(str(tmp_path / "out")), cohort_dir=cohort, progress=False
    )
    reasons = dict(result.skipped)
    assert "explain the case again" in reasons[case]
    assert case not in [c.case_id for c in result.exported]


def test_a_case_whose_attribution_file_is_gone_is_skipped_with_the_reason(
    explained_2d, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(explained_2d.path, run)
    case, kept = explained_2d.dicom
    (run / "explanations" / case_folder_name(case) / "image_attribution.nii.gz").unlink()
    result = export_run(
        run, "dir", ExportDestination(str(tmp_path / "out")), cases=[case, kept], progress=False
    )
    assert [c.case_id for c in result.exported] == [kept]
    ((skipped_case, reason),) = result.skipped
    assert skipped_case == case and "image_attribution.nii.gz" in reason and "mmdx explain" in reason


def test_unknown_case_names_the_command(explained_2d, tmp_path: Path) -> None:
    with pytest.raises(MmdxError, match="mmdx explain RUN --cases NOPE"):
        export_run(explained_2d.path, "dir", ExportDestination(str(tmp_path)), cases=["NOPE"], progress=False)


def test_run_without_explanations_says_what_to_run(explained_2d, tmp_path: Path) -> None:
    bare = tmp_path / "run"
    shutil.copytree(explained_2d.path, bare, ignore=shutil.ignore_patterns("explanations"))
    with pytest.raises(MmdxError, match="mmdx explain RUN"):
        export_run(bare, "dir", ExportDestination(str(tmp_path / "out")), progress=False)
