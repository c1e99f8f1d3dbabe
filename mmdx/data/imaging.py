"""Image readers: DICOM series folders, single DICOM files and NIfTI volumes, as arrays on a world grid.

Every reader returns an :class:`ImageVolume` or raises :class:`~mmdx.data.issues.ImageReadError`, whose
``issue`` carries a typed reason code. No other exception leaves this module for a problem with a file:
parser, decoder, numpy and operating-system errors are all translated. Non-fatal findings travel in
``ImageVolume.warnings`` as ``Severity.WARNING`` issues.

Conventions
-----------
``array``
    float32, ``[I, J, K]`` for a volume and ``[I, J]`` for a 2D image, in physical units: DICOM Rescale
    Slope/Intercept or the Modality LUT applied (Hounsfield units for CT), RT Dose scaled by Dose Grid
    Scaling, NIfTI ``scl_slope``/``scl_inter`` applied.
DICOM axes
    ``I`` is the column index (it runs along a row, direction ``ImageOrientationPatient[0:3]``), ``J`` the
    row index (direction ``ImageOrientationPatient[3:6]``) and ``K`` the slice index, slices sorted by
    their position along the normal ``cross(row direction, column direction)``. Hence
    ``array[i, j, k] == pixel_array_of_slice_k[j, i]``. InstanceNumber and file names play no part.
``affine``
    4x4 float64 mapping a voxel index ``(i, j, k, 1)`` to RAS+ millimetres (the nibabel convention).
    DICOM patient coordinates are LPS and are converted by negating x and y. For a 2D image the third
    column is the slice normal times the slice thickness (1 mm when unknown).

Decisions
---------
* A DICOM folder is read from the regular files directly inside it; hidden files, ``DICOMDIR`` and
  subfolders are skipped (subfolders with a warning). Files that are not DICOM (a README, a JSON sidecar)
  and DICOM files without pixel data (a structured report, a presentation state) are ignored with a
  warning. A file that carries the ``DICM`` marker but cannot be parsed fails the whole series.
* Slice gaps are uniform when every gap is within ``max(SLICE_GAP_RELATIVE_TOLERANCE * median gap,
  SLICE_GAP_ABSOLUTE_TOLERANCE_MM)`` of the median; otherwise ``SLICE_SPACING_INCONSISTENT`` (a slice is
  missing, or the series mixes spacings). Deviations within that tolerance but above
  ``SLICE_GAP_ABSOLUTE_TOLERANCE_MM`` are tolerated with a warning. Two slices closer than
  ``SLICE_GAP_ABSOLUTE_TOLERANCE_MM`` are ``DUPLICATE_SLICE_POSITION``.
* The slice axis of the affine is the step between consecutive slice positions, so a CT series acquired
  with a tilted gantry keeps its exact geometry as a sheared affine (reported as a warning).
* Multi-frame files: frames with per-frame positions (enhanced CT/MR/PET functional groups, or RT Dose's
  Grid Frame Offset Vector) are stacked like a series. A multi-frame file without per-frame geometry is
  refused (``DICOM_UNSUPPORTED_IMAGE``): its frames may be time points or views, not slices. Colour and
  palette images and segmentation objects are refused too.
* MONOCHROME1 images keep their stored values (no inversion); ``meta["photometric_interpretation"]``
  says which polarity they have.
* A file without the ``DICM`` marker is read as DICOM only when a forced parse finds pixel data or a SOP
  Class UID; otherwise it is ``IMAGE_FORMAT_UNKNOWN``.
* Images with more than ``MAX_VOXELS`` voxels are refused before decoding (``IMAGE_UNREADABLE``), and so
  are images of the wrong dimensionality, NIfTI files holding less voxel data than their header declares
  and DICOM pixel data declared to run past the end of its file (:mod:`mmdx.data.image_headers`).
* ``meta`` holds no patient identifiers (no names, IDs or dates), only acquisition geometry and coding.
  Warnings that pydicom or nibabel emit while reading are kept in ``meta["reader_warnings"]`` rather
  than printed; they are collected with ``warnings.catch_warnings``, which is process-wide, so read
  images in parallel with processes (as data loader workers do), not threads.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from itertools import product
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
    SegmentationStorage,
)

from mmdx.data.image_headers import (
    check_declared_shape,
    check_deferred_extents,
    check_nifti_header,
    is_gzip,
)
from mmdx.data.issues import ImageReadError, Issue, IssueCode, Severity

#: Largest image, in voxels, that is decoded (512 x 512 x 1024: 1 GiB as float32). Read at call time,
#: so a deployment may raise it.
MAX_VOXELS = 512 * 512 * 1024
#: A slice gap may differ from the median gap by this fraction of it before the series is refused.
SLICE_GAP_RELATIVE_TOLERANCE = 0.10
#: Floor of that tolerance, the distance under which two slices count as one position, and the positional
#: deviation above which a tolerated irregularity is reported as a warning (millimetres).
SLICE_GAP_ABSOLUTE_TOLERANCE_MM = 0.01
#: Largest difference between direction cosines of slices of one series.
ORIENTATION_TOLERANCE = 1e-3
#: Largest relative difference between pixel spacings of slices of one series.
PIXEL_SPACING_RELATIVE_TOLERANCE = 1e-3
#: Largest distance (mm) between where the NIfTI qform and sform put any corner of the voxel grid.
NIFTI_AFFINE_TOLERANCE_MM = 1e-3
#: Data elements larger than this are read from disk only when used, so a series folder is parsed
#: without holding every slice's pixel bytes at once.
_DEFER_SIZE = 64 * 1024

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_GREYSCALE = ("MONOCHROME1", "MONOCHROME2")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_NIFTI_SPATIAL_UNITS_TO_MM = {"meter": 1000.0, "mm": 1.0, "micron": 1e-3, "unknown": 1.0}
_UNDEFINED_LENGTH = 0xFFFFFFFF


class ImageFormat(StrEnum):
    """Where an :class:`ImageVolume` came from (``ImageVolume.format``)."""

    DICOM_SERIES = "dicom-series"
    DICOM_FILE = "dicom-file"
    NIFTI = "nifti"


@dataclass
class ImageVolume:
    """One image on a world grid.

    ``array``: float32 ``[I, J, K]`` (3D) or ``[I, J]`` (2D), physical units (HU for CT).
    ``affine``: float64 ``[4, 4]``, voxel index ``(i, j, k, 1)`` to RAS+ millimetres.
    ``source``: the path as given, relative to the cohort root when one was given.
    ``format``: an :class:`ImageFormat` value. ``warnings``: non-fatal issues (``Severity.WARNING``).
    ``meta``: JSON-serialisable facts about the acquisition (no patient identifiers).
    """

    array: np.ndarray
    affine: np.ndarray
    source: str
    format: str
    warnings: list[Issue] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def ndim(self) -> int:
        """2 or 3: the number of array axes."""
        return int(self.array.ndim)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm along each array axis (lengths of the affine's first ``ndim`` columns)."""
        return tuple(float(np.linalg.norm(self.affine[:3, axis])) for axis in range(self.ndim))


# --------------------------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------------------------


