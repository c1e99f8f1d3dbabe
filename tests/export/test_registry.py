"""The exporter registry and the two exporters' own behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from mmdx.errors import MmdxError
from mmdx.export import EXPORTERS, ExportDestination
from mmdx.export.objects import ExportedObject, ObjectKind


def test_registry_lists_dir_and_dicomweb() -> None:
    assert EXPORTERS.names() == ["dir", "dicomweb"]
    with pytest.raises(MmdxError, match="did you mean 'dicomweb'"):
        EXPORTERS.get("dicomweeb")
    with pytest.raises(MmdxError, match="connection settings"):
        EXPORTERS.get("dicomweb").open(ExportDestination("http://127.0.0.1:9"))


def _object(uid: str) -> ExportedObject:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    dataset.file_meta.MediaStorageSOPInstanceUID = uid
    dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = uid
    dataset.SeriesInstanceUID = uid + ".1"
    dataset.StudyInstanceUID = "1.2"
    return ExportedObject(ObjectKind.SECONDARY_CAPTURE, dataset)


def test_directory_exporter_keeps_earlier_cases_in_its_index(tmp_path: Path) -> None:
    for case, uid in (("A", "1.1"), ("B/2", "1.2")):
        exporter = EXPORTERS.get("dir").open(ExportDestination(str(tmp_path)))
        (written,) = exporter.send(case, [_object(uid)])
        exporter.close()
        assert Path(written).is_file() and Path(written).parent.parent == tmp_path
    index = json.loads((tmp_path / "index.json").read_text())
    assert sorted(index["cases"]) == ["A", "B/2"]
    assert index["cases"]["B/2"][0]["sop_instance_uid"] == "1.2"
    assert (tmp_path / index["cases"]["B/2"][0]["file"]).is_file()
    assert oct((tmp_path / "A").stat().st_mode & 0o777) == "0o700"


def test_directory_exporter_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    with pytest.raises(MmdxError, match="cannot create|not a folder"):
        EXPORTERS.get("dir").open(ExportDestination(str(tmp_path / "taken")))
