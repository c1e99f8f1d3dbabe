"""Window/level, HU on the model grid, orientation, overlay, contour and PNG encoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.image import imread

from mmdx.config import ImageConfig
from mmdx.data.dataset import preprocess_volume
from mmdx.errors import MmdxError
from mmdx.review import WINDOW_PRESETS, CaseImage, WindowLevel, encode_png, window_presets
from mmdx.review.rendering import CONTOUR_RGB, apply_window, hu_on_model_grid, mask_on_model_grid, to_display


@pytest.mark.parametrize(
    ("preset", "width", "level"),
    [("lung", 1500, -600), ("soft_tissue", 400, 40), ("bone", 1800, 400)],
)
def test_presets_are_the_standard_ct_windows(preset: str, width: float, level: float) -> None:
    window = WINDOW_PRESETS[preset]
    assert (window.width, window.level) == (width, level)
    hu = np.array([window.low - 100, window.low, window.level, window.high, window.high + 100])
    assert apply_window(hu, window).tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])


def test_model_window_preset_matches_the_model_input() -> None:
    config = ImageConfig(dims=2, shape=[16, 16], window=(-1000.0, 400.0))
    model = window_presets(config)["model"]
    assert (model.low, model.high) == (-1000.0, 400.0)
    with pytest.raises(MmdxError, match="width"):
        WindowLevel("bad", 0.0, 0.0)


def _phantom(shape: tuple[int, ...], low: float, high: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, shape).astype(np.float32)


CONFIGS = [
    ((40, 30), ImageConfig(dims=2, shape=[16, 16], spacing=None, intensity="window")),
    ((40, 30), ImageConfig(dims=2, shape=[24, 24], spacing=[2.0, 2.0], intensity="window")),
    ((20, 18, 12), ImageConfig(dims=3, shape=[16, 16, 16], spacing=None, intensity="window")),
]
AFFINE = np.diag([1.5, 1.2, 2.0, 1.0])


@pytest.mark.parametrize(("shape", "config"), CONFIGS)
def test_hu_on_model_grid_is_what_the_model_saw_inside_its_window(
    shape: tuple[int, ...], config: ImageConfig
) -> None:
    """For an image inside the model's window, windowing the HU grid gives exactly the model input, on the
    same grid (same affine, same shape)."""
    low, high = config.window
    array = _phantom(shape, low, high)
    hu, hu_affine = hu_on_model_grid(array, AFFINE, config)
    model_input, model_affine = preprocess_volume(array, AFFINE, config)
    assert hu.shape == tuple(config.shape)
    np.testing.assert_allclose(hu_affine, model_affine)
    inside = model_input[0] > 0  # padding is the image minimum here, 0 in the model input
    np.testing.assert_allclose(((hu - low) / (high - low))[inside], model_input[0][inside], atol=2e-5)


@pytest.mark.parametrize(("shape", "config"), CONFIGS)
def test_hu_beyond_the_model_window_survive(shape: tuple[int, ...], config: ImageConfig) -> None:
    array = _phantom(shape, -1024, 1800, seed=1)
    hu, _ = hu_on_model_grid(array, AFFINE, config)
    assert hu.max() > config.window[1] + 200  # bone is not clipped at the model's 400 HU
    assert hu.min() >= -1024 - 1e-3 and hu.max() <= 1800 + 1e-3  # interpolation never overshoots


def test_mask_moves_with_the_image_and_small_lesions_survive() -> None:
    config = ImageConfig(dims=2, shape=[16, 16], spacing=None)
    image = np.zeros((32, 32), np.float32)
    hu, model_affine = hu_on_model_grid(image, np.eye(4), config)
    mask = np.zeros((32, 32), np.float32)
    mask[4:10, 20:28] = 1
    moved = mask_on_model_grid(mask, np.eye(4), model_affine, hu.shape)
    assert moved.dtype == bool and moved.shape == (16, 16)
    assert moved[2:5, 10:14].all() and moved.sum() == 3 * 4
    speck = np.zeros((32, 32), np.float32)
    speck[7, 7] = 1  # one original voxel: a quarter of a model voxel
    assert mask_on_model_grid(speck, np.eye(4), model_affine, hu.shape).sum() == 1


def test_display_puts_anterior_on_top_and_patient_right_on_the_left() -> None:
    plane = np.zeros((4, 3))  # [x (left -> right), y (posterior -> anterior)]
    plane[3, 2] = 1  # most right, most anterior
    shown = to_display(plane)
    assert shown.shape == (3, 4)
    assert shown[0, 0] == 1  # top row, left column


def _volume(attribution_slice: int | None = None) -> CaseImage:
    hu = np.full((8, 8, 5), -600.0, np.float32)
    attribution = None
    if attribution_slice is not None:
        attribution = np.zeros_like(hu)
        attribution[2:4, 2:4, attribution_slice] = 1.0
        attribution[0, 0, 0] = -5.0  # negative evidence is never drawn and never picks the slice
    mask = np.zeros(hu.shape, bool)
    mask[4:7, 4:7, :] = True
    return CaseImage(hu, (1.0, 1.0, 2.0), attribution, mask)


def test_default_slice_is_the_one_with_most_positive_attribution() -> None:
    assert _volume(3).default_slice() == 3
    assert _volume(None).default_slice() == 2  # the middle one without a map
    assert CaseImage(np.zeros((8, 8), np.float32), (1.0, 1.0)).default_slice() == 0


def test_overlay_opacity_zero_or_off_shows_the_plain_image() -> None:
    image = _volume(1)
    window = WINDOW_PRESETS["lung"]
    plain = image.render(1, window, opacity=0.5, show_overlay=False, show_contour=False)
    assert (plain == plain[0, 0]).all()  # uniform grey: -600 HU is the lung level
    assert plain[0, 0, 0] == 128
    transparent = image.render(1, window, opacity=0.0, show_overlay=True, show_contour=False)
    np.testing.assert_array_equal(plain, transparent)
    shown = image.render(1, window, opacity=1.0, show_overlay=True, show_contour=False)
    changed = (shown != plain).any(axis=2)
    assert 0 < changed.mean() < 0.2  # only the attributed voxels are coloured
    elsewhere = image.render(4, window, opacity=1.0, show_overlay=True, show_contour=False)
    np.testing.assert_array_equal(elsewhere, plain)  # no attribution on that slice


def test_contour_outlines_the_mask_only() -> None:
    image = _volume(None)
    window = WINDOW_PRESETS["lung"]
    with_contour = image.render(0, window, show_contour=True)
    outline = (with_contour == CONTOUR_RGB).all(axis=2)
    assert outline.any()
    rows, cols = np.nonzero(outline)
    interior = with_contour[(rows.min() + rows.max()) // 2, (cols.min() + cols.max()) // 2]
    assert tuple(interior) != CONTOUR_RGB  # an outline, not a filled area
    assert not (image.render(0, window, show_contour=False) == CONTOUR_RGB).all(axis=2).any()


def test_pixels_keep_the_grid_proportions() -> None:
    image = CaseImage(np.zeros((10, 20), np.float32), (2.0, 1.0))  # x 10 voxels of 2 mm, y 20 of 1 mm
    rgb = image.render(0, WINDOW_PRESETS["lung"], target_pixels=40)
    assert rgb.shape == (40, 40, 3)  # 20 mm by 20 mm, square


def test_mismatched_maps_and_bad_arguments_are_refused() -> None:
    with pytest.raises(MmdxError, match="attribution"):
        CaseImage(np.zeros((8, 8), np.float32), (1.0, 1.0), attribution=np.zeros((4, 4), np.float32))
    image = _volume(0)
    with pytest.raises(MmdxError, match="slice 9"):
        image.render(9, WINDOW_PRESETS["lung"])
    with pytest.raises(MmdxError, match="opacity"):
        image.render(0, WINDOW_PRESETS["lung"], opacity=1.5)


def test_png_round_trip() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (12, 9, 3), dtype=np.uint8)
    png = encode_png(rgb)
    assert png.startswith(b"\x89PNG")
    decoded = imread(io.BytesIO(png))
    np.testing.assert_array_equal(np.round(decoded[..., :3] * 255).astype(np.uint8), rgb)
    with pytest.raises(MmdxError):
        encode_png(rgb[..., 0])
