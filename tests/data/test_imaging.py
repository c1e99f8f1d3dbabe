"""Tests of the image readers: the pydicom test corpus, synthetic DICOM series, NIfTI files and paths."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    MPEG2MPML,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from mmdx.data import imaging
from mmdx.data.imaging import (
    ImageFormat,
    ImageVolume,
    check_image,
    read_dicom_file,
    read_dicom_series,
    read_image,
    read_nifti,
    with_dims,
)
from mmdx.data.issues import ImageReadError, Issue, IssueCode, Severity

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# --------------------------------------------------------------------------------------------------------
# the pydicom test corpus (pydicom's own files and the pydicom-data package), listed without network
# --------------------------------------------------------------------------------------------------------


def _corpus_roots() -> list[tuple[str, Path]]:
    roots = [("pydicom", Path(pydicom.__file__).parent / "data" / "test_files")]
    try:
        import data_store
    except ImportError:  # pydicom-data is a declared dependency; without it only pydicom's files are used
        return roots
    return [*roots, ("pydicom-data", Path(data_store.__file__).parent / "data")]


def _corpus() -> list[tuple[str, Path]]:
    """Every file and every folder below the corpus roots, with a readable unique id."""
    entries = []
    for name, root in _corpus_roots():
        for path in sorted(root.rglob("*")):
            if path.is_file() or path.is_dir():
                entries.append((f"{name}/{path.relative_to(root).as_posix()}", path))
    return entries


CORPUS = _corpus()
CORPUS_BY_ID = dict(CORPUS)


def corpus_file(name: str) -> Path:
    """A corpus file by its name (the first match across both packages)."""
    for key, path in CORPUS:
        if key.split("/", 1)[1] == name:
            return path
    raise LookupError(name)


def test_corpus_is_present() -> None:
    files = [p for _, p in CORPUS if p.is_file()]
    assert len(files) > 150, "the pydicom test files should be installed with pydicom"


@pytest.mark.parametrize("path", [p for _, p in CORPUS], ids=[key for key, _ in CORPUS])
def test_corpus_entry_loads_or_raises_a_typed_error(path: Path) -> None:
    try:
        volume = read_image(path)
    except ImageReadError as exc:
        issue = exc.issue
        assert isinstance(issue.code, IssueCode)
        assert issue.severity is Severity.ERROR
        assert issue.message
        assert issue.file == str(path) or issue.file.startswith(f"{path}/")  # the image, or a slice of it
        assert check_image(path) == [issue]
        return
    assert volume.array.dtype == np.float32
    assert volume.ndim in (2, 3) and min(volume.array.shape) >= 1
    assert np.all(np.isfinite(volume.array))
    assert volume.affine.shape == (4, 4) and volume.affine.dtype == np.float64
    assert np.all(np.isfinite(volume.affine)) and abs(np.linalg.det(volume.affine[:3, :3])) > 0
    assert np.array_equal(volume.affine[3], [0, 0, 0, 1])
    assert all(s > 0 for s in volume.spacing)
    assert volume.format in {f.value for f in ImageFormat}
    assert all(w.severity is Severity.WARNING for w in volume.warnings)
    json.dumps(volume.meta)
    assert check_image(path) == volume.warnings


EXPECTED_CORPUS_OUTCOMES = {
    # loads: shape of the array
    "pydicom/CT_small.dcm": (128, 128),
    "pydicom/JPEG2000.dcm": (256, 1024),
    "pydicom/MR_small_RLE.dcm": (64, 64),
    "pydicom/rtdose.dcm": (10, 10, 15),
    "pydicom/dicomdirtests/98892001/CT5N": (16, 16, 5),
    "pydicom-data/eCT_Supplemental.dcm": (512, 512, 2),
    "pydicom-data/RG3_J2KR.dcm": (1760, 1760),
    # rejected: the reason
    "pydicom/MR_truncated.dcm": IssueCode.DICOM_TRUNCATED,
    "pydicom/rtplan_truncated.dcm": IssueCode.DICOM_TRUNCATED,
    "pydicom-data/emri_small_jpeg_2k_lossless_too_short.dcm": IssueCode.DICOM_TRUNCATED,
    "pydicom/rtstruct.dcm": IssueCode.DICOM_NO_PIXEL_DATA,
    "pydicom/test-SR.dcm": IssueCode.DICOM_NO_PIXEL_DATA,
    "pydicom/dicomdirtests/DICOMDIR": IssueCode.DICOM_NO_PIXEL_DATA,
    "pydicom/SC_rgb_jpeg.dcm": IssueCode.DICOM_UNSUPPORTED_IMAGE,
    "pydicom-data/OBXXXX1A.dcm": IssueCode.DICOM_UNSUPPORTED_IMAGE,  # palette colour
    "pydicom-data/emri_small.dcm": IssueCode.DICOM_UNSUPPORTED_IMAGE,  # frames without positions
    "pydicom-data/liver.dcm": IssueCode.DICOM_UNSUPPORTED_IMAGE,  # a segmentation
    "pydicom/badVR.dcm": IssueCode.DICOM_INVALID,
    "pydicom/README.txt": IssueCode.IMAGE_FORMAT_UNKNOWN,
    "pydicom/zipMR.gz": IssueCode.IMAGE_FORMAT_UNKNOWN,
    "pydicom/dicomdirtests/98892003/MR1": IssueCode.DICOM_MIXED_SERIES,
    "pydicom/dicomdirtests/98892001/CT2N": IssueCode.DICOM_INCONSISTENT_GEOMETRY,
    "pydicom/dicomdirtests/77654033": IssueCode.IMAGE_UNREADABLE,  # only subfolders
}


@pytest.mark.parametrize("key", sorted(EXPECTED_CORPUS_OUTCOMES))
def test_corpus_outcome(key: str) -> None:
    expected = EXPECTED_CORPUS_OUTCOMES[key]
    path = CORPUS_BY_ID[key]
    if isinstance(expected, IssueCode):
        with pytest.raises(ImageReadError) as info:
            read_image(path)
        assert info.value.issue.code is expected
    else:
        assert read_image(path).array.shape == expected


def test_ct_values_are_hounsfield_units() -> None:
    path = corpus_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    volume = read_image(path)
    np.testing.assert_array_equal(volume.array, expected.T.astype(np.float32))
    assert volume.meta["value_units"] == "HU" and volume.meta["modality"] == "CT"
    # The first transmitted pixel sits at ImagePositionPatient (LPS), i.e. at (-x, -y, z) in RAS.
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    np.testing.assert_allclose(volume.affine[:3, 3], ipp * [-1, -1, 1])


def test_rt_dose_is_scaled_to_dose_units_and_stacked_by_grid_offsets() -> None:
    path = corpus_file("rtdose.dcm")
    ds = pydicom.dcmread(path)
    volume = read_image(path)
    expected = ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling)  # [frames, rows, cols]
    np.testing.assert_allclose(volume.array, expected.transpose(2, 1, 0), rtol=1e-6)
    offsets = [float(v) for v in ds.GridFrameOffsetVector]
    assert volume.spacing[2] == pytest.approx(offsets[1] - offsets[0])
    assert volume.meta["value_units"] == str(ds.DoseUnits)


FUZZ_SOURCES = [
    "CT_small.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_RLE.dcm",
    "rtdose.dcm",
    "image_dfl.dcm",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    source=st.sampled_from(FUZZ_SOURCES),
    keep=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), max_size=12),
)
def test_damaged_files_never_escape_as_other_exceptions(tmp_path_factory, source, keep, flips) -> None:
    """Cut short and byte-flipped DICOM files load or raise ImageReadError, nothing else."""
    data = bytearray(corpus_file(source).read_bytes())
    for where, value in flips:
        data[int(where * len(data))] = value
    path = tmp_path_factory.mktemp("fuzz") / "damaged.dcm"
    path.write_bytes(bytes(data[: max(1, int(keep * len(data)))]))
    try:
        volume = read_image(path)
    except ImageReadError as exc:
        assert isinstance(exc.issue.code, IssueCode)
    else:
        assert volume.array.dtype == np.float32 and np.all(np.isfinite(volume.array))


LOSSLESS_TWINS = [
    ("MR_small.dcm", "MR_small_RLE.dcm"),
    ("MR_small.dcm", "MR_small_jp2klossless.dcm"),
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),
    ("MR_small.dcm", "MR_small_bigendian.dcm"),
    ("MR_small.dcm", "MR_small_implicit.dcm"),
    ("693_UNCR.dcm", "693_J2KR.dcm"),
    ("MR2_UNCR.dcm", "MR2_J2KR.dcm"),
    ("RG3_UNCR.dcm", "RG3_J2KR.dcm"),
]


@pytest.mark.parametrize(("plain", "compressed"), LOSSLESS_TWINS, ids=[c for _, c in LOSSLESS_TWINS])
def test_installed_decoders_reproduce_losslessly_compressed_files(plain: str, compressed: str) -> None:
    reference, decoded = read_image(corpus_file(plain)), read_image(corpus_file(compressed))
    assert decoded.meta["transfer_syntax"] != reference.meta["transfer_syntax"]
    np.testing.assert_array_equal(decoded.array, reference.array)
    np.testing.assert_allclose(decoded.affine, reference.affine)


def test_enhanced_ct_frames_are_sorted_along_the_normal() -> None:
    path = corpus_file("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    orientation = [
        float(v)
        for v in ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
    ]
    normal = np.cross(orientation[:3], orientation[3:])
    positions = [
        np.array([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient])
        for frame in ds.PerFrameFunctionalGroupsSequence
    ]
    order = np.argsort([p @ normal for p in positions])
    volume = read_image(path)
    assert volume.format == ImageFormat.DICOM_FILE and volume.array.shape == (512, 512, 2)
    for k, frame in enumerate(order):
        np.testing.assert_allclose(volume.affine @ [0, 0, k, 1], [*(positions[frame] * [-1, -1, 1]), 1])
        np.testing.assert_array_equal(
            volume.array[:, :, k], (ds.pixel_array[frame].astype(np.float64) - 1024).T
        )


# --------------------------------------------------------------------------------------------------------
# synthetic DICOM
# --------------------------------------------------------------------------------------------------------


def _ds_numbers(values: np.ndarray) -> list[str]:
    return [format_number_as_ds(float(v)) for v in values]


def _geometry(affine_ras: np.ndarray) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """ImageOrientationPatient, PixelSpacing, slice step and origin (LPS) of a RAS voxel-to-world affine."""
    lps = LPS_TO_RAS @ affine_ras
    column_spacing, row_spacing = np.linalg.norm(lps[:3, 0]), np.linalg.norm(lps[:3, 1])
    orientation = np.concatenate([lps[:3, 0] / column_spacing, lps[:3, 1] / row_spacing])
    return (
        _ds_numbers(orientation),
        _ds_numbers(np.array([row_spacing, column_spacing])),
        lps[:3, 2],
        lps[:3, 3],
    )


def _image_dataset(sop_class: str, series_uid: str, study_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = "CT"
    ds.PatientID = "SYNTHETIC"
    return ds


def write_ct_series(
    folder: Path,
    hu: np.ndarray,
    affine_ras: np.ndarray,
    *,
    slope: float = 1.0,
    intercept: float = -1024.0,
    series_uid: str | None = None,
    seed: int = 0,
    transfer_syntax: str | None = None,
) -> list[Path]:
    """Write ``hu`` (``[I, J, K]``, Hounsfield units) as a CT series whose voxel grid has ``affine_ras``.

    Files get shuffled names and shuffled InstanceNumbers, so only the geometry tells the slice order.
    Returns the paths in slice order ``k``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    orientation, spacing, step, origin = _geometry(affine_ras)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    n = hu.shape[2]
    names = rng.permutation(10 * n)[:n]
    instance_numbers = rng.permutation(n) + 1
    paths = []
    for k in range(n):
        ds = _image_dataset(CTImageStorage, series_uid, study_uid)
        ds.InstanceNumber = int(instance_numbers[k])
        ds.ImageOrientationPatient = orientation
        ds.ImagePositionPatient = _ds_numbers(origin + k * step)
        ds.PixelSpacing = spacing
        ds.SliceThickness = format_number_as_ds(float(np.linalg.norm(step)))
        ds.RescaleSlope = format_number_as_ds(slope)
        ds.RescaleIntercept = format_number_as_ds(intercept)
        stored = np.round((hu[:, :, k].T - intercept) / slope).astype(np.int16)  # [rows, columns]
        ds.set_pixel_data(stored, "MONOCHROME2", 16, generate_instance_uid=False)
        if transfer_syntax is not None:
            ds.compress(transfer_syntax, generate_instance_uid=False)
        path = folder / f"IM{names[k]:05d}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def random_hu(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 2000, size=shape).astype(np.float32)


