"""Cohorts whose DICOM images live on a PACS: the originals are uploaded and the cases table names each
series by its ``dicomweb:<study>/<series>`` reference, as a hospital's case list would."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pydicom


def dicom_files(cohort: Path, image: str) -> list[Path]:
    """The DICOM files of a cases-table ``image`` cell: the file itself, or the series folder's files."""
    path = cohort / image
    return [path] if path.is_file() else sorted(path.glob("*.dcm"))


def by_reference(original: Path, target: Path, pacs) -> dict[str, str]:
    """Upload the original cohort's DICOM images to ``pacs`` (a :class:`mmdx.dicomweb.orthanc.TemporaryOrthanc`)
    and write at ``target`` the same cohort with each DICOM image replaced by its dicomweb: reference (and its
    files removed); returns ``case_id -> original image cell``."""
    shutil.copytree(original, target)
    cases = pd.read_csv(target / "cases.csv", dtype=str, keep_default_na=False)
    originals = {}
    for row, image in enumerate(cases["image"]):
        if not image or ".nii" in image:
            continue
        files = dicom_files(original, image)
        pacs.upload(files)
        header = pydicom.dcmread(files[0], stop_before_pixels=True)
        cases.loc[row, "image"] = f"dicomweb:{header.StudyInstanceUID}/{header.SeriesInstanceUID}"
        originals[cases.loc[row, "case_id"]] = image
        gone = target / image
        shutil.rmtree(gone) if gone.is_dir() else gone.unlink()
    cases.to_csv(target / "cases.csv", index=False)
    return originals
