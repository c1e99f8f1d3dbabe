"""Judging an image by its header before any pixel data is read.

A header is a promise about the pixel data that follows; readers allocate what it promises. A 452-byte NIfTI
whose header declares 512 x 512 x 1000 float64 voxels would make a reader allocate 2 GB before finding out
that the data is missing, and a small ``.nii.gz`` can inflate to gigabytes. The checks here refuse such
files from the header alone, or while streaming the compressed data with constant memory:

* :func:`check_declared_shape`: the declared shape has the dimensionality the cohort needs and at most
  ``max_voxels`` voxels (``IMAGE_WRONG_DIMENSIONS``, ``IMAGE_UNREADABLE``);
* :func:`check_nifti_header`: a NIfTI file declares at most 4 bytes of voxel data per voxel of the limit
  (``IMAGE_UNREADABLE``) and holds the voxel bytes its header declares (``NIFTI_INVALID``), counted for a
  ``.nii.gz`` in 1 MiB chunks of its decompressed stream, never beyond the declared size;
* :func:`check_deferred_extents`: a DICOM file's Pixel Data (and any other large element), whose reading
  pydicom defers, ends inside the file (``DICOM_TRUNCATED``).

Every check raises :class:`~mmdx.data.issues.ImageReadError` or returns ``None``.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from mmdx.data.issues import ImageReadError, IssueCode

#: Sizes of the NIfTI-1 and NIfTI-2 headers (their first four bytes hold the size).
_NIFTI_HEADER_BYTES = {348: nib.Nifti1Header, 540: nib.Nifti2Header}
_CHUNK = 1 << 20
#: The voxel data of a NIfTI file may hold at most this many bytes per voxel of the voxel limit: the float32
#: array mmdx makes needs as much again, so a float64 volume at the voxel limit would need three times it.
_BYTES_PER_VOXEL = 4
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)  # Float, Double Float and (plain) Pixel Data


def spatial_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without the trailing singleton axes beyond the third (a NIfTI ``[I, J, K, 1]`` is 3D)."""
    squeezed = tuple(int(s) for s in shape)
    while len(squeezed) > 3 and squeezed[-1] == 1:
        squeezed = squeezed[:-1]
    return squeezed


def check_declared_shape(shape: tuple[int, ...], dims: int | None, label: str, max_voxels: int) -> None:
    """Refuse a declared ``shape`` that is not one 2D or 3D image, not ``dims``-dimensional (a single-slice
    volume ``[I, J, 1]`` counts as 2D) or larger than ``max_voxels``."""
    squeezed = spatial_shape(shape)
    if not 2 <= len(squeezed) <= 3:
        raise ImageReadError(
            IssueCode.IMAGE_WRONG_DIMENSIONS,
            f"'{label}' declares shape {list(shape)}; mmdx reads one 2D or 3D image per case (extract a "
            "single volume from a 4D series, e.g. one time point)",
            label,
        )
    actual = 2 if len(squeezed) == 2 or squeezed[2] == 1 else 3
    if dims is not None and actual != dims:
        hint = (
            "give a single image or a single-slice series"
            if dims == 2
            else "give a series folder or a volume file; a single 2D image cannot be a 3D input"
        )
        raise ImageReadError(
            IssueCode.IMAGE_WRONG_DIMENSIONS,
            f"the cohort needs {dims}D images but '{label}' declares a {actual}D image of shape "
            f"{list(squeezed)}; {hint}",
            label,
        )
    voxels = math.prod(squeezed)
    if voxels > max_voxels:
        raise ImageReadError(
            IssueCode.IMAGE_UNREADABLE,
            f"'{label}' has {voxels:,} voxels (shape {list(squeezed)}), more than the limit of {max_voxels:,}; "
            "crop or downsample it, or raise mmdx.data.imaging.MAX_VOXELS",
            label,
        )


