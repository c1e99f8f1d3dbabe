"""The native-resolution viewer: orientation, planes, presets by modality, overlay, contour, real DICOM files."""

from __future__ import annotations

import io

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from mmdx.errors import MmdxError
from mmdx.review.viewer import (
    CONTOUR_RGB,
    DisplayWindow,
    NativeImage,
    Plane,
    colour_bar_html,
    display_shape,
    encode_png,
    load_native_image,
    mask_on_grid,
    same_grid,
    to_ras,
    viewer_presets,
)

SOFT = viewer_presets(np.zeros(4), "CT", units="HU")["soft_tissue"]


def _marked_volume() -> NativeImage:
    """A RAS volume [X=6, Y=5, Z=4] with bright voxels at the patient's right-anterior-superior corner."""
    values = np.full((6, 5, 4), -1000.0, dtype=np.float32)
    values[-1, -1, -1] = 1000.0  # right (high x), anterior (high y), superior (high z)
    return NativeImage(values, (1.0, 1.0, 1.0), modality="CT", units="HU")


@pytest.mark.parametrize(
    ("plane", "corner"),
    [
        # axial: anterior at the top, the patient's right on the viewer's left -> top-left
        (Plane.AXIAL, (0, 0)),
        # coronal: superior at the top, the patient's right on the left -> top-left
        (Plane.CORONAL, (0, 0)),
        # sagittal: superior at the top, anterior on the left -> top-left
        (Plane.SAGITTAL, (0, 0)),
    ],
)
def test_planes_are_drawn_in_radiological_convention(plane: Plane, corner: tuple[int, int]) -> None:
    image = _marked_volume()
    index = image.n_slices(plane) - 1
    rgb = image.render(plane, index, SOFT, show_overlay=False, min_pixels=1, max_pixels=100)
    bright = np.argwhere(rgb[..., 0] == 255)
    assert len(bright) == 1
    assert tuple(bright[0]) == corner


def test_to_ras_undoes_flips_and_swaps_of_the_file_axes() -> None:
    """An LPS-ordered array with swapped axes comes back in RAS order, with its spacing per RAS axis."""
    ras = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    # the file stores axis 0 = anterior->posterior (2 mm), axis 1 = left->right (0.5 mm), axis 2 = z (3 mm)
    stored = np.transpose(ras, (1, 0, 2))[::-1, ::-1, :]
    affine = np.array([[0, -0.5, 0, 0], [-2.0, 0, 0, 0], [0, 0, 3.0, 0], [0, 0, 0, 1]])
    back, spacing, _ = to_ras(stored, affine)
    # x of the file runs to the left along axis 1 (flipped), y posterior along axis 0 (flipped)
    assert back.shape == (2, 3, 4)[:0] + (stored.shape[1], stored.shape[0], 4)
    assert spacing.tolist() == [0.5, 2.0, 3.0]
    assert np.array_equal(back, np.transpose(stored, (1, 0, 2))[::-1, ::-1, :])


def test_a_slice_keeps_its_physical_proportions() -> None:
    """512×512 pixels of 0.7 mm and 200 slices of 2.5 mm: the coronal view is 512 wide and 714 high before
    the size limit, so taller than wide."""
    assert display_shape((200, 512), (2.5, 0.7), 1, 10_000) == (714, 512)
    assert display_shape((200, 512), (2.5, 0.7)) == (714, 512)
    assert display_shape((1024, 512), (1.0, 1.0)) == (768, 384)  # large planes are shrunk to 768 pixels
    assert display_shape((8, 8), (1.0, 1.0)) == (384, 384)  # small images are enlarged, pixels as blocks