def rotation(angles: tuple[float, float, float]) -> np.ndarray:
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def make_affine(
    rot: np.ndarray, spacing: tuple[float, float, float], origin: tuple[float, float, float]
) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


AXIAL = make_affine(np.eye(3), (0.7, 0.8, 2.5), (-120.0, 95.0, -40.0))
OBLIQUE = make_affine(rotation((0.3, -0.5, 1.1)), (0.9, 1.1, 3.0), (12.5, -200.0, 33.0))


@pytest.mark.parametrize("affine", [AXIAL, OBLIQUE], ids=["axial", "oblique"])
def test_shuffled_series_reconstructs_volume_and_affine(tmp_path: Path, affine: np.ndarray) -> None:
    hu = random_hu((6, 5, 7))
    write_ct_series(tmp_path / "series", hu, affine, seed=3)
    volume = read_image(tmp_path / "series")
    assert volume.format == ImageFormat.DICOM_SERIES
    np.testing.assert_array_equal(volume.array, hu)
    np.testing.assert_allclose(volume.affine, affine, atol=1e-6)
    assert volume.spacing == pytest.approx([float(np.linalg.norm(affine[:3, i])) for i in range(3)])
    assert volume.warnings == []
    assert volume.meta["n_slices"] == 7 and volume.meta["modality"] == "CT"
    assert volume.meta["shape"] == [6, 5, 7]


