"""Hostile NIfTI files for robustness tests and the memory benchmark: headers that promise gigabytes.

* :func:`write_lying_nifti`: a 452-byte ``.nii`` whose header declares 512 x 512 x 1000 float64 voxels
  (2 GB) but which holds 100 bytes of them.
* :func:`write_gzip_bomb`: a ``.nii.gz`` of about 2 MB that inflates to 2 GiB: a header declaring
  512 x 512 x 1024 float64 voxels followed by that many zero bytes, written as one gzip member per MiB
  (concatenated gzip members are one stream), so that writing it costs milliseconds.

A reader that trusts the header allocates what it declares before finding out (the first) or decompresses
all of it (the second); mmdx refuses both from the header (:mod:`mmdx.data.image_headers`).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np

_MIB = 1 << 20


def _header_bytes(shape: tuple[int, ...], dtype: type) -> bytes:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_qform(np.eye(4), code=1)
    header.set_sform(np.eye(4), code=1)
    header.set_data_offset(352)
    return header.binaryblock + b"\x00" * (352 - len(header.binaryblock))


def write_lying_nifti(path: Path, shape: tuple[int, ...] = (512, 512, 1000), voxel_bytes: int = 100) -> Path:
    """A ``.nii`` declaring ``shape`` float64 voxels and holding only ``voxel_bytes`` bytes of them."""
    path.write_bytes(_header_bytes(shape, np.float64) + b"\x00" * voxel_bytes)
    return path


def write_gzip_bomb(path: Path, shape: tuple[int, ...] = (512, 512, 1024)) -> Path:
    """A ``.nii.gz`` whose header declares ``shape`` float64 voxels and whose stream really inflates to them."""
    total = int(np.prod(shape)) * 8
    member = gzip.compress(b"\x00" * _MIB, compresslevel=9)
    with path.open("wb") as handle:
        handle.write(gzip.compress(_header_bytes(shape, np.float64)))
        for _ in range(total // _MIB):
            handle.write(member)
        if total % _MIB:
            handle.write(gzip.compress(b"\x00" * (total % _MIB)))
    return path
