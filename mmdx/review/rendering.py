"""The case page's *model-input view*: the image as the model saw it, HU on the model's grid, window/level,
attribution overlay, lesion contour, one slice at a time, encoded as PNG without any network asset. The
original image at its native resolution, in three planes, is :mod:`mmdx.review.viewer`.

**Which grid.** The image is shown on the model's grid (oriented to RAS, resampled and padded/cropped by
:func:`mmdx.data.dataset.preprocess_volume`), the grid the attribution map and the preprocessed lesion mask
live on, so the three align voxel for voxel. The intensities are not the model's windowed [0, 1] input but
Hounsfield units: :func:`hu_on_model_grid` resamples the HU image itself onto the model's grid with the
model's own resampling (:func:`mmdx.data.dataset.resample_to_grid`), so nothing is clipped. Window/level presets then work over the whole HU range (the model's
input window, -1000..400 HU for the demo, would clip bone at 400 HU). Where a voxel's neighbourhood lies
inside the model's window, the "model input" preset shows exactly what the model was fed; at the edge of
structures beyond the window (bone, metal) it differs slightly, since the model clips before resampling.

**Orientation.** Axial slices (along the third axis, inferior to superior) in radiological convention: the
patient's anterior at the top, the patient's right on the viewer's left. Pixels are scaled by the grid's
spacing so anatomy keeps its proportions.

**Overlay.** Only positive attributions (evidence for the positive class) are coloured; a voxel's opacity
is the overlay opacity times its attribution relative to the 99th percentile of the case's positive
attributions (over the whole volume, so slices are comparable), clipped to 1.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import binary_erosion

from mmdx.config import ImageConfig
from mmdx.data.dataset import resample_to_grid
from mmdx.data.intensity import apply_window as window_to_unit
from mmdx.data.plan import ImagePlan
from mmdx.errors import MmdxError
from mmdx.explain.grids import ImageGrid, footprint_on_model_grid

if TYPE_CHECKING:
    from mmdx.data.imaging import ImageVolume

#: Longest side of a rendered slice, in pixels (before spacing correction), when the grid is smaller.
TARGET_PIXELS = 384
OVERLAY_PERCENTILE = 99.0
OVERLAY_COLORMAP = "inferno"
CONTOUR_RGB = (0, 230, 255)  # cyan: distinct from every colour of the overlay's colormap


@dataclass(frozen=True)
class WindowLevel:
    """A display window: HU ``level`` (centre) and ``width``; maps ``level - width/2 .. level + width/2`` to
    black .. white."""

    name: str
    width: float
    level: float

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise MmdxError(f"window '{self.name}': the width must be positive HU, got {self.width!r}")

    @property
    def low(self) -> float:
        return self.level - self.width / 2

    @property
    def high(self) -> float:
        return self.level + self.width / 2

    @property
    def label(self) -> str:
        return f"{self.name} (W {self.width:g} / L {self.level:g})"


#: Standard CT presets (HU).
WINDOW_PRESETS: dict[str, WindowLevel] = {
    "lung": WindowLevel("Lung", 1500.0, -600.0),
    "soft_tissue": WindowLevel("Soft tissue", 400.0, 40.0),
    "bone": WindowLevel("Bone", 1800.0, 400.0),
}


def model_window(config: ImagePlan | ImageConfig) -> WindowLevel:
    """The window the model's preprocessing applies (what the model "sees")."""
    low, high = config.window
    return WindowLevel("Model input", float(high - low), float(low + high) / 2)


def window_presets(config: ImagePlan | ImageConfig | None) -> dict[str, WindowLevel]:
    """The presets offered for a run: the standard CT presets plus the model's own window."""
    presets = dict(WINDOW_PRESETS)
    if config is not None:
        presets["model"] = model_window(config)
    return presets


def hu_on_model_grid(
    array: np.ndarray, affine: np.ndarray, config: ImagePlan | ImageConfig
) -> tuple[np.ndarray, np.ndarray]:
    """An image in physical units (HU) on the model's grid.

    Args:
        array: ``[I, J]`` or ``[I, J, K]`` in HU, as read by :func:`mmdx.data.imaging.read_image`.
        affine: ``[4, 4]`` voxel -> RAS mm.
        config: the model's image preprocessing.

    Returns:
        ``(hu [*config.shape] float32, affine [dims + 1, dims + 1])``; voxels outside the field of view
        (padding) take the image's minimum.
    """
    finite = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(finite)):
        raise MmdxError("the image holds NaN or infinite values; it cannot be displayed")
    low = float(finite.min())
    # shifted so that the padding (0 outside the image) lands on the image's minimum
    shifted, out_affine = resample_to_grid(finite - low, affine, config)
    return (shifted.astype(np.float64) + low).astype(np.float32), out_affine


