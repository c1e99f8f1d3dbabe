"""Moving attribution maps between the model's grid and the original image's grid.

The model sees every image on its own grid: oriented to RAS, resampled to the configured spacing, padded or
cropped to the configured shape (:func:`mmdx.data.dataset.preprocess_volume`). Both grids are described by
an affine from voxel index to RAS millimetres, so a map moves between them through world coordinates:

- :func:`to_original_grid` resamples a model-grid map onto the original image's voxels (linear
  interpolation, 0 outside the model's field of view) so that any viewer overlays it on the image;
- :func:`footprint_on_model_grid` marks the model voxels that contain at least one voxel of a mask drawn on
  the original grid (used to score attributions against a lesion mask without losing small lesions).

2D images: the model's affine is ``3 x 3`` over ``(x, y)`` (see ``_spatial_affine`` in the dataset module),
the original's is ``4 x 4``; the slice is taken to lie in the x-y plane, as the preprocessing does.

Values are *mass preserving*: each original voxel receives the model-grid value at its centre times the
ratio of the two voxel volumes (areas in 2D), so the sum of a map over a region is the same on both grids
up to interpolation error, and "share of attribution inside the lesion" does not depend on the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import map_coordinates

from mmdx.errors import MmdxError


@dataclass(frozen=True)
class ImageGrid:
    """Where one case's image lives before and after preprocessing.

    Attributes:
        model_affine: ``[d + 1, d + 1]`` voxel -> RAS mm of the model grid (``d`` = 2 or 3), as returned by
            :meth:`mmdx.data.dataset.ImageCache.load`.
        model_shape: spatial shape of the model grid, e.g. ``(32, 32)`` or ``(64, 64, 64)``.
        original_affine: ``[4, 4]`` voxel -> RAS mm of the original image
            (:func:`mmdx.data.imaging.read_image`).
        original_shape: the original array's shape as read, ``(I, J)``, ``(I, J, 1)`` or ``(I, J, K)``.
    """

    model_affine: np.ndarray
    model_shape: tuple[int, ...]
    original_affine: np.ndarray
    original_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        dims = len(self.model_shape)
        if dims not in (2, 3) or np.shape(self.model_affine) != (dims + 1, dims + 1):
            raise MmdxError(
                f"ImageGrid: a {dims}D model grid needs a {dims + 1}x{dims + 1} affine, got "
                f"{np.shape(self.model_affine)} for shape {self.model_shape}"
            )
        if np.shape(self.original_affine) != (4, 4):
            raise MmdxError(
                f"ImageGrid: the original affine must be 4x4, got {np.shape(self.original_affine)}"
            )
        spatial = [s for s in self.original_shape[2:] if s != 1]
        if dims == 2 and spatial:
            raise MmdxError(
                f"ImageGrid: a 2D model grid needs a 2D original image (I, J) or (I, J, 1), got "
                f"{self.original_shape}"
            )

    @property
    def dims(self) -> int:
        return len(self.model_shape)

    def original_world_affine(self) -> np.ndarray:
        """The original affine restricted to the model's axes: ``[d + 1, d + 1]`` index -> world."""
        affine = np.asarray(self.original_affine, dtype=np.float64)
        if self.dims == 3:
            return affine
        keep = [0, 1, 3]
        return affine[np.ix_(keep, keep)]

    def volume_ratio(self) -> float:
        """Original voxel volume (area in 2D) divided by the model voxel volume."""
        d = self.dims
        original = abs(np.linalg.det(self.original_world_affine()[:d, :d]))
        model = abs(np.linalg.det(np.asarray(self.model_affine, dtype=np.float64)[:d, :d]))
        if not model > 0:
            raise MmdxError(f"ImageGrid: the model affine is singular: {self.model_affine!r}")
        return float(original / model)


def _original_indices(grid: ImageGrid) -> np.ndarray:
    """Index coordinates ``[d, n]`` of every original voxel, in C order over the spatial axes."""
    shape = grid.original_shape[: grid.dims]
    axes = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    return np.stack([a.ravel() for a in axes])