def test_affine_maps_voxel_centres_to_the_written_patient_positions(tmp_path: Path) -> None:
    hu = random_hu((4, 3, 5))
    paths = write_ct_series(tmp_path / "s", hu, OBLIQUE)
    volume = read_image(tmp_path / "s")
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        row = np.array([float(v) for v in ds.ImageOrientationPatient[:3]])
        col = np.array([float(v) for v in ds.ImageOrientationPatient[3:]])
        row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
        for i, j in [(0, 0), (3, 0), (0, 2), (3, 2)]:
            # DICOM PS3.3 C.7.6.2.1.1: pixel (column i, row j) lies at IPP + i*col_spacing*row + j*row_spacing*col.
            lps = ipp + i * column_spacing * row + j * row_spacing * col
            ras = volume.affine @ [i, j, k, 1]
            np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-6)
            assert volume.array[i, j, k] == pydicom.dcmread(path).pixel_array[j, i] - 1024


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    angles=st.tuples(*[st.floats(-math.pi, math.pi)] * 3),
    spacing=st.tuples(*[st.floats(0.3, 5.0)] * 3),
    origin=st.tuples(*[st.floats(-300, 300)] * 3),
    shape=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(2, 5)),
    flip=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_any_orthogonal_geometry_round_trips(
    tmp_path_factory, angles, spacing, origin, shape, flip, seed
) -> None:
    """Every voxel keeps its value and its world position, whichever way the slices were stacked."""
    folder = tmp_path_factory.mktemp("series")
    affine = make_affine(rotation(angles), spacing, origin)
    if flip:  # slices written against the normal: the reader must reverse them
        affine[:3, 2] *= -1
    hu = random_hu(shape, seed)
    write_ct_series(folder, hu, affine, seed=seed)
    volume = read_image(folder)
    assert volume.array.shape == shape
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    world = volume.affine @ np.c_[grid, np.ones(len(grid))].T
    source = np.linalg.solve(affine, world)[:3].T
    np.testing.assert_allclose(source, np.round(source), atol=1e-5)
    idx = np.round(source).astype(int)
    np.testing.assert_array_equal(volume.array[tuple(grid.T)], hu[tuple(idx.T)])
    if not flip:
        np.testing.assert_allclose(volume.affine, affine, atol=1e-5)


