"""DICOM writing for the synthetic cohort: CT (or MR) slices (with PHI canaries on request) and the broken
files that the defects plant."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from mmdx.data.synth.images import ImageGeometry


def _study_slice(ids: dict, site: dict, k: int, ndim: int, z_spacing: float) -> Any:
    """Slice ``k``'s file meta, patient, study and series attributes (everything but the image's own); a
    CT image, or an MR one for a site whose ``modality`` is ``MR``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

    modality = site.get("modality", "CT")
    sop_class = MRImageStorage if modality == "MR" else CTImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = synthetic_uid(ids["seed_uid"], "sop", k)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "MMDX_SYNTH_1"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = ids["study_date"]
    ds.SeriesDate = ids["study_date"]
    ds.StudyTime = "083000"
    ds.AccessionNumber = ids["accession"]
    ds.Modality = modality
    ds.Manufacturer = site["manufacturer"]
    ds.InstitutionName = f"{ids['site'].title()} General Hospital"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = f"{modality} CHEST"
    ds.SeriesDescription = "AXIAL 2D" if ndim == 2 else "AXIAL"
    ds.PatientName = ids["patient_name"]
    ds.PatientID = ids["patient_id"]
    ds.PatientBirthDate = ""
    ds.PatientSex = ids["sex"]
    ds.PatientAge = f"{int(ids['age']):03d}Y"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = f"{z_spacing:.4f}"
    if modality == "CT":
        ds.KVP = "120"
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = synthetic_uid(ids["seed_uid"], "study", 0)
    ds.SeriesInstanceUID = ids.get("series_uid") or synthetic_uid(ids["seed_uid"], "series", 0)
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    return ds


def dicom_slices(
    hu: np.ndarray,
    geometry: ImageGeometry,
    site: dict,
    rng: np.random.Generator,
    ids: dict,
    order: str,
) -> list:
    """One pydicom dataset per slice. ``hu`` is [I, J] or [I, J, K] with I along the DICOM row direction."""
    modality = site.get("modality", "CT")
    volume = hu if hu.ndim == 3 else hu[..., None]
    n_slices = volume.shape[2]
    slope, intercept = site["rescale"]
    stored = np.round((volume - intercept) / slope)
    signed = intercept == 0.0
    stored = np.clip(stored, -32768, 32767) if signed else np.clip(stored, 0, 65535)
    dtype = np.int16 if signed else np.uint16
    spacing = abs(float(geometry.affine[0, 0]))
    z_spacing = float(geometry.affine[2, 2]) if hu.ndim == 3 else 2.0 * spacing
    origin_ras = geometry.affine[:3, 3]
    numbers = np.arange(1, n_slices + 1)
    if order == "descending":
        numbers = numbers[::-1]
    elif order == "shuffled":
        numbers = rng.permutation(numbers)
    out = []
    for k in range(n_slices):
        ras = origin_ras + geometry.affine[:3, 2] * k if hu.ndim == 3 else origin_ras
        lps = [-ras[0], -ras[1], ras[2]]
        ds = _study_slice(ids, site, k, hu.ndim, z_spacing)
        ds.InstanceNumber = int(numbers[k])
        ds.ImagePositionPatient = [f"{v:.4f}" for v in lps]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.FrameOfReferenceUID = synthetic_uid(ids["seed_uid"], "frame", 0)
        ds.PositionReferenceIndicator = ""  # type 2: present, empty when there is no anatomical reference
        ds.SliceLocation = f"{lps[2]:.4f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = volume.shape[1]
        ds.Columns = volume.shape[0]
        ds.PixelSpacing = [f"{spacing:.6f}", f"{spacing:.6f}"]
        if hu.ndim == 3:
            ds.SpacingBetweenSlices = f"{z_spacing:.4f}"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if signed else 0
        if modality == "CT":
            ds.WindowCenter = "-600"
            ds.WindowWidth = "1500"
        ds.RescaleIntercept = f"{intercept:g}"
        ds.RescaleSlope = f"{slope:g}"
        if modality == "CT":
            ds.RescaleType = "HU"
        # pixel rows run along J (the column direction), columns along I: store the transpose
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T.astype(dtype)).tobytes()
        if "phi" in ids:
            _add_phi_attributes(ds, ids, k)
        out.append(ds)
    return out


PHI_PRIVATE_GROUP = 0x0011
PHI_PRIVATE_CREATOR = "MMDX SYNTH PHI"


