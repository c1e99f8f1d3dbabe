"""Image headers are judged before pixel data is read: files whose header declares more data than they hold,
images of the wrong dimensionality and decompression bombs are refused with little memory."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mmdx.data import imaging
from mmdx.data.imaging import check_image, read_image
from mmdx.data.issues import IssueCode
from tests.data.test_imaging import AXIAL, random_hu, save_nifti, write_ct_series

#: what refusing a bad image may cost, far below the gigabytes the headers below declare
MEMORY_BUDGET = 48 * 1024 * 1024


def _header(shape: tuple[int, ...], dtype: type) -> nib.Nifti1Header:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_qform(np.eye(4), code=1)
    header.set_sform(np.eye(4), code=1)
    header.set_data_offset(352)
    return header


def write_lying_nifti(path: Path, shape: tuple[int, ...], dtype: type, voxel_bytes: int) -> Path:
    """A NIfTI whose header declares ``shape`` but which holds only ``voxel_bytes`` bytes of voxels; a
    ``.nii.gz`` gets them as a stream of zeros compressed on the fly (a decompression bomb when large)."""
    header = _header(shape, dtype)
    head = header.binaryblock + b"\x00" * (int(header.get_data_offset()) - len(header.binaryblock))
    if path.suffix != ".gz":
        path.write_bytes(head + b"\x00" * voxel_bytes)
        return path
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip container
    with path.open("wb") as handle:
        handle.write(compressor.compress(head))
        block = b"\x00" * (1 << 20)
        for start in range(0, voxel_bytes, len(block)):
            handle.write(compressor.compress(block[: min(len(block), voxel_bytes - start)]))
        handle.write(compressor.flush())
    return path


def peak_memory(call: Callable[[], object]) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_452_byte_nifti_declaring_two_gigabytes_is_refused_before_reading(tmp_path: Path) -> None:
    path = write_lying_nifti(tmp_path / "liar.nii", (512, 512, 1000), np.float64, 100)
    assert path.stat().st_size == 452
    issues, peak = peak_memory(lambda: check_image(path))
    assert [i.code for i in issues] == [IssueCode.NIFTI_INVALID]
    assert "2,097,152,000" in issues[0].message and "452" in issues[0].message
    assert peak < MEMORY_BUDGET


@pytest.mark.parametrize(
    ("dims", "code"), [(2, IssueCode.IMAGE_WRONG_DIMENSIONS), (3, IssueCode.NIFTI_INVALID)]
)
def test_a_nifti_gz_inflating_short_of_its_header_is_refused_while_streaming(
    tmp_path: Path, dims: int, code: IssueCode
) -> None:
    # 512 MiB declared, 64 MiB in the stream: a 3D cohort learns that it is short, a 2D one that it is 3D
    path = write_lying_nifti(tmp_path / "bomb.nii.gz", (512, 512, 512), np.float32, 64 << 20)
    assert path.stat().st_size < 1 << 20
    issues, peak = peak_memory(lambda: check_image(path, dims=dims))
    assert [i.code for i in issues] == [code]
    assert peak < MEMORY_BUDGET


def test_the_dimension_check_comes_before_any_voxel_is_decompressed(tmp_path: Path) -> None:
    # the stream ends right after the header: only a check made on the header can name the dimensions
    path = write_lying_nifti(tmp_path / "volume.nii.gz", (64, 64, 40), np.int16, 0)
    with pytest.raises(imaging.ImageReadError) as info:
        read_image(path, dims=2)
    assert info.value.issue.code is IssueCode.IMAGE_WRONG_DIMENSIONS


def test_more_voxels_than_the_limit_are_refused_from_the_header(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(imaging, "MAX_VOXELS", 1000)
    path = write_lying_nifti(tmp_path / "large.nii.gz", (20, 20, 20), np.uint8, 0)
    issues = check_image(path)
    assert [i.code for i in issues] == [IssueCode.IMAGE_UNREADABLE] and "MAX_VOXELS" in issues[0].message


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_honest_files_still_read(tmp_path: Path, suffix: str) -> None:
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    save_nifti(tmp_path / f"ok{suffix}", data, AXIAL)
    np.testing.assert_array_equal(read_image(tmp_path / f"ok{suffix}").array, data)
    flat = np.ones((4, 5, 1), np.int16)
    save_nifti(tmp_path / f"flat{suffix}", flat, AXIAL)
    assert read_image(tmp_path / f"flat{suffix}", dims=2).array.shape == (4, 5)


def test_a_gzip_that_is_not_gzip_is_invalid(tmp_path: Path) -> None:
    (tmp_path / "fake.nii.gz").write_bytes(b"\x1f\x8b" + b"nonsense" * 50)
    (tmp_path / "empty.nii.gz").write_bytes(gzip.compress(b""))
    for name in ("fake.nii.gz", "empty.nii.gz"):
        assert [i.code for i in check_image(tmp_path / name)] == [IssueCode.NIFTI_INVALID]


def _declare_pixel_length(path: Path, length: int) -> None:
    """Rewrite the 4-byte length of the Pixel Data element (explicit VR little endian, OW)."""
    data = bytearray(path.read_bytes())
    at = data.rfind(b"\xe0\x7f\x10\x00OW\x00\x00")
    assert at > 0
    data[at + 8 : at + 12] = length.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_a_dicom_declaring_more_pixel_data_than_the_file_holds_is_refused_unread(tmp_path: Path) -> None:
    (path,) = write_ct_series(tmp_path / "s", random_hu((8, 8, 1)), AXIAL)
    _declare_pixel_length(path, 0x7FFF_FFF0)
    issues, peak = peak_memory(lambda: check_image(path))
    assert [i.code for i in issues] == [IssueCode.DICOM_TRUNCATED]
    assert "2,147,483,632" in issues[0].message
    assert peak < MEMORY_BUDGET


def test_a_dicom_series_in_a_2d_cohort_is_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    write_ct_series(tmp_path / "s", random_hu((8, 8, 3)), AXIAL)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("pixel data decoded")

    monkeypatch.setattr(imaging, "_decode_stored", no_decoding)
    with pytest.raises(imaging.ImageReadError) as info:
        read_image(tmp_path / "s", dims=2)
    assert info.value.issue.code is IssueCode.IMAGE_WRONG_DIMENSIONS


def test_voxel_data_beyond_four_bytes_per_allowed_voxel_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(imaging, "MAX_VOXELS", 1000)
    write_lying_nifti(tmp_path / "wide.nii", (10, 10, 10), np.float64, 8000)  # 1000 voxels, 8000 bytes
    write_lying_nifti(tmp_path / "narrow.nii", (10, 10, 10), np.float32, 4000)
    issues = check_image(tmp_path / "wide.nii")
    assert [i.code for i in issues] == [IssueCode.IMAGE_UNREADABLE] and "8,000 bytes" in issues[0].message
    assert read_image(tmp_path / "narrow.nii").array.shape == (10, 10, 10)


def test_the_shipped_bombs_cost_no_memory_in_a_3d_cohort(tmp_path: Path) -> None:
    from mmdx.data.synth.bombs import write_gzip_bomb
    from mmdx.data.synth.bombs import write_lying_nifti as write_liar

    liar = write_liar(tmp_path / "liar.nii")
    bomb = write_gzip_bomb(tmp_path / "bomb.nii.gz")
    assert liar.stat().st_size == 452 and bomb.stat().st_size < 3 << 20
    (liar_issues, bomb_issues), peak = peak_memory(
        lambda: (check_image(liar, dims=3), check_image(bomb, dims=3))
    )
    assert [i.code for i in liar_issues] == [IssueCode.NIFTI_INVALID]
    assert [i.code for i in bomb_issues] == [IssueCode.IMAGE_UNREADABLE]
    assert peak < MEMORY_BUDGET