def test_rescale_slope_and_intercept_are_applied(tmp_path: Path) -> None:
    stored = np.random.default_rng(1).integers(-300, 900, size=(5, 4, 3))
    hu = (stored * 2.5 - 1000.0).astype(np.float32)
    paths = write_ct_series(tmp_path / "s", hu, AXIAL, slope=2.5, intercept=-1000.0)
    volume = read_image(tmp_path / "s")
    np.testing.assert_array_equal(volume.array, hu)
    assert not np.array_equal(volume.array[:, :, 0], pydicom.dcmread(paths[0]).pixel_array.T)
    assert volume.meta["rescale_slope"] == 2.5 and volume.meta["rescale_intercept"] == -1000.0


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "jpeg2000"])
def test_compressed_series_decodes_exactly(tmp_path: Path, syntax: str) -> None:
    hu = random_hu((32, 32, 3))
    write_ct_series(tmp_path / "s", hu, AXIAL, transfer_syntax=syntax)
    volume = read_image(tmp_path / "s")
    assert volume.meta["transfer_syntax"] == syntax
    np.testing.assert_array_equal(volume.array, hu)


def test_missing_slice_is_refused(tmp_path: Path) -> None:
    paths = write_ct_series(tmp_path / "s", random_hu((3, 3, 6)), AXIAL)
    paths[3].unlink()
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "s")
    issue = info.value.issue
    assert issue.code is IssueCode.SLICE_SPACING_INCONSISTENT
    assert "1 slice(s) missing" in issue.message
    assert check_image(tmp_path / "s") == [issue]


def test_small_spacing_jitter_is_tolerated_with_a_warning(tmp_path: Path) -> None:
    paths = write_ct_series(tmp_path / "s", random_hu((3, 3, 5)), AXIAL)
    ds = pydicom.dcmread(paths[2])
    ipp = [float(v) for v in ds.ImagePositionPatient]
    ds.ImagePositionPatient = _ds_numbers(np.array(ipp) + [0, 0, 0.1])  # 4 % of the 2.5 mm gap
    ds.save_as(paths[2])
    volume = read_image(tmp_path / "s")
    assert [w.code for w in volume.warnings] == [IssueCode.SLICE_SPACING_INCONSISTENT]
    assert volume.warnings[0].severity is Severity.WARNING


def test_gantry_tilt_keeps_true_positions_in_a_sheared_affine(tmp_path: Path) -> None:
    tilted = AXIAL.copy()
    tilted[:3, 2] = [0.0, 0.6, 2.5]  # each slice shifted 0.6 mm anteriorly-posteriorly
    hu = random_hu((3, 4, 5))
    write_ct_series(tmp_path / "s", hu, tilted)
    volume = read_image(tmp_path / "s")
    np.testing.assert_allclose(volume.affine, tilted, atol=1e-6)
    np.testing.assert_array_equal(volume.array, hu)
    assert [w.code for w in volume.warnings] == [IssueCode.DICOM_INCONSISTENT_GEOMETRY]
    assert "tilt" in volume.warnings[0].message


def test_two_series_in_one_folder_are_refused(tmp_path: Path) -> None:
    first, second = generate_uid(), generate_uid()
    write_ct_series(tmp_path / "s", random_hu((3, 3, 3)), AXIAL, series_uid=first, seed=1)
    write_ct_series(tmp_path / "s", random_hu((3, 3, 2)), OBLIQUE, series_uid=second, seed=2)
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "s")
    issue = info.value.issue
    assert issue.code is IssueCode.DICOM_MIXED_SERIES
    assert f"{first}: 3 file(s)" in issue.message and f"{second}: 2 file(s)" in issue.message


def test_duplicate_slice_position_is_refused(tmp_path: Path) -> None:
    paths = write_ct_series(tmp_path / "s", random_hu((3, 3, 4)), AXIAL)
    ds = pydicom.dcmread(paths[1])
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "s" / "copy.dcm", enforce_file_format=True)
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "s")
    assert info.value.issue.code is IssueCode.DUPLICATE_SLICE_POSITION


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda ds: setattr(ds, "PixelSpacing", ["0.5", "0.5"]), IssueCode.DICOM_INCONSISTENT_GEOMETRY),
        (lambda ds: setattr(ds, "ImageOrientationPatient", ["0", "1", "0", "0", "0", "-1"]), None),
        (lambda ds: delattr(ds, "ImagePositionPatient"), IssueCode.DICOM_GEOMETRY_MISSING),
        (lambda ds: delattr(ds, "ImageOrientationPatient"), IssueCode.DICOM_GEOMETRY_MISSING),
        (lambda ds: ds.set_pixel_data(np.zeros((4, 3), np.int16), "MONOCHROME2", 16), None),
    ],
    ids=["pixel-spacing", "orientation", "no-position", "no-orientation", "size"],
)
def test_inconsistent_slices_are_refused(tmp_path: Path, change, code) -> None:
    paths = write_ct_series(tmp_path / "s", random_hu((3, 3, 4)), AXIAL)
    ds = pydicom.dcmread(paths[2])
    change(ds)
    ds.save_as(paths[2])
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "s")
    assert info.value.issue.code is (code or IssueCode.DICOM_INCONSISTENT_GEOMETRY)


def test_truncated_slice_is_reported_with_its_file(tmp_path: Path) -> None:
    cohort = tmp_path / "cohort"
    paths = write_ct_series(cohort / "case1" / "ct", random_hu((8, 8, 3)), AXIAL)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[:-40])
    with pytest.raises(ImageReadError) as info:
        read_image("case1/ct", root=cohort)
    issue = info.value.issue
    assert issue.code is IssueCode.DICOM_TRUNCATED
    assert issue.file == f"case1/ct/{paths[1].name}"


