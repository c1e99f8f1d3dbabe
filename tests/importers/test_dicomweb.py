"""``mmdx import dicomweb``: series referenced by a cohort come from a real Orthanc, voxel for voxel,
resumably, with typed issues for everything that goes wrong."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from mmdx.data.imaging import read_image
from mmdx.data.issues import IssueCode
from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.data.validation import validate_cohort
from mmdx.dicomweb.connection import AuthKind, DicomwebSettings, Secret
from mmdx.importers import dicomweb as importer
from mmdx.importers.dicomweb import (
    COMPLETE_MARKER,
    REPORT,
    SOURCE_COLUMN,
    SeriesReference,
    import_dicomweb,
    parse_reference,
)
from tests.support.dicomweb_cohorts import by_reference, dicom_files


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("dicomweb:1.2.3/4.5.6", SeriesReference("1.2.3", "4.5.6")),
        ("dicomweb:1.2.3/../../etc", "is not dicomweb:"),
        ("dicomweb:1.2.3/..", "not a DICOM UID"),
        ("dicomweb:1.2.3", "is not dicomweb:"),
        ("dicomweb:1.2.3/4.5/6", "is not dicomweb:"),
        ("dicomweb:/4.5", "is not dicomweb:"),
        ("dicomweb:1.2.x/4.5", "not a DICOM UID"),
        ("dicomweb:1.2.3/" + "1." * 40 + "1", "at most 64"),
    ],
)
def test_parse_reference(cell: str, expected) -> None:
    if isinstance(expected, SeriesReference):
        assert parse_reference(cell) == expected
    else:
        with pytest.raises(ValueError, match=expected):
            parse_reference(cell)


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small clean 2D and 3D cohorts: their DICOM images are what the PACS will serve."""
    root = tmp_path_factory.mktemp("dicomweb-originals")
    out = {}
    for dims in (2, 3):
        out[f"{dims}d"] = root / f"c{dims}"
        synthesize_cohort(
            out[f"{dims}d"], SynthOptions(n_cases=10, seed=30 + dims, dims=dims, size=16, workers=1)
        )
    return out


def _settings(pacs) -> DicomwebSettings:
    return DicomwebSettings(pacs.dicomweb_url, AuthKind.BASIC, pacs.username, Secret(pacs.password))


@pytest.mark.slow
@pytest.mark.parametrize("dims", ["2d", "3d"])
def test_fetched_images_equal_the_originals_voxel_for_voxel(dims, originals, pacs, tmp_path: Path) -> None:
    original = originals[dims]
    cohort = tmp_path / "cohort"
    referenced = by_reference(original, cohort, pacs)
    assert referenced
    result = import_dicomweb(_settings(pacs), cohort, parallel=3, progress=False)
    assert result.issues == []
    assert result.series_fetched == len(referenced)
    assert result.cases_rewritten == len(referenced)
    cases = pd.read_csv(cohort / "cases.csv", dtype=str, keep_default_na=False).set_index("case_id")
    for case_id, image in referenced.items():
        local = cases.loc[case_id, "image"]
        assert local.startswith("images/dicomweb/")
        assert local.endswith(".dcm") == image.endswith(".dcm")  # a single slice stays a single file
        assert cases.loc[case_id, SOURCE_COLUMN].startswith("dicomweb:")
        fetched, source = read_image(local, cohort), read_image(image, original)
        np.testing.assert_array_equal(fetched.array, source.array)
        np.testing.assert_allclose(fetched.affine, source.affine)
        # and the stored pixel bytes are those of the original files, instance by instance
        stored = {
            pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p).PixelData
            for p in dicom_files(original, image)
        }
        for path in dicom_files(cohort, local):
            dataset = pydicom.dcmread(path)
            assert dataset.PixelData == stored[dataset.SOPInstanceUID]
    # NIfTI cases and cases without an image are untouched
    before = pd.read_csv(original / "cases.csv", dtype=str, keep_default_na=False).set_index("case_id")
    for case_id in set(before.index) - set(referenced):
        assert cases.loc[case_id, "image"] == before.loc[case_id, "image"]
    report = json.loads((cohort / REPORT).read_text())
    assert report["series_fetched"] == len(referenced) and report["issues"] == []
    # the imported cohort validates exactly as the original does, image for image
    statuses = {
        name: {c.case_id: (c.status, c.modalities.get("image")) for c in validate_cohort(root).report.cases}
        for name, root in (("imported", cohort), ("original", original))
    }
    assert statuses["imported"] == statuses["original"]


@pytest.mark.slow
def test_import_resumes_and_fetches_only_what_is_missing(originals, pacs, tmp_path: Path) -> None:
    cohort = tmp_path / "cohort"
    referenced = by_reference(originals["3d"], cohort, pacs)
    first = import_dicomweb(_settings(pacs), cohort, progress=False)
    assert first.series_fetched == len(referenced)
    # an interruption: one series lost an instance and was never marked complete
    cases = pd.read_csv(cohort / "cases.csv", dtype=str, keep_default_na=False)
    folder = cohort / cases.loc[cases["image"].str.startswith("images/dicomweb"), "image"].iloc[0]
    (folder / COMPLETE_MARKER).unlink()
    victim = sorted(folder.glob("*.dcm"))[3]
    victim.unlink()
    again = import_dicomweb(_settings(pacs), cohort, progress=False)
    assert (again.series_fetched, again.instances_fetched) == (1, 1)
    assert again.series_already_present == len(referenced) - 1
    assert again.cases_rewritten == 0 and again.issues == []
    assert victim.is_file()
    assert pd.read_csv(cohort / "cases.csv", dtype=str, keep_default_na=False).equals(cases)


@pytest.mark.slow
def test_missing_series_and_bad_references_are_typed_issues(originals, pacs, tmp_path: Path) -> None:
    cohort = tmp_path / "cohort"
    referenced = by_reference(originals["2d"], cohort, pacs)
    cases = pd.read_csv(cohort / "cases.csv", dtype=str, keep_default_na=False)
    absent, malformed = list(referenced)[:2]
    cases.loc[cases["case_id"] == absent, "image"] = "dicomweb:1.2.3.4/5.6.7.8"
    cases.loc[cases["case_id"] == malformed, "image"] = "dicomweb:1.2.3.4"
    cases.to_csv(cohort / "cases.csv", index=False)
    result = import_dicomweb(_settings(pacs), cohort, progress=False)
    codes = {i.message.split(":")[0].removeprefix("case "): i.code for i in result.issues}
    assert codes == {absent: IssueCode.SERIES_NOT_FOUND, malformed: IssueCode.DICOMWEB_REFERENCE_INVALID}
    assert result.series_fetched == len(referenced) - 2
    after = pd.read_csv(cohort / "cases.csv", dtype=str, keep_default_na=False).set_index("case_id")
    assert after.loc[absent, "image"] == "dicomweb:1.2.3.4/5.6.7.8"  # kept, for the next run
    assert after.loc[malformed, "image"] == "dicomweb:1.2.3.4"


@pytest.mark.slow
def test_requests_in_flight_stay_within_the_bound(originals, pacs, tmp_path: Path, monkeypatch) -> None:
    cohort = tmp_path / "cohort"
    by_reference(originals["3d"], cohort, pacs)
    active, peak, lock = [0], [0], threading.Lock()
    retrieve = importer._Fetcher.retrieve

    def counted(self, *args):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.01)
            return retrieve(self, *args)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(importer._Fetcher, "retrieve", counted)
    result = import_dicomweb(_settings(pacs), cohort, parallel=2, progress=False)
    assert result.issues == [] and result.instances_fetched > 4
    assert peak[0] == 2