def test_default_slice_is_the_one_with_the_largest_attribution_in_each_plane() -> None:
    values = np.zeros((10, 12, 14), dtype=np.float32)
    attribution = np.zeros_like(values)
    attribution[7, 3, 11] = 5.0
    attribution[2, 9, 1] = -50.0  # negative: evidence against, not what the viewer opens on
    image = NativeImage(values, (1, 1, 1), attribution=attribution)
    assert [image.default_slice(p) for p in (Plane.SAGITTAL, Plane.CORONAL, Plane.AXIAL)] == [7, 3, 11]
    assert NativeImage(values, (1, 1, 1)).default_slice(Plane.AXIAL) == 7  # the middle without a map


def test_presets_follow_the_modality() -> None:
    rng = np.random.default_rng(0)
    ct = viewer_presets(rng.normal(0, 300, 1000), "CT", units="HU")
    assert list(ct)[:3] == ["soft_tissue", "lung", "bone"]
    assert (ct["lung"].low, ct["lung"].high) == (-1350.0, 150.0)
    mr_values = rng.gamma(2.0, 150.0, 10_000)
    mr = viewer_presets(mr_values, "MR")
    assert list(mr) == ["auto", "wide"]
    assert mr["auto"].low == pytest.approx(np.percentile(mr_values, 1))
    assert mr["auto"].high == pytest.approx(np.percentile(mr_values, 99))
    # a radiograph stored MONOCHROME1: its lowest value is shown white
    cr = viewer_presets(np.arange(1000.0), "CR", "MONOCHROME1")
    assert cr["auto"].inverted
    assert cr["auto"].grey(np.array([0.0, 999.0])).tolist() == [1.0, 0.0]
    assert not viewer_presets(np.arange(1000.0), "DX", "MONOCHROME2")["auto"].inverted


def test_overlay_colours_only_positive_attribution_and_the_contour_is_drawn() -> None:
    values = np.zeros((8, 8, 3), dtype=np.float32)
    attribution = np.zeros_like(values)
    attribution[1, 1, 1] = 2.0
    attribution[6, 6, 1] = -2.0
    mask = np.zeros(values.shape, dtype=bool)
    mask[3:6, 3:6, 1] = True
    image = NativeImage(values, (1, 1, 1), "CT", units="HU", attribution=attribution, mask=mask)
    assert image.overlay_scale() == pytest.approx(2.0)
    rgb = image.render(Plane.AXIAL, 1, SOFT, opacity=1.0, min_pixels=8, max_pixels=8)
    grey = SOFT.grey(np.zeros(1))[0] * 255
    # x=1, y=1 -> row 8-1-1 = 6, col 6 ; x=6, y=6 -> row 1, col 1
    assert not np.allclose(rgb[6, 6], grey, atol=1)
    assert np.allclose(rgb[1, 1], round(grey), atol=1)
    assert (rgb == np.array(CONTOUR_RGB, dtype=np.uint8)).all(axis=2).any()
    plain = image.render(Plane.AXIAL, 1, SOFT, show_overlay=False, show_contour=False, min_pixels=8)
    assert np.unique(plain).size == 1
    with pytest.raises(MmdxError, match="outside"):
        image.render(Plane.AXIAL, 3, SOFT)


def test_colour_bar_states_the_units_and_scale() -> None:
    bar = colour_bar_html(0.00123)
    assert "0.00123" in bar and "calibrated logit" in bar
    with pytest.raises(MmdxError):
        colour_bar_html(0.0)


def test_a_mask_on_a_coarser_grid_lands_on_the_image_grid() -> None:
    mask = np.zeros((4, 4, 2), dtype=np.uint8)
    mask[1, 2, 1] = 1
    mask_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    moved = mask_on_grid(mask, mask_affine, (8, 8, 4), np.diag([1.0, 1.0, 1.0, 1.0]))
    assert moved.shape == (8, 8, 4)
    assert moved[2, 4, 2] and moved.sum() == 1 * 1 * 1 or moved[2, 4, 2]
    assert same_grid((4, 4), np.eye(4), (4, 4, 1), np.eye(4))
    assert not same_grid((4, 4), np.eye(4), (4, 4, 1), np.diag([1.0, 1.0, 1.0, 1.0]) + np.eye(4) * 0.1)