def read_image(path: str | Path, root: Path | None = None, dims: int | None = None) -> ImageVolume:
    """Read a DICOM series folder, a single DICOM file or a ``.nii``/``.nii.gz`` file.

    ``path`` is relative to ``root`` (the cohort directory) when ``root`` is given, and must not resolve
    outside it (``PATH_ESCAPES_COHORT``; symbolic links and ``..`` are followed first). ``dims`` (2 or 3),
    when given, is the dimensionality the caller needs: a single-slice volume ``[I, J, 1]`` counts as 2D
    and is returned as ``[I, J]`` when ``dims == 2``; any other mismatch is ``IMAGE_WRONG_DIMENSIONS``.

    Raises :class:`ImageReadError` for every problem with the file; :class:`ValueError` only for a
    ``dims`` argument other than ``None``, 2 or 3 (a bug in the caller, not in the data).
    """
    _check_dims_argument(dims)
    label = _display_path(path, root)
    with _reading(label) as caught:
        candidate = _locate(Path(path), None if root is None else Path(root), label)
        if candidate.is_dir():
            with _dicom_errors(label):
                volume = _read_series(candidate, label, root, dims=dims)
        elif not candidate.is_file():
            raise ImageReadError(
                IssueCode.IMAGE_UNREADABLE,
                f"'{label}' is neither a regular file nor a folder; give a DICOM folder or file, "
                "or a NIfTI file",
                label,
            )
        elif _has_nifti_suffix(Path(path).name) or _has_nifti_suffix(candidate.resolve().name):
            volume = _read_nifti(candidate, label, dims=dims)
        else:
            with _dicom_errors(label):
                dataset = _parse_dicom(candidate, label)
            if dataset is None:
                raise ImageReadError(
                    IssueCode.IMAGE_FORMAT_UNKNOWN, _unknown_format_message(candidate), label
                )
            with _dicom_errors(label):
                volume = _volume_from_file(dataset, label, dims=dims)
        return _keep_reader_warnings(_apply_dims(volume, dims, label), caught)


def read_dicom_series(folder: Path, *, root: Path | None = None, source: str | None = None) -> ImageVolume:
    """Read the DICOM slices directly inside ``folder`` as one volume ``[I, J, K]`` (see module docs).

    ``root``, when given, is the cohort directory: slices that are links pointing outside it are refused
    and issue paths are written relative to it. ``source`` overrides the label used in issues.
    """
    label = source if source is not None else _display_path(folder, root)
    with _reading(label) as caught:
        folder = Path(folder)
        if not folder.is_dir():
            code = IssueCode.IMAGE_NOT_FOUND if not folder.exists() else IssueCode.IMAGE_UNREADABLE
            raise ImageReadError(code, f"'{label}' is not a folder of DICOM slices", label)
        with _dicom_errors(label):
            volume = _read_series(folder, label, root)
        return _keep_reader_warnings(volume, caught)


def read_dicom_file(path: Path, *, root: Path | None = None, source: str | None = None) -> ImageVolume:
    """Read one DICOM file: a 2D image ``[I, J]``, or a volume ``[I, J, K]`` for a multi-frame file
    whose frames carry positions (enhanced CT/MR, RT Dose)."""
    label = source if source is not None else _display_path(path, root)
    with _reading(label) as caught:
        path = Path(path)
        if not path.is_file():
            raise ImageReadError(IssueCode.IMAGE_NOT_FOUND, f"DICOM file '{label}' does not exist", label)
        with _dicom_errors(label):
            dataset = _parse_dicom(path, label)
        if dataset is None:
            raise ImageReadError(
                IssueCode.DICOM_INVALID,
                f"'{label}' is not DICOM: it has no 'DICM' marker and no DICOM data elements could be parsed",
                label,
            )
        with _dicom_errors(label):
            volume = _volume_from_file(dataset, label)
        return _keep_reader_warnings(volume, caught)


def read_nifti(path: Path, *, root: Path | None = None, source: str | None = None) -> ImageVolume:
    """Read a NIfTI-1/2 file as ``[I, J]`` or ``[I, J, K]``; the affine is the sform when its code is set,
    else the qform, else nibabel's base affine (with a warning). Both set and disagreeing:
    ``NIFTI_QFORM_SFORM_MISMATCH``. Trailing singleton axes beyond the third are dropped; a real 4D image
    is ``IMAGE_WRONG_DIMENSIONS``."""
    label = source if source is not None else _display_path(path, root)
    with _reading(label) as caught:
        path = Path(path)
        if not path.is_file():
            raise ImageReadError(IssueCode.IMAGE_NOT_FOUND, f"NIfTI file '{label}' does not exist", label)
        return _keep_reader_warnings(_read_nifti(path, label), caught)


def with_dims(volume: ImageVolume, dims: int | None) -> ImageVolume:
    """``volume`` (read with ``dims=None``) as :func:`read_image` gives it with ``dims``: a single-slice
    volume as ``[I, J]`` for ``dims == 2``, ``IMAGE_WRONG_DIMENSIONS`` for any other mismatch. For a caller
    that needs one file both as it is and at a given dimensionality without reading it twice; ``volume``
    itself is left unchanged (the result may share its voxels)."""
    _check_dims_argument(dims)
    if dims is None:
        return volume
    copy = replace(volume, warnings=list(volume.warnings), meta=dict(volume.meta))
    return _apply_dims(copy, dims, volume.source)


def check_image(path: str | Path, root: Path | None = None, dims: int | None = None) -> list[Issue]:
    """Validate one image: ``[]`` or its warnings when it reads, ``[the error]`` when it does not.

    The pixel data is decoded, because a truncated file or an undecodable transfer syntax only shows
    then. Never raises for a problem with the file.
    """
    try:
        return list(read_image(path, root=root, dims=dims).warnings)
    except ImageReadError as exc:
        return [exc.issue]


# --------------------------------------------------------------------------------------------------------
# paths and error translation
# --------------------------------------------------------------------------------------------------------


def _check_dims_argument(dims: int | None) -> None:
    if dims is not None and dims not in (2, 3):
        raise ValueError(f"dims must be None, 2 or 3, got {dims!r}")


def _display_path(path: str | Path, root: str | Path | None) -> str:
    """The path as issues show it: as given, or relative to the cohort root."""
    given = Path(path)
    if root is None:
        return str(path)
    if not given.is_absolute():
        return given.as_posix()
    with contextlib.suppress(ValueError, OSError, RuntimeError):  # RuntimeError: a symbolic link loop
        return given.relative_to(Path(root)).as_posix()
    with contextlib.suppress(ValueError, OSError, RuntimeError):
        return given.resolve().relative_to(Path(root).resolve()).as_posix()
    return str(path)


def _locate(path: Path, root: Path | None, label: str) -> Path:
    """The path to open; refuses paths resolving outside ``root`` and paths that do not exist."""
    candidate = path if root is None or path.is_absolute() else root / path
    if root is not None:
        if not root.is_dir():
            raise ImageReadError(
                IssueCode.IMAGE_NOT_FOUND,
                f"the cohort directory {root} does not exist or is not a folder",
                label,
            )
        _check_inside(candidate, root, label)
    if not candidate.exists():
        where = f" in the cohort directory {root}" if root is not None else ""
        if str(path).startswith("dicomweb:"):
            raise ImageReadError(
                IssueCode.IMAGE_NOT_FOUND,
                f"'{label}' is a series on a PACS that has not been fetched; run "
                "'mmdx import dicomweb URL COHORT' first",
                label,
            )
        raise ImageReadError(
            IssueCode.IMAGE_NOT_FOUND,
            f"'{label}' does not exist{where}; check the image column of the cases table",
            label,
        )
    return candidate


def _check_inside(candidate: Path, root: Path, label: str) -> None:
    try:
        real = candidate.resolve()
    except RuntimeError:  # a symbolic link loop
        raise ImageReadError(
            IssueCode.IMAGE_UNREADABLE, f"'{label}' is a symbolic link loop", label
        ) from None
    root_real = root.resolve()
    if not real.is_relative_to(root_real):
        raise ImageReadError(
            IssueCode.PATH_ESCAPES_COHORT,
            f"'{label}' resolves to {real}, outside the cohort directory {root_real}; image paths must stay "
            "inside the cohort (copy the image into it instead of linking or using '..')",
            label,
        )