@pytest.mark.parametrize("cut", [1, 60, 150], ids=["last-byte", "pixel-data", "into-header"])
def test_truncated_single_file(tmp_path: Path, cut: int) -> None:
    (path,) = write_ct_series(tmp_path / "s", random_hu((8, 8, 1)), AXIAL)
    data = path.read_bytes()
    pixel_start = len(data) - 8 * 8 * 2
    # "into-header" keeps the file up to somewhere before the pixel data started
    path.write_bytes(data[: pixel_start - cut] if cut == 150 else data[:-cut])
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert info.value.issue.code is IssueCode.DICOM_TRUNCATED


def test_dataset_without_pixel_data(tmp_path: Path) -> None:
    ds = _image_dataset(CTImageStorage, generate_uid(), generate_uid())
    ds.save_as(tmp_path / "empty.dcm", enforce_file_format=True)
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "empty.dcm")
    assert info.value.issue.code is IssueCode.DICOM_NO_PIXEL_DATA
    # An image description without its pixels means the file lost its end.
    ds.Rows, ds.Columns = 4, 4
    ds.save_as(tmp_path / "lost.dcm", enforce_file_format=True)
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "lost.dcm")
    assert info.value.issue.code is IssueCode.DICOM_TRUNCATED


def test_companion_files_in_a_series_folder_are_ignored_with_warnings(tmp_path: Path) -> None:
    hu = random_hu((3, 3, 3))
    write_ct_series(tmp_path / "s", hu, AXIAL)
    report = _image_dataset("1.2.840.10008.5.1.4.1.1.88.11", generate_uid(), generate_uid())  # Basic Text SR
    report.Modality = "SR"
    report.save_as(tmp_path / "s" / "report.dcm", enforce_file_format=True)
    (tmp_path / "s" / "notes.txt").write_text("acquired on the night shift\n")
    (tmp_path / "s" / ".DS_Store").write_bytes(b"\x00\x01")
    (tmp_path / "s" / "DICOMDIR").write_bytes(b"not really")
    volume = read_image(tmp_path / "s")
    np.testing.assert_array_equal(volume.array, hu)
    assert sorted(w.code for w in volume.warnings) == sorted(
        [IssueCode.DICOM_INVALID, IssueCode.DICOM_NO_PIXEL_DATA]
    )
    assert volume.meta["ignored_files"] == ["notes.txt", "report.dcm"]


def test_folder_without_dicom(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("hello")
    for folder, code in [("empty", IssueCode.IMAGE_UNREADABLE), ("text", IssueCode.DICOM_INVALID)]:
        with pytest.raises(ImageReadError) as info:
            read_image(tmp_path / folder)
        assert info.value.issue.code is code


def test_undecodable_transfer_syntax_names_it(tmp_path: Path) -> None:
    (path,) = write_ct_series(tmp_path / "s", random_hu((8, 8, 1)), AXIAL)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.save_as(path)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert info.value.issue.code is IssueCode.TRANSFER_SYNTAX_UNSUPPORTED
    assert MPEG2MPML.name in info.value.issue.message


def test_preamble_less_dicom_is_read(tmp_path: Path) -> None:
    hu = random_hu((4, 3, 1))
    (path,) = write_ct_series(tmp_path / "s", hu, AXIAL)
    ds = pydicom.dcmread(path)
    ds.file_meta = FileMetaDataset()
    ds.preamble = None
    bare = tmp_path / "bare"
    ds.save_as(bare, enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert bare.read_bytes()[128:132] != b"DICM"
    volume = read_image(bare)
    np.testing.assert_array_equal(volume.array, hu[:, :, 0])


def test_single_file_without_geometry_falls_back_with_a_warning(tmp_path: Path) -> None:
    (path,) = write_ct_series(tmp_path / "s", random_hu((4, 3, 1)), AXIAL)
    ds = pydicom.dcmread(path)
    del ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing
    ds.save_as(path)
    volume = read_dicom_file(path)
    np.testing.assert_allclose(volume.affine, LPS_TO_RAS @ np.diag([1.0, 1.0, 2.5, 1.0]))
    assert [w.code for w in volume.warnings] == [IssueCode.DICOM_GEOMETRY_MISSING]


def write_enhanced_ct(path: Path, hu: np.ndarray, affine_ras: np.ndarray, frame_order: list[int]) -> None:
    """One enhanced CT file whose frames hold the slices ``frame_order`` of ``hu`` with per-frame positions."""
    orientation, spacing, step, origin = _geometry(affine_ras)
    ds = _image_dataset(EnhancedCTImageStorage, generate_uid(), generate_uid())
    shared = Dataset()
    shared.PlaneOrientationSequence = [Dataset()]
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = orientation
    shared.PixelMeasuresSequence = [Dataset()]
    shared.PixelMeasuresSequence[0].PixelSpacing = spacing
    shared.PixelValueTransformationSequence = [Dataset()]
    shared.PixelValueTransformationSequence[0].RescaleSlope = "1"
    shared.PixelValueTransformationSequence[0].RescaleIntercept = "-1024"
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.PerFrameFunctionalGroupsSequence = []
    for k in frame_order:
        frame = Dataset()
        frame.PlanePositionSequence = [Dataset()]
        frame.PlanePositionSequence[0].ImagePositionPatient = _ds_numbers(origin + k * step)
        ds.PerFrameFunctionalGroupsSequence.append(frame)
    frames = np.stack([(hu[:, :, k].T + 1024).astype(np.int16) for k in frame_order])
    ds.set_pixel_data(frames, "MONOCHROME2", 16, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)


def test_enhanced_multiframe_is_stacked_by_frame_positions(tmp_path: Path) -> None:
    hu = random_hu((5, 4, 4))
    write_enhanced_ct(tmp_path / "enhanced.dcm", hu, OBLIQUE, frame_order=[2, 0, 3, 1])
    volume = read_image(tmp_path / "enhanced.dcm", dims=3)
    np.testing.assert_array_equal(volume.array, hu)
    np.testing.assert_allclose(volume.affine, OBLIQUE, atol=1e-6)


def test_enhanced_multiframe_with_repeated_positions_is_refused(tmp_path: Path) -> None:
    write_enhanced_ct(tmp_path / "e.dcm", random_hu((4, 4, 3)), AXIAL, frame_order=[0, 1, 2, 0, 1, 2])
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "e.dcm")
    assert info.value.issue.code is IssueCode.DICOM_UNSUPPORTED_IMAGE


def test_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_ct_series(tmp_path / "s", random_hu((4, 5, 6)), AXIAL)
    monkeypatch.setattr(imaging, "MAX_VOXELS", 4 * 5 * 6 - 1)
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "s")
    assert info.value.issue.code is IssueCode.IMAGE_UNREADABLE and "MAX_VOXELS" in info.value.issue.message
    monkeypatch.setattr(imaging, "MAX_VOXELS", 4 * 5 * 6)
    assert read_image(tmp_path / "s").array.shape == (4, 5, 6)


