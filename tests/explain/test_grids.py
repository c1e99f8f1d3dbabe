"""Maps between the model grid and the original image grid agree with the preprocessing itself."""

from __future__ import annotations

import numpy as np
import pytest

from mmdx.config import ImageConfig
from mmdx.data.dataset import preprocess_volume
from mmdx.errors import MmdxError
from mmdx.explain.grids import ImageGrid, footprint_on_model_grid, resample_to_reference, to_original_grid


def _affine(spacing, origin, flip_x: bool = False) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    if flip_x:
        affine[0, 0] = -affine[0, 0]
    return affine


def test_same_grid_is_the_identity():
    affine = _affine((1.5, 1.5, 2.0), (-10.0, 4.0, 7.0))
    values = np.random.default_rng(0).normal(size=(6, 5, 4))
    grid = ImageGrid(affine, (6, 5, 4), affine, (6, 5, 4))
    np.testing.assert_allclose(to_original_grid(values, grid), values, atol=1e-6)


def test_flipped_original_gets_a_flipped_map():
    original = _affine((1.0, 1.0, 1.0), (7.0, 0.0, 0.0), flip_x=True)  # LAS: i runs from x=7 down to 0
    model = _affine((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))  # RAS
    values = np.arange(8 * 3 * 2, dtype=float).reshape(8, 3, 2)
    grid = ImageGrid(model, (8, 3, 2), original, (8, 3, 2))
    np.testing.assert_allclose(to_original_grid(values, grid), values[::-1], atol=1e-6)


def test_two_dimensional_grid_and_mass_preservation():
    model = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])
    original = _affine((1.0, 1.0, 3.0), (0.0, 0.0, 0.0))
    grid = ImageGrid(model, (16, 16), original, (32, 32, 1))
    x, y = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    smooth = np.exp(-((x - 8.0) ** 2 + (y - 7.0) ** 2) / 10.0)
    out = to_original_grid(smooth, grid)
    assert out.shape == (32, 32, 1)
    assert grid.volume_ratio() == pytest.approx(0.25)
    assert out.sum() == pytest.approx(smooth.sum(), rel=0.01)


@pytest.mark.parametrize("flip", [False, True])
def test_footprint_and_resampling_agree_with_the_preprocessing(flip):
    config = ImageConfig(dims=3, shape=[12, 12, 10], spacing=[3.0, 3.0, 4.0], window=(-1000.0, 400.0))
    shape = (30, 28, 16)
    affine = _affine((1.25, 1.3, 2.5), (-18.0, -15.0, -20.0), flip_x=flip)
    if flip:
        affine[0, 3] = 18.0
    mask = np.zeros(shape, dtype=np.uint8)
    mask[10:16, 12:18, 6:10] = 1
    model_mask, model_affine = preprocess_volume(mask.astype(np.float32), affine, config, is_mask=True)
    grid = ImageGrid(model_affine, tuple(config.shape), affine, shape)
    footprint = footprint_on_model_grid(mask, grid)
    preprocessed = model_mask[0] > 0.5
    assert preprocessed.any() and footprint.any()
    # every model voxel the preprocessing puts in the lesion contains a lesion voxel centre, and the
    # footprint reaches at most one voxel beyond the preprocessed lesion
    assert np.all(footprint[preprocessed])
    from scipy.ndimage import binary_dilation

    assert np.all(binary_dilation(preprocessed, np.ones((3, 3, 3)))[footprint])
    # a map that is 1 on the preprocessed lesion lands on the original lesion
    back = to_original_grid(preprocessed.astype(float), grid, order=0) / grid.volume_ratio()
    overlap = (back > 0.5) & (mask > 0)
    assert overlap.sum() / mask.sum() > 0.6


def test_resample_to_reference_nearest():
    reference = _affine((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    permuted = np.array([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0, 0, 0, 1.0]])
    values = np.random.default_rng(1).integers(0, 2, size=(4, 5, 3))
    out = resample_to_reference(values, permuted, (5, 4, 3), reference)
    np.testing.assert_array_equal(out, values.transpose(1, 0, 2))


def test_resample_to_reference_of_a_single_slice_with_another_thickness():
    values = np.random.default_rng(2).integers(0, 2, size=(6, 5))
    thin, thick = np.diag([-1.5, 1.5, 2.0, 1.0]), np.diag([-1.5, 1.5, 23.75, 1.0])
    thin[:3, 3] = (40.0, -3.0, 7.3)
    thick[:3, 3] = (40.0, -3.0, 7.3 - 1e-5)  # a DICOM origin rounded to a few decimals
    np.testing.assert_array_equal(resample_to_reference(values, thick, (6, 5), thin), values)


def test_grid_errors():
    with pytest.raises(MmdxError, match="3x3 affine"):
        ImageGrid(np.eye(4), (8, 8), np.eye(4), (8, 8))
    with pytest.raises(MmdxError, match="2D original"):
        ImageGrid(np.eye(3), (8, 8), np.eye(4), (8, 8, 5))
    grid = ImageGrid(np.eye(4), (4, 4, 4), np.eye(4), (4, 4, 4))
    with pytest.raises(MmdxError, match="model grid"):
        to_original_grid(np.zeros((3, 3, 3)), grid)