@contextlib.contextmanager
def _reading(label: str) -> Iterator[list[warnings.WarningMessage]]:
    """Translate any failure into ImageReadError, so callers handle exactly one exception type, and
    collect the warnings of pydicom, nibabel and the decoders (see :func:`_keep_reader_warnings`)."""
    try:
        with _captured_warnings() as caught:
            yield caught
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(
            IssueCode.IMAGE_UNREADABLE, f"not enough memory to read '{label}'; the image is too large", label
        ) from None
    except OSError as exc:
        raise ImageReadError(IssueCode.IMAGE_UNREADABLE, f"cannot read '{label}': {exc}", label) from None
    except Exception as exc:
        raise ImageReadError(
            IssueCode.IMAGE_UNREADABLE, f"cannot read '{label}': {type(exc).__name__}: {exc}", label
        ) from None


@contextlib.contextmanager
def _dicom_errors(label: str) -> Iterator[None]:
    """Parser errors raised while DICOM values are converted on first use mean a damaged dataset."""
    try:
        yield
    except (ImageReadError, MemoryError):
        raise
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # a real input/output failure; pydicom raises bare OSErrors for malformed items
        raise ImageReadError(
            IssueCode.DICOM_INVALID,
            f"'{label}' holds a damaged DICOM dataset: {type(exc).__name__}: {_one_line(str(exc))}",
            label,
        ) from None


def _keep_reader_warnings(volume: ImageVolume, caught: list[warnings.WarningMessage]) -> ImageVolume:
    """Library warnings (odd values, non-standard encodings) go to ``meta`` instead of the console."""
    volume.meta["reader_warnings"] = list(dict.fromkeys(_one_line(str(w.message), 200) for w in caught))[:5]
    return volume


def _has_nifti_suffix(name: str) -> bool:
    return name.lower().endswith(_NIFTI_SUFFIXES)


def _unknown_format_message(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(352)
    if head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] == b"n+2\x00":
        return (
            f"'{path.name}' looks like NIfTI but is not named .nii or .nii.gz; rename it "
            "(a .hdr/.img pair must be converted to a single .nii file)"
        )
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return (
            f"'{path.name}' is a zip archive; unzip it and point the image column at the folder of one "
            "series (or at a NIfTI file)"
        )
    if head[:2] == b"\x1f\x8b":
        return (
            f"'{path.name}' is gzip-compressed but not named .nii.gz; mmdx reads DICOM and NIfTI images only"
        )
    return (
        f"'{path.name}' is neither DICOM (no 'DICM' marker, no parsable data elements) "
        "nor NIfTI (.nii/.nii.gz)"
    )


def _apply_dims(volume: ImageVolume, dims: int | None, label: str) -> ImageVolume:
    if dims is None:
        return volume
    shape = volume.array.shape
    actual = 2 if volume.array.ndim == 2 or shape[2] == 1 else 3
    if actual != dims:
        hint = (
            "give a single image or a single-slice series"
            if dims == 2
            else "give a series folder or a volume file; a single 2D DICOM image cannot be a 3D input"
        )
        raise ImageReadError(
            IssueCode.IMAGE_WRONG_DIMENSIONS,
            f"the cohort needs {dims}D images but '{label}' is {actual}D with shape {list(shape)}; {hint}",
            label,
        )
    if dims == 2 and volume.array.ndim == 3:
        volume.array = np.ascontiguousarray(volume.array[:, :, 0])
        _describe_grid(volume)
    return volume


def _describe_grid(volume: ImageVolume) -> None:
    volume.meta["shape"] = [int(s) for s in volume.array.shape]
    volume.meta["spacing"] = [round(s, 6) for s in volume.spacing]
    volume.meta["axcodes"] = "".join(nib.orientations.aff2axcodes(volume.affine))


def _guard_size(shape: tuple[int, ...], label: str) -> None:
    voxels = math.prod(int(s) for s in shape)
    if voxels > MAX_VOXELS:
        raise ImageReadError(
            IssueCode.IMAGE_UNREADABLE,
            f"'{label}' has {voxels:,} voxels (shape {list(shape)}), more than the limit of {MAX_VOXELS:,}; "
            "crop or downsample it, or raise mmdx.data.imaging.MAX_VOXELS",
            label,
        )


def _warning(code: IssueCode, message: str, label: str) -> Issue:
    return Issue(code=code, message=message, file=label, severity=Severity.WARNING)


# --------------------------------------------------------------------------------------------------------
# DICOM parsing
# --------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _captured_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Collect the warnings pydicom and the decoders emit, so they can be judged instead of printed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def _has_dicm_marker(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(132)
    return head[128:132] == b"DICM"


def _parse_dicom(path: Path, label: str) -> Dataset | None:
    """Parse a file (large values deferred); ``None`` when it is not DICOM at all."""
    marked = _has_dicm_marker(path)
    with _captured_warnings() as caught:
        try:
            dataset = pydicom.dcmread(path, force=not marked, defer_size=_DEFER_SIZE)
        except OSError as exc:
            if exc.errno is not None:
                raise
            if not marked:
                return None
            raise ImageReadError(
                IssueCode.DICOM_INVALID, f"'{label}' is not a valid DICOM file: {exc}", label
            ) from None
        except Exception as exc:
            if not marked:
                return None
            raise ImageReadError(
                IssueCode.DICOM_INVALID,
                f"'{label}' is not a valid DICOM file: {type(exc).__name__}: {exc}",
                label,
            ) from None
    if not marked and not any(k in dataset for k in (*_PIXEL_KEYWORDS, "SOPClassUID")):
        return None
    check_deferred_extents(dataset, label)
    if any("End of file reached" in str(w.message) for w in caught) or _last_element_is_short(dataset):
        raise ImageReadError(
            IssueCode.DICOM_TRUNCATED,
            f"'{label}' ends in the middle of a data element: the file was cut short; "
            "copy or export it again",
            label,
        )
    for w in caught:  # hand them on to the caller's collection
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return dataset


def _is_directory_index(dataset: Dataset) -> bool:
    """A DICOMDIR (media index), whatever its file name."""
    file_meta = getattr(dataset, "file_meta", None)
    media_class = str(file_meta.get("MediaStorageSOPClassUID", "")) if file_meta is not None else ""
    return media_class == MediaStorageDirectoryStorage or "DirectoryRecordSequence" in dataset


def _last_element_is_short(dataset: Dataset) -> bool:
    """pydicom stops quietly at the end of the file; a value shorter than its declared length shows it."""
    tags = list(dataset.keys())
    if not tags:
        return False
    element = dataset.get_item(tags[-1])
    return (
        isinstance(element, RawDataElement)
        and element.value is not None
        and element.length != _UNDEFINED_LENGTH
        and len(element.value) < element.length
    )


def _get(dataset: Dataset, keyword: str, label: str, default: object = None) -> object:
    """A data element's value; a value pydicom cannot convert is DICOM_INVALID, not a crash."""
    try:
        value = dataset.get(keyword, default)
    except Exception as exc:
        raise ImageReadError(IssueCode.DICOM_INVALID, f"{keyword} cannot be parsed: {exc}", label) from None
    return default if value is None or value == "" else value


def _numbers(value: object, count: int, keyword: str, label: str) -> np.ndarray | None:
    """``count`` finite floats from a (multi-)valued element, or ``None`` when the element is absent."""
    if value is None or value == "":
        return None
    items = list(value) if isinstance(value, list | tuple | pydicom.multival.MultiValue) else [value]
    try:
        numbers = np.asarray([float(item) for item in items], dtype=np.float64)
    except (TypeError, ValueError):
        numbers = np.asarray([], dtype=np.float64)
    if numbers.shape != (count,) or not np.all(np.isfinite(numbers)):
        raise ImageReadError(
            IssueCode.DICOM_INVALID, f"{keyword} is {value!r}; expected {count} finite number(s)", label
        )
    return numbers


def _integer(dataset: Dataset, keyword: str, label: str, default: int | None = None) -> int | None:
    value = _get(dataset, keyword, label)
    if value is None:
        return default
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ImageReadError(
            IssueCode.DICOM_INVALID, f"{keyword} is {value!r}; expected an integer", label
        ) from None
    return number


def _pixel_keyword(dataset: Dataset) -> str | None:
    return next((k for k in _PIXEL_KEYWORDS if k in dataset), None)