def test_dims(tmp_path: Path) -> None:
    (single,) = write_ct_series(tmp_path / "one", random_hu((4, 3, 1)), AXIAL)
    write_ct_series(tmp_path / "vol", random_hu((4, 3, 2)), AXIAL)
    assert read_image(tmp_path / "one").array.shape == (4, 3, 1)
    assert read_image(tmp_path / "one", dims=2).array.shape == (4, 3)
    assert read_image(single, dims=2).array.shape == (4, 3)
    assert read_image(tmp_path / "vol", dims=3).array.shape == (4, 3, 2)
    for path, dims in [(single, 3), (tmp_path / "one", 3), (tmp_path / "vol", 2)]:
        with pytest.raises(ImageReadError) as info:
            read_image(path, dims=dims)
        assert info.value.issue.code is IssueCode.IMAGE_WRONG_DIMENSIONS
    with pytest.raises(ValueError, match="dims"):
        read_image(single, dims=4)


def test_with_dims_gives_what_reading_with_dims_gives_without_reading_again(tmp_path: Path) -> None:
    (single,) = write_ct_series(tmp_path / "one", random_hu((4, 3, 1)), AXIAL)
    write_ct_series(tmp_path / "vol", random_hu((4, 3, 2)), AXIAL)
    for path, dims in [(tmp_path / "one", 2), (single, 2), (tmp_path / "vol", 3), (tmp_path / "one", None)]:
        read = read_image(path)
        shape = read.array.shape
        converted, expected = with_dims(read, dims), read_image(path, dims=dims)
        np.testing.assert_array_equal(converted.array, expected.array)
        np.testing.assert_array_equal(converted.affine, expected.affine)
        assert converted.meta == expected.meta and converted.source == expected.source
        assert read.array.shape == shape  # the volume given is left as it was
    for path, dims in [(single, 3), (tmp_path / "one", 3), (tmp_path / "vol", 2)]:
        with pytest.raises(ImageReadError) as info:
            with_dims(read_image(path), dims)
        assert info.value.issue.code is IssueCode.IMAGE_WRONG_DIMENSIONS
    with pytest.raises(ValueError, match="dims"):
        with_dims(read_image(single), 4)


def test_readers_can_be_called_directly(tmp_path: Path) -> None:
    paths = write_ct_series(tmp_path / "s", random_hu((3, 3, 2)), AXIAL)
    assert read_dicom_series(tmp_path / "s").array.shape == (3, 3, 2)
    assert read_dicom_file(paths[0]).array.shape == (3, 3)
    (tmp_path / "note.txt").write_text("not dicom")
    for reader, target, code in [
        (read_dicom_file, tmp_path / "note.txt", IssueCode.DICOM_INVALID),
        (read_dicom_series, tmp_path / "absent", IssueCode.IMAGE_NOT_FOUND),
        (read_nifti, tmp_path / "absent.nii.gz", IssueCode.IMAGE_NOT_FOUND),
    ]:
        with pytest.raises(ImageReadError) as info:
            reader(target)
        assert info.value.issue.code is code


# --------------------------------------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------------------------------------


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray, **header: object) -> nib.Nifti1Image:
    image = nib.Nifti1Image(data, affine)
    for key, value in header.items():
        image.header[key] = value
    nib.save(image, path)
    return image


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_round_trip(tmp_path: Path, suffix: str) -> None:
    data = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    save_nifti(tmp_path / f"img{suffix}", data, OBLIQUE)
    volume = read_image(tmp_path / f"img{suffix}")
    assert volume.format == ImageFormat.NIFTI
    np.testing.assert_array_equal(volume.array, data)
    np.testing.assert_allclose(volume.affine, OBLIQUE, atol=1e-5)
    assert volume.meta["affine_source"] == "sform" and volume.warnings == []


def test_an_uncompressed_nifti_named_nii_gz_is_read_as_what_it_is(tmp_path: Path) -> None:
    data = np.random.default_rng(1).normal(size=(5, 6, 7)).astype(np.float32)
    save_nifti(tmp_path / "plain.nii", data, OBLIQUE)
    (tmp_path / "plain.nii").rename(tmp_path / "plain.nii.gz")
    volume = read_image(tmp_path / "plain.nii.gz")
    np.testing.assert_array_equal(volume.array, data)
    np.testing.assert_allclose(volume.affine, OBLIQUE, atol=1e-5)


def test_nifti_scaling_is_applied(tmp_path: Path) -> None:
    stored = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    image = nib.Nifti1Image(stored, AXIAL)
    image.header.set_slope_inter(2.0, -5.0)
    nib.save(image, tmp_path / "s.nii.gz")
    np.testing.assert_array_equal(read_image(tmp_path / "s.nii.gz").array, stored * 2.0 - 5.0)