def _add_phi_attributes(ds, ids: dict, k: int) -> None:
    """Fill every identifying attribute of one slice with canary values (``ids["phi"]``, see ``phi_identity``).

    Covers the patient, physician, operator, institution and device attributes, dates and date-times, a
    request sequence nesting a physician's name and a study reference, a physician identification sequence
    nested two levels deep, other patient IDs, a reference to the previous slice (so UID remapping can be
    checked to keep references resolvable) and a private block with its creator.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    phi = ids["phi"]
    study_uid = ds.StudyInstanceUID
    ds.PatientBirthDate = phi["birth_date"].replace("-", "")
    ds.PatientAddress = phi["address"]
    ds.PatientTelephoneNumbers = phi["phone"]
    ds.OtherPatientNames = f"{phi['given']}^{phi['family']}"
    ds.PatientMotherBirthName = phi["family"]
    ds.ReferringPhysicianName = f"{phi['doctor']}^DR"
    ds.PerformingPhysicianName = f"{phi['doctor']}^DR"
    ds.OperatorsName = phi["operator"]
    ds.InstitutionAddress = phi["address"]
    ds.StationName = phi["station"]
    ds.DeviceSerialNumber = phi["device_serial"]
    ds.StudyID = phi["study_id"]
    ds.AdditionalPatientHistory = f"Patient {phi['given']} {phi['family']} referred by Dr {phi['doctor']}"
    ds.ImageComments = f"{phi['family']} {phi['mrn']} {phi['phone']}"
    ds.PatientComments = f"Contact {phi['email']}"
    ds.AcquisitionDate = ids["study_date"]
    ds.ContentDate = ids["study_date"]
    ds.InstanceCreationDate = ids["study_date"]
    ds.AcquisitionDateTime = f"{ids['study_date']}0830{k % 60:02d}.000000"
    ds.BurnedInAnnotation = "NO"

    other = Dataset()
    other.PatientID = phi["other_id"]
    other.IssuerOfPatientID = "CANARY_ISSUER"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])

    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired)
    study_ref.ReferencedSOPInstanceUID = study_uid
    request = Dataset()
    request.RequestedProcedureID = phi["request_id"]
    request.ScheduledProcedureStepID = phi["request_id"]
    request.RequestingPhysician = f"{phi['doctor']}^DR"
    request.ReferencedStudySequence = Sequence([study_ref])
    ds.RequestAttributesSequence = Sequence([request])

    code = Dataset()
    code.CodeValue = phi["mrn"]
    code.CodingSchemeDesignator = "L"
    code.CodeMeaning = f"Dr {phi['doctor']}"
    physician = Dataset()
    physician.PersonIdentificationCodeSequence = Sequence([code])
    physician.PersonAddress = phi["address"]
    physician.InstitutionName = f"{phi['family']} Clinic"
    ds.ReferringPhysicianIdentificationSequence = Sequence([physician])

    patient_ref = Dataset()
    patient_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.1.1"  # Detached Patient Management (retired)
    patient_ref.ReferencedSOPInstanceUID = synthetic_uid(ids["seed_uid"], "patient", 0)
    ds.ReferencedPatientSequence = Sequence([patient_ref])
    if k > 0:
        image_ref = Dataset()
        image_ref.ReferencedSOPClassUID = ds.SOPClassUID
        image_ref.ReferencedSOPInstanceUID = synthetic_uid(ids["seed_uid"], "sop", k - 1)
        ds.ReferencedImageSequence = Sequence([image_ref])

    block = ds.private_block(PHI_PRIVATE_GROUP, PHI_PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", f"{phi['family']}^{phi['given']}")
    block.add_new(0x11, "LO", phi["mrn"])
    block.add_new(0x12, "LT", f"{phi['private']} {phi['email']}")


def synthetic_uid(seed_uid: str, kind: str, index: int) -> str:
    digest = int(hashlib.sha256(f"{seed_uid}/{kind}/{index}".encode()).hexdigest()[:24], 16)
    return f"2.25.{digest}"


def save_dicom(ds, path: Path) -> None:
    from pydicom import dcmwrite

    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(str(path), ds, enforce_file_format=True)


def write_no_pixel_dicom(path: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path.name)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.PatientID = "SR"
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(path.name), "series"])
    save_dicom(ds, path)


def write_unsupported_syntax(path: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import CTImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path.name)])
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 Main Profile / Main Level
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(path.name), "series"])
    ds.Modality = "CT"
    ds.Rows, ds.Columns = 16, 16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    ds.PixelData = encapsulate([hashlib.sha256(path.name.encode()).digest() * 2])
    ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    from pydicom import dcmwrite

    dcmwrite(str(path), ds, enforce_file_format=True)