def _no_pixel_data_error(dataset: Dataset, label: str) -> ImageReadError:
    file_meta = getattr(dataset, "file_meta", None)
    media = file_meta.get("MediaStorageSOPClassUID", "") if file_meta is not None else ""
    sop = str(_get(dataset, "SOPClassUID", label, "") or media or "")
    kind = UID(sop).name if sop else "unknown SOP class"
    if "Rows" in dataset and "Columns" in dataset:
        # The image pixel description precedes Pixel Data in the file, so having one without the other
        # almost always means the file ends early.
        return ImageReadError(
            IssueCode.DICOM_TRUNCATED,
            f"'{label}' ({kind}) describes a {dataset.get('Rows')}x{dataset.get('Columns')} image but has no "
            "Pixel Data: the file was cut short or its pixels were stripped; export it again",
            label,
        )
    return ImageReadError(
        IssueCode.DICOM_NO_PIXEL_DATA,
        f"'{label}' ({kind}) holds no pixel data; give an image file or series instead",
        label,
    )


def _check_pixel_module(dataset: Dataset, label: str) -> str:
    """Refuse what mmdx cannot use before anything is decoded; returns the pixel data keyword."""
    keyword = _pixel_keyword(dataset)
    if keyword is None:
        raise _no_pixel_data_error(dataset, label)
    if str(_get(dataset, "SOPClassUID", label, "")) == SegmentationStorage:
        raise ImageReadError(
            IssueCode.DICOM_UNSUPPORTED_IMAGE,
            f"'{label}' is a DICOM segmentation (labels, not an image); give the image series it annotates",
            label,
        )
    required = ["Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "PhotometricInterpretation"]
    if keyword == "PixelData":
        required.append("PixelRepresentation")
    missing = [k for k in required if _get(dataset, k, label) is None]
    if missing:
        raise ImageReadError(
            IssueCode.DICOM_INVALID,
            f"'{label}' has pixel data but lacks {', '.join(missing)}, needed to decode it",
            label,
        )
    samples = _integer(dataset, "SamplesPerPixel", label)
    photometric = str(_get(dataset, "PhotometricInterpretation", label)).strip().upper()
    if samples != 1 or photometric not in _GREYSCALE:
        raise ImageReadError(
            IssueCode.DICOM_UNSUPPORTED_IMAGE,
            f"'{label}' is a colour image ({photometric}, {samples} sample(s) per pixel); "
            "mmdx reads greyscale (MONOCHROME1/2) images only",
            label,
        )
    rows, columns = _integer(dataset, "Rows", label), _integer(dataset, "Columns", label)
    if not rows or not columns or rows < 1 or columns < 1:
        raise ImageReadError(
            IssueCode.DICOM_INVALID, f"'{label}' has {rows} rows and {columns} columns", label
        )
    return keyword


def _transfer_syntax(dataset: Dataset, keyword: str, label: str) -> UID:
    """The transfer syntax; inferred from the parsed encoding for a file without file meta information."""
    file_meta = getattr(dataset, "file_meta", None)
    declared = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if declared:
        return UID(str(declared))
    element = dataset.get_item(keyword)
    if getattr(element, "length", None) == _UNDEFINED_LENGTH or getattr(
        element, "is_undefined_length", False
    ):
        raise ImageReadError(
            IssueCode.DICOM_INVALID,
            f"'{label}' holds compressed pixel data but declares no Transfer Syntax UID, "
            "so its codec is unknown",
            label,
        )
    implicit, little = dataset.original_encoding
    inferred = (
        ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    )
    if file_meta is None:
        dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = inferred
    return inferred


def _check_decoder(syntax: UID, label: str) -> None:
    try:
        known = syntax.is_transfer_syntax
    except ValueError:
        known = False
    if not known:
        raise ImageReadError(
            IssueCode.TRANSFER_SYNTAX_UNSUPPORTED,
            f"'{label}' uses the unknown or private transfer syntax {syntax}; convert it to a standard one "
            "(e.g. with dcmconv or gdcmconv)",
            label,
        )
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise ImageReadError(
            IssueCode.TRANSFER_SYNTAX_UNSUPPORTED,
            f"'{label}' uses the transfer syntax {syntax.name} ({syntax}), for which no pixel decoder "
            "exists; convert it to an uncompressed or JPEG/JPEG 2000/RLE syntax",
            label,
        ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoding plugin"
        raise ImageReadError(
            IssueCode.TRANSFER_SYNTAX_UNSUPPORTED,
            f"'{label}' uses the transfer syntax {syntax.name} ({syntax}) and no installed decoder "
            f"handles it (missing: {missing})",
            label,
        )


def _decode_stored(dataset: Dataset, keyword: str, label: str) -> np.ndarray:
    """Stored pixel values as ``[frames, rows, columns]``, before rescaling."""
    syntax = _transfer_syntax(dataset, keyword, label)
    _check_decoder(syntax, label)
    if not syntax.is_encapsulated:
        expected = get_expected_length(dataset, "bytes")
        actual = len(dataset[keyword].value or b"")
        if actual < expected:
            raise ImageReadError(
                IssueCode.DICOM_TRUNCATED,
                f"'{label}' holds {actual} bytes of pixel data where its Rows, Columns, frames and Bits "
                f"Allocated need {expected}: the file was cut short; copy or export it again",
                label,
            )
    with _captured_warnings(), _decoder_log() as logged:
        try:
            stored = pydicom.pixels.pixel_array(dataset)
        except MemoryError:
            raise
        except Exception as exc:
            raise _decode_error(exc, syntax, label, logged) from None
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    return stored.reshape(-1, rows, columns)


@contextlib.contextmanager
def _decoder_log() -> Iterator[list[str]]:
    """What pydicom's decoders log while decoding (each failing plugin, with a traceback) is kept, one line
    per record, for the issue's message instead of being printed; with debug logging (``mmdx -v``) it is
    printed too."""
    logger = logging.getLogger("pydicom")
    kept: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(_one_line(record.getMessage(), 300))

    handler = _Keep(level=logging.DEBUG)
    propagate = logger.propagate
    logger.addHandler(handler)
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logger.propagate = False
    try:
        yield kept
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


#: how a decoding plugin says that it does not handle this variant of a transfer syntax at all
_NOT_SUPPORTED = ("does not support", "not supported", "unsupported", "is not available", "no module named")


def _plugin_failures(text: str) -> dict[str, str]:
    """``plugin -> its error`` from pydicom's "exceptions were raised by all available plugins" message."""
    failures = {}
    for line in text.splitlines()[1:]:
        name, sep, message = line.strip().partition(": ")
        if sep and name and " " not in name:
            failures[name] = message
    return failures


def _decode_error(exc: Exception, syntax: UID, label: str, logged: list[str] | None = None) -> ImageReadError:
    """Classify a decoder failure: truncated data, a syntax (variant) no installed plugin supports, or pixel
    data of a supported syntax that the decoder(s) could not decode (``IMAGE_UNREADABLE``, naming them)."""
    text = str(exc)
    lowered = text.lower()
    if "less than expected" in lowered or "end of file" in lowered:
        return ImageReadError(
            IssueCode.DICOM_TRUNCATED, f"'{label}': pixel data is incomplete: {_one_line(text)}", label
        )
    failures = _plugin_failures(text)
    if not failures and syntax.is_encapsulated:
        failures = {type(exc).__name__: _one_line(text)}
    tried = {n: m for n, m in failures.items() if not any(k in m.lower() for k in _NOT_SUPPORTED)}
    if syntax.is_encapsulated and failures and not tried:
        return ImageReadError(
            IssueCode.TRANSFER_SYNTAX_UNSUPPORTED,
            f"'{label}': no installed decoder supports this {syntax.name} pixel data ("
            + "; ".join(f"{n}: {_one_line(m, 160)}" for n, m in failures.items())
            + "); convert it to an uncompressed transfer syntax",
            label,
        )
    if syntax.is_encapsulated:
        named = ", ".join(tried)
        others = [n for n in failures if n not in tried]
        return ImageReadError(
            IssueCode.IMAGE_UNREADABLE,
            f"'{label}': the {syntax.name} pixel data could not be decoded by {named} (corrupt or a variant "
            f"the decoder mishandles): "
            + "; ".join(f"{n}: {_one_line(m, 200)}" for n, m in tried.items())
            + (f" ({', '.join(others)}: not supported)" if others else "")
            + (f"; decoder log: {len(logged)} message(s), shown with mmdx -v" if logged else ""),
            label,
        )
    return ImageReadError(
        IssueCode.DICOM_INVALID, f"'{label}': pixel data cannot be read: {_one_line(text)}", label
    )


def _one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------------
# DICOM geometry
# --------------------------------------------------------------------------------------------------------


@dataclass
class _Plane:
    """One 2D image (a slice file or a frame) with its geometry in DICOM LPS millimetres."""

    file_label: str
    dataset: Dataset
    frame: int
    n_frames: int
    rows: int
    columns: int
    orientation: np.ndarray | None  # (6,) row direction, column direction
    position: np.ndarray | None  # (3,) centre of the first pixel transmitted
    pixel_spacing: np.ndarray | None  # (2,) distance between rows, between columns
    thickness: float | None
    slope: float
    intercept: float

    @property
    def label(self) -> str:
        return self.file_label if self.n_frames == 1 else f"{self.file_label} frame {self.frame + 1}"


def _scalar(value: object, keyword: str, label: str, default: float) -> float:
    numbers = _numbers(value, 1, keyword, label)
    return default if numbers is None else float(numbers[0])


def _frame_value(dataset: Dataset, frame: int, sequence: str, keyword: str, label: str) -> object:
    """A functional-group attribute of one frame: per-frame group first, then the shared group."""
    groups = []
    per_frame = _get(dataset, "PerFrameFunctionalGroupsSequence", label)
    if per_frame is not None and frame < len(per_frame):
        groups.append(per_frame[frame])
    shared = _get(dataset, "SharedFunctionalGroupsSequence", label)
    if shared:
        groups.append(shared[0])
    for group in groups:
        items = _get(group, sequence, label)
        if items:
            value = _get(items[0], keyword, label)
            if value is not None:
                return value
    return None


def _planes(dataset: Dataset, label: str) -> list[_Plane]:
    """The 2D images of one DICOM dataset with their geometry and rescaling."""
    rows, columns = int(_integer(dataset, "Rows", label)), int(_integer(dataset, "Columns", label))
    frames = _integer(dataset, "NumberOfFrames", label, default=1) or 1
    if frames < 1:
        raise ImageReadError(IssueCode.DICOM_INVALID, f"'{label}' has NumberOfFrames = {frames}", label)
    slope = _scalar(_get(dataset, "RescaleSlope", label), "RescaleSlope", label, 1.0)
    intercept = _scalar(_get(dataset, "RescaleIntercept", label), "RescaleIntercept", label, 0.0)
    orientation = _numbers(
        _get(dataset, "ImageOrientationPatient", label), 6, "ImageOrientationPatient", label
    )
    position = _numbers(_get(dataset, "ImagePositionPatient", label), 3, "ImagePositionPatient", label)
    spacing = _usable_spacing(_numbers(_get(dataset, "PixelSpacing", label), 2, "PixelSpacing", label))
    thickness = _numbers(_get(dataset, "SliceThickness", label), 1, "SliceThickness", label)
    top = _Plane(
        label, dataset, 0, frames, rows, columns, orientation, position, spacing,
        float(thickness[0]) if thickness is not None else None, slope, intercept,
    )  # fmt: skip
    enhanced = "PerFrameFunctionalGroupsSequence" in dataset or "SharedFunctionalGroupsSequence" in dataset
    if enhanced:
        return [_enhanced_plane(top, frame, label) for frame in range(frames)]
    if frames == 1:
        return [top]
    offsets = _numbers(_get(dataset, "GridFrameOffsetVector", label), frames, "GridFrameOffsetVector", label)
    if offsets is not None and orientation is not None and position is not None:
        normal = np.cross(orientation[:3], orientation[3:])
        # The offsets are relative to the first frame or absolute along the normal (both occur); their
        # differences are the same either way.
        return [
            replace(top, frame=i, position=position + (offsets[i] - offsets[0]) * normal)
            for i in range(frames)
        ]
    raise ImageReadError(
        IssueCode.DICOM_UNSUPPORTED_IMAGE,
        f"'{label}' is a multi-frame image ({frames} frames) without per-frame positions; its frames "
        "may be time points or views rather than slices, so mmdx does not stack them. Export the "
        "frames you need as a series, or as an enhanced multi-frame image with plane positions",
        label,
    )


def _enhanced_plane(top: _Plane, frame: int, label: str) -> _Plane:
    ds = top.dataset
    frame_label = replace(top, frame=frame).label

    def value(sequence: str, keyword: str, count: int) -> np.ndarray | None:
        return _numbers(_frame_value(ds, frame, sequence, keyword, label), count, keyword, frame_label)

    position = value("PlanePositionSequence", "ImagePositionPatient", 3)
    orientation = value("PlaneOrientationSequence", "ImageOrientationPatient", 6)
    spacing = _usable_spacing(value("PixelMeasuresSequence", "PixelSpacing", 2))
    thickness = value("PixelMeasuresSequence", "SliceThickness", 1)
    slope = value("PixelValueTransformationSequence", "RescaleSlope", 1)
    intercept = value("PixelValueTransformationSequence", "RescaleIntercept", 1)
    return replace(
        top,
        frame=frame,
        orientation=orientation if orientation is not None else top.orientation,
        position=position if position is not None else top.position,
        pixel_spacing=spacing if spacing is not None else top.pixel_spacing,
        thickness=float(thickness[0]) if thickness is not None else top.thickness,
        slope=float(slope[0]) if slope is not None else top.slope,
        intercept=float(intercept[0]) if intercept is not None else top.intercept,
    )


def _usable_spacing(spacing: np.ndarray | None) -> np.ndarray | None:
    """Pixel spacing, with a zero or negative value (written by some CR/DX devices) treated as absent."""
    return spacing if spacing is not None and np.all(spacing > 0) else None


def _axes(orientation: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit row direction, column direction and slice normal from ImageOrientationPatient."""
    row, col = orientation[:3], orientation[3:]
    row_norm, col_norm = np.linalg.norm(row), np.linalg.norm(col)
    if abs(row_norm - 1) > 0.01 or abs(col_norm - 1) > 0.01 or abs(float(row @ col)) > 0.01:
        raise ImageReadError(
            IssueCode.DICOM_INVALID,
            f"ImageOrientationPatient {orientation.tolist()} of '{label}' is not two orthogonal unit vectors",
            label,
        )
    row = row / row_norm
    col = col - (col @ row) * row  # remove the rounding error of the stored cosines
    col = col / np.linalg.norm(col)
    return row, col, np.cross(row, col)


def _in_plane_columns(
    orientation: np.ndarray, spacing: np.ndarray, label: str
) -> tuple[np.ndarray, np.ndarray]:
    if not np.all(spacing > 0):
        raise ImageReadError(
            IssueCode.DICOM_INVALID, f"PixelSpacing {spacing.tolist()} of '{label}' must be positive", label
        )
    row, col, _ = _axes(orientation, label)
    # PixelSpacing is (distance between rows, distance between columns): stepping the column index i
    # moves along the row direction by the column spacing.
    return row * spacing[1], col * spacing[0]


def _single_plane_affine(plane: _Plane, label: str, found: list[Issue]) -> np.ndarray:
    """LPS affine of one 2D image; missing geometry falls back to identity orientation with a warning."""
    missing = [
        name
        for name, value in (
            ("ImageOrientationPatient", plane.orientation),
            ("ImagePositionPatient", plane.position),
        )
        if value is None
    ]
    spacing = plane.pixel_spacing
    spacing_source = "PixelSpacing"
    if spacing is None:
        imager = _usable_spacing(
            _numbers(_get(plane.dataset, "ImagerPixelSpacing", label), 2, "ImagerPixelSpacing", label)
        )
        spacing, spacing_source = (
            (imager, "ImagerPixelSpacing") if imager is not None else (np.ones(2), "1 mm")
        )
    if missing or spacing_source != "PixelSpacing":
        lacks = missing + ([] if spacing_source == "PixelSpacing" else ["a usable PixelSpacing"])
        found.append(
            _warning(
                IssueCode.DICOM_GEOMETRY_MISSING,
                f"'{plane.label}' lacks {', '.join(lacks)}: assuming "
                + ("identity orientation at the origin and " if missing else "")
                + f"a pixel size from {spacing_source}; world coordinates are not patient coordinates",
                label,
            )
        )
    if missing:
        orientation, position = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]), np.zeros(3)
    else:
        orientation, position = plane.orientation, plane.position
    column_i, column_j = _in_plane_columns(orientation, spacing, label)
    _, _, normal = _axes(orientation, label)
    thickness = plane.thickness if plane.thickness and plane.thickness > 0 else 1.0
    return _affine(column_i, column_j, normal * thickness, position)


def _affine(
    column_i: np.ndarray, column_j: np.ndarray, column_k: np.ndarray, origin: np.ndarray
) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2], affine[:3, 3] = column_i, column_j, column_k, origin
    return affine


@dataclass
class _Stack:
    order: list[int]  # plane indices, sorted along the slice normal
    affine: np.ndarray  # LPS
    gap: float | None  # median distance between slices along the normal (mm)


def _stack(planes: list[_Plane], label: str, found: list[Issue], *, frames: bool) -> _Stack:
    """Sort planes along their normal, check that they form one regular grid, and build its affine."""
    sizes = sorted({(p.rows, p.columns) for p in planes})
    if len(sizes) > 1:
        raise ImageReadError(
            IssueCode.DICOM_INCONSISTENT_GEOMETRY,
            f"the slices of '{label}' differ in size (rows x columns: {sizes}); a series must share one grid",
            label,
        )
    if len(planes) == 1:
        return _Stack([0], _single_plane_affine(planes[0], label, found), None)
    _check_shared_geometry(planes, label)
    first = planes[0]
    assert first.orientation is not None and first.pixel_spacing is not None
    _, _, normal = _axes(first.orientation, label)
    positions = np.stack([p.position for p in planes])  # type: ignore[arg-type]
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    gaps = np.diff(along)
    what = "frames" if frames else "slices"

    close = np.flatnonzero(gaps <= SLICE_GAP_ABSOLUTE_TOLERANCE_MM)
    if close.size:
        a, b = planes[order[close[0]]], planes[order[close[0] + 1]]
        if frames:
            raise ImageReadError(
                IssueCode.DICOM_UNSUPPORTED_IMAGE,
                f"'{label}' has {len(planes)} frames at only {len(planes) - close.size} distinct "
                "positions: it holds more than one stack (e.g. time points or echoes); export a single stack",
                label,
            )
        same = str(a.dataset.get("SOPInstanceUID", "")) == str(b.dataset.get("SOPInstanceUID", "")) != ""
        raise ImageReadError(
            IssueCode.DUPLICATE_SLICE_POSITION,
            f"'{a.label}' and '{b.label}' lie at the same position ({along[close[0]]:.3f} mm along the slice "
            "normal)"
            + ("; they are copies of the same instance, remove one" if same else "")
            + f"; {len(close)} duplicate position(s) in all",
            label,
        )
    median = float(np.median(gaps))
    tolerance = max(SLICE_GAP_RELATIVE_TOLERANCE * median, SLICE_GAP_ABSOLUTE_TOLERANCE_MM)
    irregular = np.flatnonzero(np.abs(gaps - median) > tolerance)
    if irregular.size:
        k = int(irregular[0])
        a, b = planes[order[k]], planes[order[k + 1]]
        missing = max(int(round(gaps[k] / median)) - 1, 0)
        guess = f" (about {missing} slice(s) missing there)" if missing else ""
        raise ImageReadError(
            IssueCode.SLICE_SPACING_INCONSISTENT,
            f"the {what} of '{label}' are not evenly spaced: {gaps[k]:.3f} mm between '{a.label}' and "
            f"'{b.label}' where the median gap is {median:.3f} mm{guess}; {irregular.size} irregular "
            "gap(s) in all. Export the complete series, or split series acquired with different spacings",
            label,
        )

    step = (positions[-1] - positions[0]) / (len(planes) - 1)
    residual = positions - (positions[0] + np.arange(len(planes))[:, None] * step)
    along_residual = residual @ normal
    in_plane = np.linalg.norm(residual - along_residual[:, None] * normal, axis=1)
    if in_plane.max() > tolerance:
        raise ImageReadError(
            IssueCode.DICOM_INCONSISTENT_GEOMETRY,
            f"the {what} of '{label}' do not lie on a straight line: a slice is displaced by "
            f"{in_plane.max():.3f} mm within its plane",
            label,
        )
    if np.abs(along_residual).max() > SLICE_GAP_ABSOLUTE_TOLERANCE_MM:
        found.append(
            _warning(
                IssueCode.SLICE_SPACING_INCONSISTENT,
                f"the {what} of '{label}' deviate by up to {np.abs(along_residual).max():.3f} mm from "
                f"an even spacing of {median:.3f} mm (within the tolerance of {tolerance:.3f} mm); "
                "the volume assumes even spacing",
                label,
            )
        )
    shear = np.linalg.norm(step - (step @ normal) * normal)
    if shear > 1e-3 * np.linalg.norm(step):
        tilt = math.degrees(math.atan2(shear, float(step @ normal)))
        found.append(
            _warning(
                IssueCode.DICOM_INCONSISTENT_GEOMETRY,
                f"the {what} of '{label}' are offset within their planes from slice to slice (gantry tilt of "
                f"{tilt:.2f} degrees); the affine is sheared to keep every voxel at its true position",
                label,
            )
        )
    column_i, column_j = _in_plane_columns(first.orientation, first.pixel_spacing, label)
    return _Stack([int(i) for i in order], _affine(column_i, column_j, step, positions[0]), median)


def _check_shared_geometry(planes: list[_Plane], label: str) -> None:
    lacking = [p.label for p in planes if p.orientation is None or p.position is None]
    if lacking:
        raise ImageReadError(
            IssueCode.DICOM_GEOMETRY_MISSING,
            f"{len(lacking)} of {len(planes)} slices of '{label}' (e.g. '{lacking[0]}') lack "
            "ImagePositionPatient or ImageOrientationPatient, so the slices cannot be ordered and stacked",
            label,
        )
    unspaced = [p.label for p in planes if p.pixel_spacing is None]
    if unspaced:
        raise ImageReadError(
            IssueCode.DICOM_GEOMETRY_MISSING,
            f"{len(unspaced)} of {len(planes)} slices of '{label}' (e.g. '{unspaced[0]}') lack a usable "
            "PixelSpacing",
            label,
        )
    first = planes[0]
    assert first.orientation is not None and first.pixel_spacing is not None
    for plane in planes[1:]:
        assert plane.orientation is not None and plane.pixel_spacing is not None
        if np.abs(plane.orientation - first.orientation).max() > ORIENTATION_TOLERANCE:
            raise ImageReadError(
                IssueCode.DICOM_INCONSISTENT_GEOMETRY,
                f"'{plane.label}' is oriented {plane.orientation.round(4).tolist()} but '{first.label}' "
                f"{first.orientation.round(4).tolist()}; a series must share one orientation (is a localizer "
                "mixed in?)",
                label,
            )
        if np.abs(plane.pixel_spacing / first.pixel_spacing - 1).max() > PIXEL_SPACING_RELATIVE_TOLERANCE:
            raise ImageReadError(
                IssueCode.DICOM_INCONSISTENT_GEOMETRY,
                f"'{plane.label}' has PixelSpacing {plane.pixel_spacing.tolist()} but '{first.label}' "
                f"{first.pixel_spacing.tolist()}; a series must share one pixel spacing",
                label,
            )


# --------------------------------------------------------------------------------------------------------
# DICOM volumes
# --------------------------------------------------------------------------------------------------------


def _physical(stored: np.ndarray, plane: _Plane) -> np.ndarray:
    """One frame ``[rows, columns]`` in physical units, float32."""
    dataset = plane.dataset
    if "ModalityLUTSequence" in dataset:
        values = apply_modality_lut(stored, dataset).astype(np.float64)
    else:
        values = stored.astype(np.float64)
        if plane.slope != 1.0 or plane.intercept != 0.0:
            values = values * plane.slope + plane.intercept
    scaling = dataset.get("DoseGridScaling") if str(dataset.get("Modality", "")) == "RTDOSE" else None
    if scaling not in (None, ""):
        values = values * float(scaling)
    return values.astype(np.float32)


def _assemble(planes: list[_Plane], stack: _Stack, label: str, dims: int | None = None) -> np.ndarray:
    """Decode and rescale every plane into ``[I, J, K]`` = ``[columns, rows, slices]``, float32."""
    rows, columns = planes[0].rows, planes[0].columns
    _guard_size((columns, rows, len(planes)), label)
    if dims is not None:  # an undecodable transfer syntax is reported first, as when decoding came first
        first = planes[stack.order[0]]
        _check_decoder(
            _transfer_syntax(first.dataset, _check_pixel_module(first.dataset, label), label), label
        )
        check_declared_shape((columns, rows, len(planes)), dims, label, MAX_VOXELS)
    out = np.empty((columns, rows, len(planes)), dtype=np.float32)
    current: Dataset | None = None
    stored = np.empty(0)
    for k, index in enumerate(stack.order):
        plane = planes[index]
        if plane.dataset is not current:
            if current is not None:
                _release_pixels(current)
            current = plane.dataset
            stored = _decode_stored(current, _check_pixel_module(current, plane.file_label), plane.file_label)
        out[:, :, k] = _physical(stored[plane.frame], plane).T
    bad = int(np.count_nonzero(~np.isfinite(out)))
    if bad:
        raise ImageReadError(
            IssueCode.DICOM_INVALID,
            f"'{label}' contains {bad} non-finite (NaN or infinite) pixel values",
            label,
        )
    return out


def _release_pixels(dataset: Dataset) -> None:
    keyword = _pixel_keyword(dataset)
    if keyword is not None:
        del dataset[keyword]


def _dicom_meta(planes: list[_Plane], datasets: list[Dataset], stack: _Stack) -> dict:
    first = planes[stack.order[0]].dataset
    syntax = first.file_meta.get("TransferSyntaxUID", "") if hasattr(first, "file_meta") else ""
    modality = str(first.get("Modality", "") or "")
    slopes = {p.slope for p in planes}
    intercepts = {p.intercept for p in planes}
    rescale_type = str(first.get("RescaleType", "") or "")
    if "ModalityLUTSequence" in first:
        rescale_type = str(first.ModalityLUTSequence[0].get("ModalityLUTType", "") or rescale_type)
    units = rescale_type or ("HU" if modality == "CT" else "")
    if modality == "RTDOSE":
        units = str(first.get("DoseUnits", "") or "")
    sop = str(first.get("SOPClassUID", "") or "")
    return {
        "series_instance_uid": str(first.get("SeriesInstanceUID", "") or ""),
        "sop_class": UID(sop).name if sop else "",
        "modality": modality,
        "n_files": len(datasets),
        "n_slices": len(planes),
        "rows": planes[0].rows,
        "columns": planes[0].columns,
        "transfer_syntax": str(syntax),
        "transfer_syntax_name": UID(str(syntax)).name if syntax else "",
        "photometric_interpretation": str(first.get("PhotometricInterpretation", "")),
        "rescale_slope": slopes.pop() if len(slopes) == 1 else "per-slice",
        "rescale_intercept": intercepts.pop() if len(intercepts) == 1 else "per-slice",
        "modality_lut": "ModalityLUTSequence" in first,
        "value_units": units,
        "slice_gap_mm": None if stack.gap is None else round(stack.gap, 6),
    }


def _volume_from_file(dataset: Dataset, label: str, dims: int | None = None) -> ImageVolume:
    """A single DICOM file: ``[I, J]`` for one frame, ``[I, J, K]`` for a stack of frames."""
    _check_pixel_module(dataset, label)
    planes = _planes(dataset, label)
    found: list[Issue] = []
    stack = _stack(planes, label, found, frames=True)
    array = _assemble(planes, stack, label, dims)
    if len(planes) == 1:
        array = np.ascontiguousarray(array[:, :, 0])
    volume = ImageVolume(
        array=array,
        affine=_LPS_TO_RAS @ stack.affine,
        source=label,
        format=ImageFormat.DICOM_FILE,
        warnings=found,
        meta=_dicom_meta(planes, [dataset], stack),
    )
    _describe_grid(volume)
    return volume


def _series_files(folder: Path, label: str, root: str | Path | None, found: list[Issue]) -> list[Path]:
    files, subfolders = [], []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name.upper() == "DICOMDIR":
            continue
        if entry.is_dir():
            subfolders.append(entry.name)
        elif entry.is_file():
            if root is not None:
                _check_inside(entry, Path(root), f"{label}/{entry.name}")
            files.append(entry)
    if subfolders:
        found.append(
            _warning(
                IssueCode.IMAGE_UNREADABLE,
                f"'{label}' has {len(subfolders)} subfolder(s) ({_examples(subfolders)}) that were not "
                "read; a series is read from the files directly inside its folder",
                label,
            )
        )
    if not files:
        where = (
            f"; it has subfolders ({_examples(subfolders)}): point to one series folder" if subfolders else ""
        )
        raise ImageReadError(IssueCode.IMAGE_UNREADABLE, f"the folder '{label}' holds no files{where}", label)
    return files


def _examples(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _read_series(folder: Path, label: str, root: str | Path | None, dims: int | None = None) -> ImageVolume:
    found: list[Issue] = []
    files = _series_files(folder, label, root, found)
    images: dict[str, list[tuple[str, Dataset]]] = {}
    not_dicom: list[str] = []
    indexes: list[str] = []
    without_pixels: list[tuple[str, Dataset]] = []
    for path in files:
        file_label = f"{label}/{path.name}"
        dataset = _parse_dicom(path, file_label)
        if dataset is None:
            not_dicom.append(path.name)
        elif _is_directory_index(dataset):
            indexes.append(path.name)
        elif _pixel_keyword(dataset) is None:
            without_pixels.append((file_label, dataset))
        else:
            uid = str(_get(dataset, "SeriesInstanceUID", file_label, "") or "(no SeriesInstanceUID)")
            images.setdefault(uid, []).append((file_label, dataset))

    if not images:
        if without_pixels:
            raise _no_pixel_data_error(without_pixels[0][1], without_pixels[0][0])
        if indexes:
            raise ImageReadError(
                IssueCode.DICOM_NO_PIXEL_DATA,
                f"'{label}' holds DICOMDIR index file(s) ({_examples(indexes)}) but no images; point to the "
                "folder of one series instead",
                label,
            )
        raise ImageReadError(
            IssueCode.DICOM_INVALID,
            f"none of the {len(files)} file(s) in '{label}' is DICOM ({_examples(not_dicom)})",
            label,
        )
    if len(images) > 1:
        counts = sorted(((len(v), uid) for uid, v in images.items()), reverse=True)
        listing = "; ".join(f"{uid}: {n} file(s)" for n, uid in counts)
        raise ImageReadError(
            IssueCode.DICOM_MIXED_SERIES,
            f"'{label}' holds {len(images)} image series ({listing}); put each series in its own folder",
            label,
        )
    if not_dicom:
        found.append(
            _warning(
                IssueCode.DICOM_INVALID,
                f"ignored {len(not_dicom)} file(s) in '{label}' that are not DICOM: {_examples(not_dicom)}",
                label,
            )
        )
    for file_label, dataset in without_pixels:
        # An image-like file without pixels is a damaged slice, not a harmless companion object.
        if "Rows" in dataset and "Columns" in dataset:
            raise _no_pixel_data_error(dataset, file_label)
    if without_pixels:
        names = [name.rsplit("/", 1)[-1] for name, _ in without_pixels]
        found.append(
            _warning(
                IssueCode.DICOM_NO_PIXEL_DATA,
                f"ignored {len(names)} DICOM file(s) without pixel data in '{label}': {_examples(names)}",
                label,
            )
        )

    members = next(iter(images.values()))
    planes: list[_Plane] = []
    for file_label, dataset in members:
        _check_pixel_module(dataset, file_label)
        file_planes = _planes(dataset, file_label)
        if len(file_planes) > 1 and len(members) > 1:
            raise ImageReadError(
                IssueCode.DICOM_UNSUPPORTED_IMAGE,
                f"'{file_label}' is a multi-frame file inside a series of {len(members)} files; give a "
                "folder of single-frame slices, or the multi-frame file on its own",
                label,
            )
        planes.extend(file_planes)
    stack = _stack(planes, label, found, frames=len(members) == 1 and len(planes) > 1)
    array = _assemble(planes, stack, label, dims)
    volume = ImageVolume(
        array=array,
        affine=_LPS_TO_RAS @ stack.affine,
        source=label,
        format=ImageFormat.DICOM_SERIES,
        warnings=found,
        meta=_dicom_meta(planes, [d for _, d in members], stack),
    )
    volume.meta["ignored_files"] = sorted(not_dicom + [name.rsplit("/", 1)[-1] for name, _ in without_pixels])
    _describe_grid(volume)
    return volume


# --------------------------------------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------------------------------------


def _load_nifti(path: Path) -> nib.spatialimages.SpatialImage:
    """``nib.load``, except that a file named ``.nii.gz`` whose bytes are not gzip-compressed (some tools
    write them so) is read as the plain ``.nii`` it is; its size was checked against its header before."""
    if path.name.lower().endswith(".gz") and not is_gzip(path):
        data = path.read_bytes()
        for kind in (nib.Nifti1Image, nib.Nifti2Image):
            with contextlib.suppress(Exception):
                return kind.from_bytes(data)
    return nib.load(str(path))


def _read_nifti(path: Path, label: str, dims: int | None = None) -> ImageVolume:
    check_nifti_header(path, label, dims, MAX_VOXELS)
    try:
        image = _load_nifti(path)
    except MemoryError:
        raise
    except Exception as exc:
        raise ImageReadError(
            IssueCode.NIFTI_INVALID, f"'{label}' cannot be read as NIfTI: {type(exc).__name__}: {exc}", label
        ) from None
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise ImageReadError(
            IssueCode.NIFTI_INVALID,
            f"'{label}' is a {type(image).__name__}, not a single-file NIfTI image",
            label,
        )
    header = image.header
    shape = tuple(int(s) for s in image.shape)
    squeezed = shape
    while len(squeezed) > 3 and squeezed[-1] == 1:
        squeezed = squeezed[:-1]
    if not 2 <= len(squeezed) <= 3:
        raise ImageReadError(
            IssueCode.IMAGE_WRONG_DIMENSIONS,
            f"'{label}' has shape {list(shape)}; mmdx reads one 2D or 3D image per case (extract a single "
            "volume from a 4D series, e.g. one time point)",
            label,
        )
    if min(squeezed) < 1:
        raise ImageReadError(
            IssueCode.NIFTI_INVALID, f"'{label}' has an empty axis: shape {list(shape)}", label
        )
    _guard_size(squeezed, label)
    dtype = header.get_data_dtype()
    if dtype.kind not in "biuf":
        raise ImageReadError(
            IssueCode.NIFTI_INVALID,
            f"'{label}' stores {dtype} voxels; mmdx reads real-valued greyscale intensities only",
            label,
        )
    found: list[Issue] = []
    affine, affine_source = _nifti_affine(header, squeezed, label, found)
    try:
        array = np.asarray(image.get_fdata(dtype=np.float32), dtype=np.float32).reshape(squeezed)
    except MemoryError:
        raise
    except Exception as exc:
        raise ImageReadError(
            IssueCode.NIFTI_INVALID,
            f"the voxel data of '{label}' cannot be read (is the file truncated?): "
            f"{type(exc).__name__}: {exc}",
            label,
        ) from None
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise ImageReadError(
            IssueCode.NIFTI_INVALID,
            f"'{label}' contains {bad} non-finite (NaN or infinite) voxels; replace them "
            "(e.g. with the background value) before use",
            label,
        )
    slope, inter = header.get_slope_inter()
    volume = ImageVolume(
        array=array,
        affine=affine,
        source=label,
        format=ImageFormat.NIFTI,
        warnings=found,
        meta={
            "nifti_version": 2 if isinstance(image, nib.Nifti2Image) else 1,
            "qform_code": int(header["qform_code"]),
            "sform_code": int(header["sform_code"]),
            "affine_source": affine_source,
            "datatype": str(dtype),
            "scl_slope": None if slope is None else float(slope),
            "scl_inter": None if inter is None else float(inter),
            "spatial_unit": header.get_xyzt_units()[0],
        },
    )
    _describe_grid(volume)
    return volume


def _nifti_affine(header: nib.Nifti1Header, shape: tuple[int, ...], label: str, found: list[Issue]) -> tuple:
    """The world affine (mm) and which header field it came from."""
    try:
        qform, qcode = header.get_qform(coded=True)
        sform, scode = header.get_sform(coded=True)
        base = header.get_base_affine()
    except Exception as exc:
        raise ImageReadError(
            IssueCode.NIFTI_INVALID, f"the orientation fields of '{label}' are invalid: {exc}", label
        ) from None
    to_mm = _NIFTI_SPATIAL_UNITS_TO_MM.get(header.get_xyzt_units()[0], 1.0)
    scale = np.diag([to_mm, to_mm, to_mm, 1.0])
    if qcode > 0 and scode > 0:
        corners = np.array([[*c, 1.0] for c in product(*[(0, n - 1) for n in (*shape, 1, 1)[:3]])]).T
        distance = float(
            np.linalg.norm(((scale @ qform) @ corners - (scale @ sform) @ corners)[:3], axis=0).max()
        )
        if not math.isfinite(distance) or distance > NIFTI_AFFINE_TOLERANCE_MM:
            raise ImageReadError(
                IssueCode.NIFTI_QFORM_SFORM_MISMATCH,
                f"the qform (code {int(qcode)}) and sform (code {int(scode)}) of '{label}' place the "
                f"image up to {distance:.4g} mm apart; rewrite the header with one consistent affine "
                "(or set one code to 0)",
                label,
            )
    if scode > 0:
        affine, source = sform, "sform"
    elif qcode > 0:
        affine, source = qform, "qform"
    else:
        affine, source = base, "base"
        found.append(
            _warning(
                IssueCode.NIFTI_INVALID,
                f"'{label}' sets neither qform nor sform: using the voxel sizes with an unknown orientation",
                label,
            )
        )
    affine = scale @ np.asarray(affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ImageReadError(
            IssueCode.NIFTI_INVALID,
            f"the {source} affine of '{label}' is not invertible (a voxel size of 0?): {affine[:3].tolist()}",
            label,
        )
    return affine, source
