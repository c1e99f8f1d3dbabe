"""One DICOM dataset through the profile: every identifying value gone, structure and pixels kept."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, UltrasoundImageStorage

from mmdx.deid.dicom import (
    DicomDeidentifier,
    DicomOptions,
    PatientContext,
    QuarantineReason,
    parse_private_allowlist,
    shift_da,
    shift_dt,
)
from mmdx.deid.key import DeidKey
from mmdx.errors import MmdxError

KEY = DeidKey(b"\x05" * 32)
PATIENT = PatientContext(pseudonym="P-0123456789", day_shift=-40)
SECRETS = ["SECRETNAME", "SECRETMRN", "SECRETDOC", "SECRETADDR", "SECRETPRIV", "SECRETNESTED", "SECRETUN"]


def _dataset(modality: str = "CT", burned: str | None = "NO") -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else UltrasoundImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "SECRETAE"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = "1.2.3.4.5.6"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = "1.2.3.4.5"
    ds.Modality = modality
    ds.PatientName = "SECRETNAME^JOHN"
    ds.PatientID = "SECRETMRN"
    ds.PatientBirthDate = "19500101"
    ds.PatientAge = "093Y"
    ds.PatientSex = "M"
    ds.PatientAddress = "1 SECRETADDR Road"
    ds.ReferringPhysicianName = "SECRETDOC^DR"
    ds.StudyDate = "20240301"
    ds.StudyTime = "101500"
    ds.AcquisitionDateTime = "20240301101500.000000+0100"
    ds.InstanceCreationDate = "20240302"
    ds.StudyDescription = "SECRETNAME chest"
    ds.add_new(0x00091001, "UN", b"SECRETUN")  # an unknown public-looking element of unknown VR
    ds.add_new(0x00400006, "PN", "SECRETDOC")  # Scheduled Performing Physician's Name (listed X)
    ds.add_new(0x00181800, "CS", "Y")  # unlisted, kept
    nested_code = Dataset()
    nested_code.CodeValue = "X1"
    nested_code.CodeMeaning = "kept code meaning"
    inner = Dataset()
    inner.ConceptNameCodeSequence = Sequence([nested_code])
    inner.add_new(0x00401010, "PN", "SECRETNESTED")  # Names of Intended Recipients (X), two levels deep
    inner.ReferencedSOPInstanceUID = "1.2.3.4.5.7"
    outer = Dataset()
    outer.ReferencedSOPClassUID = CTImageStorage
    outer.ReferencedSOPInstanceUID = "1.2.3.4.5.7"
    outer.PurposeOfReferenceCodeSequence = Sequence([inner])
    ds.ReferencedImageSequence = Sequence([outer])
    ds.SourceImageSequence = Sequence([Dataset()])
    ds.SourceImageSequence[0].ReferencedSOPInstanceUID = "1.2.3.4.5.7"
    ds.SourceImageSequence[0].add_new(0x00100010, "PN", "SECRETNESTED")
    block = ds.private_block(0x0011, "SECRET CREATOR", create=True)
    block.add_new(0x10, "LO", "SECRETPRIV")
    safe = ds.private_block(0x0019, "SAFE CREATOR", create=True)
    safe.add_new(0x20, "DS", "3.5")
    if burned is not None:
        ds.BurnedInAnnotation = burned
    ds.Rows, ds.Columns = 4, 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.arange(16, dtype=np.uint16).tobytes()
    return ds


def _write(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def test_no_secret_survives_and_structure_is_kept(tmp_path: Path) -> None:
    src = _write(_dataset(), tmp_path / "in.dcm")
    result = DicomDeidentifier(KEY).deidentify_file(src, tmp_path / "out.dcm", PATIENT)
    assert result.quarantine is None
    raw = (tmp_path / "out.dcm").read_bytes()
    for secret in SECRETS + ["SECRETAE", "19500101", "1.2.3.4.5.6\0", "1.2.3.4.5.7"]:
        assert secret.encode() not in raw, secret
    out = dcmread(tmp_path / "out.dcm")
    assert out.PatientID == out.PatientName == PATIENT.pseudonym
    assert out.PatientBirthDate == "" and out.PatientSex == "M"
    assert out.PatientAge == "090Y"  # over 89: grouped
    assert out.StudyDate == "20240121" and out.InstanceCreationDate == "20240122"  # 40 days earlier
    assert out.AcquisitionDateTime == "20240121101500.000000+0100" and out.StudyTime == "101500"
    assert "StudyDescription" not in out and "PatientAddress" not in out and 0x00400006 not in out
    assert 0x00091001 not in out and out[0x00181800].value == "Y"
    assert out.PatientIdentityRemoved == "YES"
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == ["113100", "113107", "113108"]
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID == KEY.uid("1.2.3.4.5.6")
    assert "SourceApplicationEntityTitle" not in out.file_meta
    # the X/Z/U* sequence is walked: references remapped consistently, nested names emptied, codes kept
    reference = out.ReferencedImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == KEY.uid("1.2.3.4.5.7")
    assert reference.ReferencedSOPClassUID == CTImageStorage
    inner = reference.PurposeOfReferenceCodeSequence[0]
    assert inner.ReferencedSOPInstanceUID == KEY.uid("1.2.3.4.5.7")
    assert 0x00401010 not in inner
    assert inner.ConceptNameCodeSequence[0].CodeMeaning == "kept code meaning"
    assert out.SourceImageSequence[0].PatientName == PATIENT.pseudonym
    assert not any(elem.tag.is_private for elem in out)
    assert out.PixelData == np.arange(16, dtype=np.uint16).tobytes()
    assert {"SECRETNAME", "SECRETDOC", "SECRETNESTED", "JOHN"} <= result.names
    assert "SECRETMRN" in result.identifiers and "1 SECRETADDR Road" in result.phrases


def test_allowlisted_private_attribute_is_kept_with_its_creator(tmp_path: Path) -> None:
    options = DicomOptions(private_allowlist=parse_private_allowlist(["0019,SAFE CREATOR,20"]))
    src = _write(_dataset(), tmp_path / "in.dcm")
    DicomDeidentifier(KEY, options).deidentify_file(src, tmp_path / "out.dcm", PATIENT)
    out = dcmread(tmp_path / "out.dcm")
    assert out.private_block(0x0019, "SAFE CREATOR")[0x20].value == "3.5"
    assert b"SECRETPRIV" not in (tmp_path / "out.dcm").read_bytes()
    assert "113111" in [i.CodeValue for i in out.DeidentificationMethodCodeSequence]


@pytest.mark.parametrize("entry", ["0018,GEMS,10", "0019,,10", "0019,GEMS", "zz,GEMS,10", "0019,GEMS,100"])
def test_bad_allowlist_entries_are_refused(entry: str) -> None:
    with pytest.raises(MmdxError, match="GGGG,CREATOR,EE"):
        parse_private_allowlist([entry])


def test_without_the_date_option_no_date_survives(tmp_path: Path) -> None:
    src = _write(_dataset(), tmp_path / "in.dcm")
    DicomDeidentifier(KEY, DicomOptions(shift_dates=False)).deidentify_file(src, tmp_path / "o.dcm", PATIENT)
    out = dcmread(tmp_path / "o.dcm")
    assert out.StudyDate == "" and out.InstanceCreationDate == "" and "AcquisitionDateTime" in out
    assert out.AcquisitionDateTime == ""
    assert out.LongitudinalTemporalInformationModified == "REMOVED"


@pytest.mark.parametrize(
    ("modality", "burned", "reason"),
    [
        ("CT", "NO", None),
        ("CT", None, None),
        ("CT", "YES", QuarantineReason.BURNED_IN_ANNOTATION),
        ("US", None, QuarantineReason.BURNED_IN_ANNOTATION_UNKNOWN),
        ("US", "", QuarantineReason.BURNED_IN_ANNOTATION_UNKNOWN),
        ("US", "NO", None),
        ("SC", None, QuarantineReason.BURNED_IN_ANNOTATION_UNKNOWN),
        ("OT", None, QuarantineReason.BURNED_IN_ANNOTATION_UNKNOWN),
    ],
)
def test_quarantine_rules(tmp_path: Path, modality: str, burned: str | None, reason) -> None:
    src = _write(_dataset(modality, burned), tmp_path / "in.dcm")
    result = DicomDeidentifier(KEY).deidentify_file(src, tmp_path / "out.dcm", PATIENT)
    assert result.quarantine == reason
    assert (tmp_path / "out.dcm").exists() == (reason is None)


def test_truncated_and_non_dicom_files_are_held_back(tmp_path: Path) -> None:
    src = _write(_dataset(), tmp_path / "in.dcm")
    data = src.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) - 10])
    (tmp_path / "notes.txt").write_text("SECRETNAME")
    deid = DicomDeidentifier(KEY)
    assert deid.deidentify_file(tmp_path / "cut.dcm", tmp_path / "a.dcm", PATIENT).quarantine in (
        QuarantineReason.DICOM_TRUNCATED,
        QuarantineReason.DICOM_UNREADABLE,
    )
    assert deid.deidentify_file(tmp_path / "notes.txt", tmp_path / "b.dcm", PATIENT).quarantine is (
        QuarantineReason.NOT_DICOM
    )
    assert not (tmp_path / "a.dcm").exists() and not (tmp_path / "b.dcm").exists()


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [("20240301", -1, "20240229"), ("20240301-20240310", -10, "20240220-20240229"), ("2024", -1, None)],
)
def test_shift_da(value: str, days: int, expected: str | None) -> None:
    assert shift_da(value, days) == expected


def test_shift_dt_keeps_time_and_zone() -> None:
    assert shift_dt("20240101000000.5-0500", -1) == "20231231000000.5-0500"
    assert shift_dt("2024", -1) is None


def test_uid_remapping_is_valid() -> None:
    for original in ("1.2.3", "1.2.840.113619.2.55.3.604688119.969.1268071029.320"):
        assert re.fullmatch(r"2\.25\.\d{1,39}", KEY.uid(original))