def test_nifti_qform_sform(tmp_path: Path) -> None:
    data = np.zeros((4, 4, 4), np.float32)
    shifted = OBLIQUE.copy()
    shifted[:3, 3] += [0.0, 0.5, 0.0]
    cases = {
        "agree": (OBLIQUE, 1, OBLIQUE, 2),
        "disagree": (shifted, 1, OBLIQUE, 2),
        "qform": (shifted, 1, None, 0),
    }
    for name, (qform, qcode, sform, scode) in cases.items():
        image = nib.Nifti1Image(data, None)
        image.set_qform(qform, code=qcode)
        image.set_sform(sform, code=scode)
        nib.save(image, tmp_path / f"{name}.nii.gz")
    assert read_image(tmp_path / "agree.nii.gz").meta["affine_source"] == "sform"
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "disagree.nii.gz")
    assert info.value.issue.code is IssueCode.NIFTI_QFORM_SFORM_MISMATCH
    qform_only = read_image(tmp_path / "qform.nii.gz")
    np.testing.assert_allclose(qform_only.affine, shifted, atol=1e-4)
    assert qform_only.meta["affine_source"] == "qform"


def test_nifti_without_orientation_uses_voxel_sizes_with_a_warning(tmp_path: Path) -> None:
    image = nib.Nifti1Image(np.zeros((3, 4, 5), np.float32), None)
    image.header.set_zooms((2.0, 3.0, 4.0))
    image.set_qform(None, code=0)
    image.set_sform(None, code=0)
    nib.save(image, tmp_path / "bare.nii")
    volume = read_image(tmp_path / "bare.nii")
    assert volume.spacing == pytest.approx((2.0, 3.0, 4.0))
    assert volume.meta["affine_source"] == "base"
    assert [(w.code, w.severity) for w in volume.warnings] == [(IssueCode.NIFTI_INVALID, Severity.WARNING)]


def test_nifti_spatial_unit_is_converted_to_mm(tmp_path: Path) -> None:
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.diag([0.001, 0.001, 0.002, 1.0]))
    image.header.set_xyzt_units(xyz="meter")
    nib.save(image, tmp_path / "m.nii.gz")
    assert read_image(tmp_path / "m.nii.gz").spacing == pytest.approx((1.0, 1.0, 2.0))


def test_nifti_dimensions(tmp_path: Path) -> None:
    save_nifti(tmp_path / "singleton.nii.gz", np.zeros((3, 4, 5, 1), np.float32), AXIAL)
    save_nifti(tmp_path / "series.nii.gz", np.zeros((3, 4, 5, 2), np.float32), AXIAL)
    save_nifti(tmp_path / "flat.nii.gz", np.zeros((3, 4), np.float32), AXIAL)
    assert read_image(tmp_path / "singleton.nii.gz").array.shape == (3, 4, 5)
    assert read_image(tmp_path / "flat.nii.gz", dims=2).array.shape == (3, 4)
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "series.nii.gz")
    assert info.value.issue.code is IssueCode.IMAGE_WRONG_DIMENSIONS