def _original_to_model(grid: ImageGrid, indices: np.ndarray) -> np.ndarray:
    """Original voxel indices ``[d, n]`` -> (fractional) model voxel indices ``[d, n]``."""
    homogeneous = np.vstack([indices, np.ones((1, indices.shape[1]))])
    to_model = np.linalg.inv(np.asarray(grid.model_affine, dtype=np.float64)) @ grid.original_world_affine()
    return (to_model @ homogeneous)[: grid.dims]


def to_original_grid(values: np.ndarray, grid: ImageGrid, order: int = 1) -> np.ndarray:
    """Resample a model-grid map onto the original image grid.

    Args:
        values: ``model_shape`` (or ``[1, *model_shape]``), e.g. attribution per model voxel.
        grid: the case's :class:`ImageGrid`.
        order: spline order of the interpolation (1 = linear, 0 = nearest).

    Returns:
        float32 array of ``grid.original_shape``; 0 outside the model's field of view; scaled by
        :meth:`ImageGrid.volume_ratio` so that sums over regions are preserved.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape == (1, *grid.model_shape):
        values = values[0]
    if values.shape != tuple(grid.model_shape):
        raise MmdxError(
            f"to_original_grid: the map has shape {values.shape}, the model grid is {grid.model_shape}"
        )
    coordinates = _original_to_model(grid, _original_indices(grid))
    # grid-constant: the map is 0 beyond the model's field of view and tapers linearly over the last half
    # voxel, instead of dropping points a rounding error outside the edge
    sampled = map_coordinates(
        values, coordinates, order=order, mode="grid-constant", cval=0.0, prefilter=False
    )
    sampled = sampled * grid.volume_ratio()
    return sampled.reshape(grid.original_shape).astype(np.float32)


def footprint_on_model_grid(mask: np.ndarray, grid: ImageGrid) -> np.ndarray:
    """Model voxels ``model_shape`` (bool) that contain the centre of at least one nonzero original voxel.

    ``mask``: an array of ``grid.original_shape`` on the original grid (e.g. a lesion mask).
    """
    mask = np.asarray(mask)
    if mask.size != int(np.prod(grid.original_shape)):
        raise MmdxError(
            f"footprint_on_model_grid: the mask has shape {mask.shape}, the image {grid.original_shape}"
        )
    spatial = mask.reshape(grid.original_shape[: grid.dims]) != 0
    indices = np.stack(np.nonzero(spatial)).astype(np.float64)
    out = np.zeros(grid.model_shape, dtype=bool)
    if indices.size == 0:
        return out
    model = np.rint(_original_to_model(grid, indices)).astype(np.int64)
    inside = np.all((model >= 0) & (model < np.asarray(grid.model_shape)[:, None]), axis=0)
    out[tuple(model[:, inside])] = True
    return out


def resample_to_reference(
    values: np.ndarray, affine: np.ndarray, reference_shape: tuple[int, ...], reference_affine: np.ndarray
) -> np.ndarray:
    """Nearest-neighbour resampling of a 3D (or ``(I, J)``) array onto another 4x4-affine grid.

    Used for a lesion mask whose grid differs from the image it belongs to (it should not, but a DICOM
    series and a NIfTI mask can disagree in axis order).
    """
    values = np.asarray(values)
    values3 = values.reshape(values.shape + (1,) * (3 - values.ndim))
    shape3 = tuple(reference_shape) + (1,) * (3 - len(reference_shape))
    axes = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape3], indexing="ij")
    indices = np.vstack([np.stack([a.ravel() for a in axes]), np.ones((1, int(np.prod(shape3))))])
    to_source = np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ np.asarray(reference_affine, np.float64)
    coordinates = (to_source @ indices)[:3]
    sampled = map_coordinates(
        values3.astype(np.float64), coordinates, order=0, mode="grid-constant", cval=0.0
    )
    return sampled.reshape(reference_shape)