def is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic bytes."""
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _parse_nifti_header(head: bytes, label: str) -> nib.Nifti1Header:
    size = None
    for order in ("little", "big"):
        candidate = int.from_bytes(head[:4], order) if len(head) >= 4 else 0
        if candidate in _NIFTI_HEADER_BYTES:
            size = candidate
    if size is None or len(head) < size:
        raise ImageReadError(
            IssueCode.NIFTI_INVALID,
            f"'{label}' does not start with a NIfTI-1 or NIfTI-2 header ({len(head)} bytes read)",
            label,
        )
    try:
        return _NIFTI_HEADER_BYTES[size].from_fileobj(io.BytesIO(head[:size]))
    except Exception as exc:
        raise ImageReadError(
            IssueCode.NIFTI_INVALID,
            f"'{label}' has an invalid NIfTI header: {type(exc).__name__}: {exc}",
            label,
        ) from None


def check_nifti_header(path: Path, label: str, dims: int | None, max_voxels: int) -> None:
    """Refuse a NIfTI file from its header: wrong dimensionality or too many voxels (see
    :func:`check_declared_shape`), fewer voxel bytes in the file, or in its decompressed stream, than the
    header declares, or more than 4 bytes of voxel data per allowed voxel. A ``.nii.gz`` is decompressed in
    chunks that are counted and dropped, and no further than the declared size, so a decompression bomb
    costs time bounded by the header, not memory."""
    compressed = is_gzip(path)
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as stream:
            head = stream.read(max(_NIFTI_HEADER_BYTES))
            header = _parse_nifti_header(head, label)
            try:
                shape = tuple(int(s) for s in header.get_data_shape())
                dtype = np.dtype(header.get_data_dtype())
                offset = int(header.get_data_offset())
            except Exception as exc:
                raise ImageReadError(
                    IssueCode.NIFTI_INVALID,
                    f"'{label}' has an invalid NIfTI header: {type(exc).__name__}: {exc}",
                    label,
                ) from None
            check_declared_shape(shape, dims, label, max_voxels)
            data_bytes = math.prod(shape) * dtype.itemsize
            needed = max(offset, len(header.binaryblock)) + data_bytes
            if not compressed:
                _check_holds(
                    os.fstat(stream.fileno()).st_size, needed, shape, dtype, offset, label, compressed
                )
            _check_voxel_bytes(data_bytes, dtype, max_voxels, label)
            if compressed:
                available = len(head)
                while available < needed:
                    chunk = stream.read(min(_CHUNK, needed - available))
                    if not chunk:
                        break
                    available += len(chunk)
                _check_holds(available, needed, shape, dtype, offset, label, compressed)
    except (OSError, EOFError, zlib.error) as exc:
        raise ImageReadError(
            IssueCode.NIFTI_INVALID,
            f"'{label}' cannot be read as {'gzip-compressed ' if compressed else ''}NIfTI: {exc}",
            label,
        ) from None


def _check_voxel_bytes(data_bytes: int, dtype: np.dtype, max_voxels: int, label: str) -> None:
    if data_bytes > max_voxels * _BYTES_PER_VOXEL:
        raise ImageReadError(
            IssueCode.IMAGE_UNREADABLE,
            f"'{label}' declares {data_bytes:,} bytes of {dtype} voxel data, more than the limit of "
            f"{max_voxels * _BYTES_PER_VOXEL:,} ({_BYTES_PER_VOXEL} bytes for each of MAX_VOXELS voxels); "
            "store it as float32 or int16, or raise mmdx.data.imaging.MAX_VOXELS",
            label,
        )


def _check_holds(
    available: int,
    needed: int,
    shape: tuple[int, ...],
    dtype: np.dtype,
    offset: int,
    label: str,
    compressed: bool,
) -> None:
    if available < needed:
        holds = "decompresses to" if compressed else "holds"
        raise ImageReadError(
            IssueCode.NIFTI_INVALID,
            f"'{label}' declares {list(shape)} {dtype} voxels, {needed - offset:,} bytes of voxel data from "
            f"byte {offset}, but the file {holds} only {available:,} bytes: it is truncated or its header is "
            "wrong; refused before reading the voxels",
            label,
        )


def check_deferred_extents(dataset: Dataset, label: str) -> None:
    """Refuse a DICOM file with a large data element (pixel data, typically), whose reading pydicom deferred,
    declared to run past the end of the file: reading it would allocate the declared length first."""
    filename = getattr(dataset, "filename", None)
    if not isinstance(filename, str | os.PathLike):
        return
    size: int | None = None
    for tag in list(dataset.keys()):
        element = dataset.get_item(tag, keep_deferred=True)
        if not isinstance(element, RawDataElement) or element.value is not None:
            continue  # already in memory, so the file held it
        if element.length == _UNDEFINED_LENGTH:
            continue
        size = os.path.getsize(filename) if size is None else size
        if element.value_tell + element.length > size:
            name = "pixel data" if tag in _PIXEL_TAGS else f"data element {tag}"
            raise ImageReadError(
                IssueCode.DICOM_TRUNCATED,
                f"'{label}' declares {element.length:,} bytes of {name} from byte {element.value_tell:,}, but the "
                f"file ends at byte {size:,}: it was cut short or its header is wrong; refused before reading it",
                label,
            )