def test_invalid_nifti(tmp_path: Path) -> None:
    (tmp_path / "garbage.nii.gz").write_bytes(gzip.compress(b"this is not a header" * 40))
    (tmp_path / "plain.nii").write_bytes(b"\x00" * 20)
    save_nifti(tmp_path / "whole.nii.gz", np.ones((16, 16, 16), np.float32), AXIAL)
    raw = gzip.decompress((tmp_path / "whole.nii.gz").read_bytes())
    (tmp_path / "truncated.nii.gz").write_bytes(gzip.compress(raw[: len(raw) // 2]))
    (tmp_path / "cut.nii.gz").write_bytes((tmp_path / "whole.nii.gz").read_bytes()[:200])
    save_nifti(tmp_path / "nan.nii", np.full((2, 2, 2), np.nan, np.float32), AXIAL)
    save_nifti(tmp_path / "complex.nii", np.zeros((2, 2, 2), np.complex64), AXIAL)
    for name in ["garbage.nii.gz", "plain.nii", "truncated.nii.gz", "cut.nii.gz", "nan.nii", "complex.nii"]:
        with pytest.raises(ImageReadError) as info:
            read_image(tmp_path / name)
        assert info.value.issue.code is IssueCode.NIFTI_INVALID, name
        assert check_image(tmp_path / name) == [info.value.issue]


def test_dicom_and_nifti_of_the_same_anatomy_agree_in_world_coordinates(tmp_path: Path) -> None:
    """A bright voxel written into a DICOM series (LPS) and a NIfTI (RAS) lands on the same world point."""
    shape, marked = (7, 6, 5), (5, 1, 3)
    hu = np.full(shape, -1000.0, np.float32)
    hu[marked] = 1500.0
    write_ct_series(tmp_path / "dicom", hu, OBLIQUE)
    save_nifti(tmp_path / "same.nii.gz", hu, OBLIQUE)
    points = []
    for path in (tmp_path / "dicom", tmp_path / "same.nii.gz"):
        volume = read_image(path)
        index = np.unravel_index(int(np.argmax(volume.array)), volume.array.shape)
        points.append((volume.affine @ [*index, 1])[:3])
    np.testing.assert_allclose(points[0], points[1], atol=1e-4)
    np.testing.assert_allclose(points[0], (OBLIQUE @ [*marked, 1])[:3], atol=1e-4)


# --------------------------------------------------------------------------------------------------------
# paths
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    root = tmp_path / "cohort"
    (root / "images").mkdir(parents=True)
    save_nifti(root / "images" / "a.nii.gz", np.zeros((2, 2, 2), np.float32), AXIAL)
    save_nifti(tmp_path / "outside.nii.gz", np.zeros((2, 2, 2), np.float32), AXIAL)
    return root


def test_missing_image(cohort: Path) -> None:
    issues = check_image("images/absent.nii.gz", root=cohort)
    assert issues == [Issue(IssueCode.IMAGE_NOT_FOUND, issues[0].message, "images/absent.nii.gz")]
    with pytest.raises(ImageReadError):
        read_image(cohort / "nowhere")


def test_unfetched_pacs_reference_names_the_import(cohort: Path) -> None:
    (issue,) = check_image("dicomweb:1.2.3/4.5.6", root=cohort)
    assert issue.code == IssueCode.IMAGE_NOT_FOUND
    assert "mmdx import dicomweb URL COHORT" in issue.message


def test_relative_paths_and_sources(cohort: Path) -> None:
    assert read_image("images/a.nii.gz", root=cohort).source == "images/a.nii.gz"
    assert read_image(cohort / "images" / "a.nii.gz", root=cohort).source == "images/a.nii.gz"
    assert read_image("./images/../images/a.nii.gz", root=cohort).array.shape == (2, 2, 2)


@pytest.mark.parametrize("where", ["dotdot", "absolute", "symlink", "symlinked-folder"])
def test_paths_escaping_the_cohort(cohort: Path, where: str) -> None:
    outside = cohort.parent / "outside.nii.gz"
    if where == "dotdot":
        path = "../outside.nii.gz"
    elif where == "absolute":
        path = str(outside)
    elif where == "symlink":
        (cohort / "images" / "link.nii.gz").symlink_to(outside)
        path = "images/link.nii.gz"
    else:
        (cohort / "elsewhere").symlink_to(cohort.parent, target_is_directory=True)
        path = "elsewhere/outside.nii.gz"
    with pytest.raises(ImageReadError) as info:
        read_image(path, root=cohort)
    assert info.value.issue.code is IssueCode.PATH_ESCAPES_COHORT
    assert check_image(path, root=cohort)[0].code is IssueCode.PATH_ESCAPES_COHORT


def test_symlink_inside_the_cohort_is_followed(cohort: Path) -> None:
    (cohort / "alias.nii.gz").symlink_to(cohort / "images" / "a.nii.gz")
    volume = read_image("alias.nii.gz", root=cohort)
    assert volume.source == "alias.nii.gz" and volume.format == ImageFormat.NIFTI


def test_series_slice_linked_from_outside_the_cohort_is_refused(cohort: Path, tmp_path: Path) -> None:
    paths = write_ct_series(cohort / "ct", random_hu((3, 3, 3)), AXIAL)
    stolen = tmp_path / "stolen.dcm"
    shutil.move(paths[0], stolen)
    paths[0].symlink_to(stolen)
    with pytest.raises(ImageReadError) as info:
        read_image("ct", root=cohort)
    assert info.value.issue.code is IssueCode.PATH_ESCAPES_COHORT
    assert read_image(cohort / "ct").array.shape == (3, 3, 3)  # without a cohort root the link is fine


def test_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    shutil.copy(corpus_file("CT_small.dcm"), tmp_path / "scan.dcm")
    save_nifti(tmp_path / "volume.nii", np.zeros((2, 2, 2), np.float32), AXIAL)
    (tmp_path / "volume.nii").rename(tmp_path / "volume.img")
    for name, code in [
        ("photo.png", IssueCode.IMAGE_FORMAT_UNKNOWN),
        ("volume.img", IssueCode.IMAGE_FORMAT_UNKNOWN),
    ]:
        with pytest.raises(ImageReadError) as info:
            read_image(tmp_path / name)
        assert info.value.issue.code is code
    assert "rename" in check_image(tmp_path / "volume.img")[0].message
    assert read_image(tmp_path / "scan.dcm").format == ImageFormat.DICOM_FILE
    shutil.make_archive(str(tmp_path / "series"), "zip", tmp_path, "scan.dcm")  # a series as delivered
    (issue,) = check_image(tmp_path / "series.zip")
    assert issue.code is IssueCode.IMAGE_FORMAT_UNKNOWN and "zip archive; unzip it" in issue.message


def test_image_volume_properties() -> None:
    volume = ImageVolume(np.zeros((2, 3), np.float32), np.diag([2.0, 3.0, 4.0, 1.0]), "x", ImageFormat.NIFTI)
    assert volume.ndim == 2 and volume.spacing == (2.0, 3.0)


def test_a_supported_syntax_that_decodes_badly_is_unreadable_naming_the_decoder(caplog) -> None:
    """pydicom's JPEG Extended test file: the syntax is supported, but its data do not decode. It was
    reported as TRANSFER_SYNTAX_UNSUPPORTED, with six decoder tracebacks on the console."""
    import logging

    from pydicom.data import get_testdata_file

    path = get_testdata_file("JPEG-lossy.dcm")
    with caplog.at_level(logging.INFO):
        issues = check_image(path)
    assert [i.code for i in issues] == [IssueCode.IMAGE_UNREADABLE]
    message = issues[0].message
    assert "JPEG Extended" in message and "could not be decoded by pylibjpeg" in message
    assert "libjpeg error" in message and "gdcm, pillow: not supported" in message
    assert not [r for r in caplog.records if r.name.startswith("pydicom")]  # kept out of the console
    with caplog.at_level(logging.DEBUG):  # mmdx -v: the decoders' own log, tracebacks included
        check_image(path)
    assert any(r.name.startswith("pydicom") and r.exc_info for r in caplog.records)