def mask_on_model_grid(
    array: np.ndarray, affine: np.ndarray, model_affine: np.ndarray, model_shape: tuple[int, ...]
) -> np.ndarray:
    """A label mask on its own grid moved to the model's grid: ``[*model_shape]`` bool, true in every model
    voxel that holds the centre of a mask voxel (so a lesion smaller than a model voxel still shows, where
    nearest-neighbour resampling could drop it).

    Args:
        array: ``[I, J]``/``[I, J, 1]`` or ``[I, J, K]`` mask, nonzero inside.
        affine: ``[4, 4]`` voxel -> RAS mm of the mask.
        model_affine, model_shape: the model grid (from :func:`hu_on_model_grid`).
    """
    grid = ImageGrid(
        model_affine=np.asarray(model_affine, dtype=np.float64),
        model_shape=tuple(int(s) for s in model_shape),
        original_affine=np.asarray(affine, dtype=np.float64),
        original_shape=tuple(int(s) for s in np.shape(array)),
    )
    return footprint_on_model_grid(np.asarray(array), grid)


@dataclass
class CaseImage:
    """One case's image on the model's grid, with what is drawn over it.

    Attributes:
        hu: ``[H, W]`` (2D) or ``[I, J, K]`` (3D) float32 HU.
        spacing: voxel size in mm along each axis of ``hu``.
        attribution: same shape as ``hu``, float32 (``None`` without an explanation).
        mask: same shape, bool ground-truth lesion mask (``None`` when there is no lesion to draw).
        lesion_in_truth: what the ground truth says: ``True`` a lesion, ``False`` none (an empty mask),
            ``None`` no ground truth for this case.
        withheld: why the attribution map is not drawn in colour (see :mod:`mmdx.review.overlay`), or ``None``.
    """

    hu: np.ndarray
    spacing: tuple[float, ...]
    attribution: np.ndarray | None = None
    mask: np.ndarray | None = None
    lesion_in_truth: bool | None = None
    withheld: str | None = None

    def __post_init__(self) -> None:
        if self.hu.ndim not in (2, 3):
            raise MmdxError(f"a case image must be 2D or 3D, got shape {self.hu.shape}")
        for name in ("attribution", "mask"):
            extra = getattr(self, name)
            if extra is not None and extra.shape != self.hu.shape:
                raise MmdxError(
                    f"the {name} has shape {extra.shape} but the image on the model grid has {self.hu.shape}"
                )

    @property
    def is_3d(self) -> bool:
        return self.hu.ndim == 3

    @property
    def n_slices(self) -> int:
        return int(self.hu.shape[2]) if self.is_3d else 1

    def default_slice(self) -> int:
        """The axial slice with the largest total positive attribution (the middle slice without one)."""
        if not self.is_3d:
            return 0
        if self.attribution is not None:
            per_slice = np.clip(self.attribution, 0, None).sum(axis=(0, 1))
            if per_slice.max() > 0:
                return int(np.argmax(per_slice))
        return self.n_slices // 2

    def overlay_scale(self) -> float | None:
        """Attribution mapped to full overlay opacity: the 99th percentile of positive values, or ``None``."""
        if self.attribution is None:
            return None
        positive = self.attribution[self.attribution > 0]
        if positive.size == 0:
            return None
        return float(np.percentile(positive, OVERLAY_PERCENTILE))

    def _slice(self, volume: np.ndarray, index: int) -> np.ndarray:
        if not self.is_3d:
            return volume
        if not 0 <= index < self.n_slices:
            raise MmdxError(f"slice {index} is outside the volume (0 to {self.n_slices - 1})")
        return volume[:, :, index]

    def pixel_spacing(self) -> tuple[float, float]:
        """(row, column) mm of a displayed pixel before scaling: rows run along y, columns along x."""
        return float(self.spacing[1]), float(self.spacing[0])

    def render(
        self,
        index: int,
        window: WindowLevel,
        opacity: float = 0.5,
        show_overlay: bool = True,
        show_contour: bool = True,
        target_pixels: int = TARGET_PIXELS,
    ) -> np.ndarray:
        """Slice ``index`` (ignored in 2D) as an RGB ``[rows, cols, 3]`` uint8 image (see module docs)."""
        if not 0.0 <= opacity <= 1.0:
            raise MmdxError(f"overlay opacity must lie in [0, 1], got {opacity!r}")
        grey = apply_window(self._slice(self.hu, index), window)
        rgb = np.repeat(grey[..., None], 3, axis=2)
        scale = self.overlay_scale() if show_overlay else None
        if scale is not None and opacity > 0:
            weight = np.clip(self._slice(self.attribution, index) / scale, 0.0, 1.0)
            colours = _colormap(weight)
            alpha = (opacity * weight)[..., None]
            rgb = (1 - alpha) * rgb + alpha * colours
        rgb = to_display(rgb)
        rows, cols = _repeats(rgb.shape[:2], self.pixel_spacing(), target_pixels)
        rgb = np.repeat(np.repeat(rgb, rows, axis=0), cols, axis=1)
        out = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
        if show_contour and self.mask is not None:
            mask = to_display(self._slice(self.mask, index))
            mask = np.repeat(np.repeat(mask, rows, axis=0), cols, axis=1)
            thickness = max(1, min(rows, cols) // 3)
            outline = mask & ~binary_erosion(mask, iterations=thickness, border_value=0)
            out[outline] = CONTOUR_RGB
        return out


def apply_window(hu: np.ndarray, window: WindowLevel) -> np.ndarray:
    """HU mapped linearly to [0, 1]: ``window.low`` and below -> 0, ``window.high`` and above -> 1."""
    return window_to_unit(hu, window.low, window.high)


def to_display(plane: np.ndarray) -> np.ndarray:
    """An ``[x, y, ...]`` slice of a RAS grid in radiological display order ``[rows, cols, ...]``: anterior
    (high y) at the top, the patient's right (high x) on the left."""
    return np.swapaxes(plane[::-1, ::-1], 0, 1)


def _repeats(shape: tuple[int, int], spacing: tuple[float, float], target: int) -> tuple[int, int]:
    base = max(1, math.ceil(target / max(shape)))
    smallest = min(spacing) if min(spacing) > 0 else 1.0
    return (
        max(1, round(base * spacing[0] / smallest)),
        max(1, round(base * spacing[1] / smallest)),
    )


def _colormap(weight: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps[OVERLAY_COLORMAP](weight)[..., :3]


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an ``[rows, cols, 3]`` uint8 image."""
    from matplotlib.image import imsave

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise MmdxError(f"expected an RGB uint8 image [rows, cols, 3], got {rgb.dtype} {rgb.shape}")
    buffer = io.BytesIO()
    imsave(buffer, rgb, format="png")
    return buffer.getvalue()


def png_data_url(png: bytes) -> str:
    """``data:image/png;base64,...``: an image the dashboard sends inline over the session's WebSocket, so
    that no URL serves it outside the session (Streamlit serves image bytes at /media/ URLs otherwise)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def load_case_image(
    image_path: str | Path | ImageVolume,
    config: ImagePlan | ImageConfig,
    attribution: np.ndarray | None = None,
    mask_path: str | Path | ImageVolume | None = None,
) -> tuple[CaseImage, list[str]]:
    """Read an image (and its lesion mask) and move both to the model's grid; ``attribution`` is the
    explanation's model-grid map. Returns the :class:`CaseImage` and the problems met (a mask or map that
    does not fit is left out and named there). Raises :class:`mmdx.data.imaging.ImageReadError` when the
    image itself cannot be read. The image and the mask may be given already read (``read_image`` without
    ``dims``, e.g. shared with :func:`mmdx.review.viewer.load_native_image`): they are not read again."""
    from mmdx.data.imaging import ImageVolume, read_image, with_dims
    from mmdx.data.issues import ImageReadError

    def read(source: str | Path | ImageVolume) -> ImageVolume:
        if isinstance(source, ImageVolume):
            return with_dims(source, config.dims)
        return read_image(str(source), dims=config.dims)

    problems: list[str] = []
    volume = read(image_path)
    hu, affine = hu_on_model_grid(volume.array, volume.affine, config)
    dims = config.dims
    spacing = tuple(float(np.linalg.norm(affine[:dims, axis])) for axis in range(dims))
    if attribution is not None and attribution.shape != hu.shape:
        problems.append(
            f"the attribution map has shape {attribution.shape}, the model grid {hu.shape}: it was made for "
            "another preprocessing and is not shown"
        )
        attribution = None
    mask = None
    lesion = None
    if mask_path is not None:
        try:
            mask_volume = read(mask_path)
            lesion = bool(np.any(mask_volume.array))
            if lesion:
                mask = mask_on_model_grid(mask_volume.array, mask_volume.affine, affine, hu.shape)
        except (ImageReadError, MmdxError) as exc:
            problems.append(f"the lesion mask cannot be shown: {exc}")
    return CaseImage(hu, spacing, attribution, mask, lesion), problems


def warm_up() -> None:
    """Import what the first case would otherwise wait for (MONAI's transforms, matplotlib's PNG writer):
    a dashboard calls this once at start so that no reviewer pays the import time."""
    import matplotlib.image  # noqa: F401
    import monai.transforms  # noqa: F401
    from matplotlib import colormaps

    colormaps[OVERLAY_COLORMAP]
