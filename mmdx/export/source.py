"""The source DICOM images of an explained case, and its attribution map laid out as their frames.

An exported object must reference the images it was derived from (their SOP Instance, Series, Study and
Frame of Reference UIDs) and copy the study's patient and study attributes, so its source is read here from
the cohort: the file or series folder named in the case's ``image`` column. Only headers are read (pixel data
is skipped). Slices are sorted along the slice normal, as the image reader sorts them, so that frame ``k`` of
:attr:`CaseSource.frames` lies on ``datasets[k]``.

The attribution map (``RUN/explanations/<case>/image_attribution.nii.gz``) is on the image's grid, ``[I, J]``
or ``[I, J, K]`` with ``I`` along a DICOM row. Before it is used, its affine and shape are checked against
the grid the DICOM headers describe; a cohort that changed since ``mmdx explain`` is reported, not exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset

from mmdx.data.cohort import PathEscapesCohort, resolve_in_cohort

#: Largest distance (mm) between where the DICOM headers and the attribution map put a voxel.
GRID_TOLERANCE_MM = 1e-2
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class SourceProblem(Exception):
    """Why a case cannot be exported (its image is not DICOM, is gone, or no longer matches the map)."""


@dataclass
class CaseSource:
    """The source images of one case and its attribution map on their grid.

    ``datasets``: one header per slice, sorted along the slice normal (a 2D case has one).
    ``frames``: float32 ``[K, Rows, Columns]``, the attribution of each pixel of each slice.
    ``image_path``: the file or folder the images came from.
    """

    datasets: list[Dataset]
    frames: np.ndarray
    image_path: Path

    @property
    def modality(self) -> str:
        return str(self.datasets[0].get("Modality", "") or "")


def source_image_path(cohort_root: Path, image: str) -> Path:
    """The case's image path inside the cohort; raises :class:`SourceProblem` when it is not DICOM."""
    if not image:
        raise SourceProblem("the case has no image")
    if image.lower().endswith(_NIFTI_SUFFIXES):
        raise SourceProblem(f"its image {image} is NIfTI, not DICOM: there is no series to reference")
    try:
        path = resolve_in_cohort(cohort_root, image)
    except PathEscapesCohort as exc:
        raise SourceProblem(str(exc)) from None
    if not path.exists():
        raise SourceProblem(f"its image {image} is missing from the cohort")
    return path


def read_source_headers(path: Path) -> list[Dataset]:
    """Headers of the DICOM image(s) at ``path`` (a file, or the regular files of a series folder), sorted
    along the slice normal. Files that are not DICOM images of the folder's series are left out."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    )
    datasets = []
    for file in files:
        try:
            dataset = pydicom.dcmread(file, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        if "Rows" in dataset and "ImagePositionPatient" in dataset and "SeriesInstanceUID" in dataset:
            datasets.append(dataset)
    if not datasets:
        raise SourceProblem(f"no DICOM image with position and orientation found at {path}")
    series = {str(d.SeriesInstanceUID) for d in datasets}
    if len(series) > 1:
        raise SourceProblem(f"{path} holds {len(series)} series; the cohort's reader refuses it too")
    normal = _normal(datasets[0])
    datasets.sort(key=lambda d: float(np.dot(normal, np.asarray(d.ImagePositionPatient, dtype=float))))
    return datasets


def _normal(dataset: Dataset) -> np.ndarray:
    orientation = np.asarray(dataset.ImageOrientationPatient, dtype=float)
    return np.cross(orientation[:3], orientation[3:])


def header_affine(datasets: list[Dataset]) -> np.ndarray:
    """The voxel-to-RAS affine the headers describe (``I`` along a row, ``J`` down a column, ``K`` along
    the sorted slices; for one slice the third column is the unit normal)."""
    first = datasets[0]
    orientation = np.asarray(first.ImageOrientationPatient, dtype=float)
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    affine = np.eye(4)
    affine[:3, 0] = orientation[:3] * column_spacing
    affine[:3, 1] = orientation[3:] * row_spacing
    origin = np.asarray(first.ImagePositionPatient, dtype=float)
    if len(datasets) > 1:
        affine[:3, 2] = np.asarray(datasets[1].ImagePositionPatient, dtype=float) - origin
    else:
        affine[:3, 2] = _normal(first)
    affine[:3, 3] = origin
    return _LPS_TO_RAS @ affine


def read_case_source(cohort_root: Path, image: str, attribution_file: Path) -> CaseSource:
    """Read a case's source headers and its attribution map, and check that they share one grid."""
    path = source_image_path(cohort_root, image)
    datasets = read_source_headers(path)
    try:
        mapped = nib.load(str(attribution_file))
        values = np.asarray(mapped.dataobj, dtype=np.float32)
    except (OSError, ValueError, EOFError) as exc:
        raise SourceProblem(f"cannot read its attribution map {attribution_file.name} ({exc})") from None
    if values.ndim == 2:
        values = values[:, :, None]
    rows, columns = int(datasets[0].Rows), int(datasets[0].Columns)
    expected = (columns, rows, len(datasets))
    if values.shape != expected:
        raise SourceProblem(
            f"its attribution map has shape {values.shape} but the DICOM image is {expected} (columns, rows, "
            "slices): the cohort changed since 'mmdx explain'; explain the case again"
        )
    header = header_affine(datasets)
    n_axes = 3 if len(datasets) > 1 else 2
    corners = np.array([[0, 0, 0, 1], [expected[0] - 1, expected[1] - 1, expected[2] - 1, 1]], dtype=float).T
    keep = list(range(n_axes)) + [3]
    distance = np.abs((header[:, keep] - mapped.affine[:, keep]) @ corners[keep]).max()
    if not np.isfinite(distance) or distance > GRID_TOLERANCE_MM:
        raise SourceProblem(
            f"its attribution map lies {distance:.3g} mm away from the DICOM image's grid: the cohort changed "
            "since 'mmdx explain'; explain the case again"
        )
    frames = np.ascontiguousarray(values.transpose(2, 1, 0))
    return CaseSource(datasets=datasets, frames=frames, image_path=path)