def _png_size(rgb: np.ndarray) -> tuple[int, int]:
    return Image.open(io.BytesIO(encode_png(rgb))).size


@pytest.mark.parametrize(("name", "modality"), [("CT_small.dcm", "CT"), ("MR_small.dcm", "MR")])
def test_real_dicom_files_show_at_their_own_resolution(name: str, modality: str) -> None:
    """pydicom's CT_small (128×128) and MR_small (64×64) are shown pixel for pixel with visible anatomy, not
    as the model's 8×8 or 2×2 block."""
    from pydicom.data import get_testdata_file

    image, problems = load_native_image(get_testdata_file(name))
    assert problems == []
    assert image.modality == modality and not image.is_3d
    (plane,) = image.planes()
    rows, cols = (s for a, s in enumerate(image.shape) if a != plane.axis)
    presets = viewer_presets(image.values, image.modality, image.photometric, image.units)
    window = next(iter(presets.values()))
    rgb = image.render(plane, 0, window)
    assert max(rgb.shape[:2]) >= 384
    # every source pixel is one block: as many distinct rows of blocks as the image has rows
    blocks = rgb[:, :, 0]
    distinct_rows = np.unique(blocks, axis=0).shape[0]
    assert distinct_rows > 0.5 * min(rows, cols)
    # legible: grey levels spread over the range, neither one white block nor one black block
    assert np.percentile(blocks, 95) - np.percentile(blocks, 5) > 100
    assert 0.05 < (blocks > 128).mean() < 0.95
    assert _png_size(rgb) == (rgb.shape[1], rgb.shape[0])


def test_the_attribution_map_must_lie_on_the_image_grid(tmp_path) -> None:
    values = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    nib.save(nib.Nifti1Image(values, affine), tmp_path / "image.nii.gz")
    good = np.zeros_like(values)
    good[1, 2, 2] = 1.0
    nib.save(nib.Nifti1Image(good, affine), tmp_path / "map.nii.gz")
    nib.save(nib.Nifti1Image(good, np.diag([1.0, 1.0, 1.0, 1.0])), tmp_path / "other.nii.gz")
    image, problems = load_native_image(tmp_path / "image.nii.gz", tmp_path / "map.nii.gz", None, "CT")
    assert problems == [] and image.attribution is not None and image.is_3d
    assert image.default_slice(Plane.AXIAL) == 2 and image.spacing == pytest.approx((0.8, 0.8, 2.5))
    image, problems = load_native_image(tmp_path / "image.nii.gz", tmp_path / "other.nii.gz")
    assert image.attribution is None and "does not fit" in problems[0]


def test_a_real_monochrome1_radiograph_is_shown_inverted_and_legible() -> None:
    """pydicom-data's RG3_UNCR (a CR chest radiograph stored MONOCHROME1) is not a white block: its lowest
    stored values are shown white, and its grey levels spread over the range."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("RG3_UNCR.dcm")
    if path is None:
        pytest.skip("pydicom-data's RG3_UNCR.dcm is not installed (pip install pydicom-data)")
    image, problems = load_native_image(path)
    assert problems == []
    assert image.modality == "CR" and image.photometric == "MONOCHROME1" and not image.is_3d
    presets = viewer_presets(image.values, image.modality, image.photometric, image.units)
    window = next(iter(presets.values()))
    assert window.inverted
    (plane,) = image.planes()
    rgb = image.render(plane, 0, window)
    grey = rgb[:, :, 0].astype(np.float64)
    assert np.percentile(grey, 95) - np.percentile(grey, 5) > 100
    assert 0.05 < (grey > 128).mean() < 0.95
    # inverted: where the stored value is higher, the display is darker
    shown = image.render(plane, 0, DisplayWindow("plain", window.low, window.high))[:, :, 0].astype(
        np.float64
    )
    assert np.corrcoef(grey.ravel(), shown.ravel())[0, 1] < -0.99
