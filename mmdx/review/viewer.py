"""The case image at its native resolution: three planes, slices, window presets by modality, the attribution
overlay on the image's own grid, and the lesion contour where ground truth exists.

:mod:`mmdx.review.rendering` shows the image on the *model's* grid (what the model was fed, e.g. 32×32
pixels of 11 mm); this module shows the image the radiologist would read: every voxel of the file, in
physical units, with the attribution map that ``mmdx explain`` writes on the same grid
(``image_attribution.nii.gz``, the image's affine).

**Orientation.** The volume is turned to the nearest RAS axes (:func:`nibabel.orientations.io_orientation`,
flips and axis swaps only, no resampling), so axis 0 runs towards the patient's right (x), axis 1
towards anterior (y), axis 2 towards superior (z). Planes are drawn in radiological convention: axial with anterior at
the top and the patient's right on the viewer's left; coronal with superior at the top and the patient's
right on the left; sagittal with superior at the top and anterior on the left. Pixels are stretched by the
voxel spacing so anatomy keeps its proportions; a 2D image has the one plane it was acquired in.

**Intensities.** Presets come from the modality (:func:`viewer_presets`), through the one intensity module
(:mod:`mmdx.data.intensity`): CT gets HU window/level presets, MR and other arbitrary units the image's
own percentiles, radiographs percentiles with ``MONOCHROME1`` inverted (its lowest value is white).

**Overlay.** Positive attribution (evidence for the positive class) in the colours of
:data:`OVERLAY_COLORMAP`; a voxel's opacity is the chosen opacity times its attribution relative to the 99th
percentile of the volume's positive attributions (:meth:`NativeImage.overlay_scale`), so slices and planes are
comparable. :func:`colour_bar_html` draws the scale in the attribution's units (calibrated logit).
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import affine_transform, binary_erosion

from mmdx.data.intensity import (
    ModalityFamily,
    apply_window,
    invert,
    modality_family,
    percentile_bounds,
    sample,
    window_bounds,
)
from mmdx.errors import MmdxError

if TYPE_CHECKING:
    from mmdx.data.imaging import ImageVolume

OVERLAY_PERCENTILE = 99.0
OVERLAY_COLORMAP = "inferno"
CONTOUR_RGB = (0, 230, 255)  # cyan: distinct from every colour of the overlay's colormap
#: Units of the attribution map: each voxel's contribution to the calibrated logit.
ATTRIBUTION_UNITS = "calibrated logit"
#: A displayed plane is scaled (nearest neighbour) so that its longest side has at least this many pixels...
MIN_DISPLAY_PIXELS = 384
#: ... and at most this many.
MAX_DISPLAY_PIXELS = 768
#: Largest distance (mm) between where the image and the attribution map put a voxel for them to be one grid.
GRID_TOLERANCE_MM = 1e-2


class Plane(StrEnum):
    """A viewing plane and the RAS axis it is perpendicular to (``axis``)."""

    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"

    @property
    def axis(self) -> int:
        return {Plane.SAGITTAL: 0, Plane.CORONAL: 1, Plane.AXIAL: 2}[self]

    @property
    def slice_direction(self) -> str:
        return {
            Plane.AXIAL: "inferior to superior",
            Plane.CORONAL: "posterior to anterior",
            Plane.SAGITTAL: "left to right",
        }[self]


PLANES: tuple[Plane, ...] = (Plane.AXIAL, Plane.CORONAL, Plane.SAGITTAL)


@dataclass(frozen=True)
class DisplayWindow:
    """Values ``low`` .. ``high`` (in the image's units) shown black .. white, or white .. black when
    ``inverted``."""

    name: str
    low: float
    high: float
    units: str = ""
    inverted: bool = False

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise MmdxError(
                f"window '{self.name}': the upper bound must exceed the lower ({self.low}, {self.high})"
            )

    @property
    def label(self) -> str:
        if self.units == "HU":
            return f"{self.name} (W {self.high - self.low:g} / L {(self.low + self.high) / 2:g})"
        return self.name

    def grey(self, values: np.ndarray) -> np.ndarray:
        """``values`` mapped to [0, 1] grey levels (float64)."""
        unit = apply_window(values, self.low, self.high)
        return invert(unit) if self.inverted else unit


#: CT presets as (name, width, level) in HU.
CT_PRESETS: tuple[tuple[str, float, float], ...] = (
    ("Soft tissue", 400.0, 40.0),
    ("Lung", 1500.0, -600.0),
    ("Bone", 1800.0, 400.0),
    ("Brain", 80.0, 40.0),
)
#: Percentiles of the image's values used by the automatic windows of MR and other arbitrary units.
AUTO_PERCENTILES: tuple[float, float] = (1.0, 99.0)
WIDE_PERCENTILES: tuple[float, float] = (0.1, 99.9)
#: Radiographs: the percentiles of the model's own percentile scaling.
XR_PERCENTILES: tuple[float, float] = (0.5, 99.5)


def viewer_presets(
    values: np.ndarray, modality: str | None, photometric: str | None = None, units: str = ""
) -> dict[str, DisplayWindow]:
    """The window presets for an image, keyed by a short name, the default first.

    CT: soft tissue, lung, bone and brain windows in HU. MR and anything in arbitrary units: the image's
    1st-99th percentiles ("Auto") and 0.1-99.9th ("Wide"). CR/DX and other radiographs: the 0.5-99.5th
    percentiles. A ``MONOCHROME1`` image is inverted in every preset (its lowest value is shown white, as the
    DICOM standard says). A CT whose values are not in HU (no rescale to HU) gets the percentile windows.
    """
    family = modality_family(modality)
    inverted = str(photometric or "").strip().upper() == "MONOCHROME1"
    presets: dict[str, DisplayWindow] = {}
    if family is ModalityFamily.CT and units in ("", "HU"):
        for name, width, level in CT_PRESETS:
            low, high = window_bounds(level, width)
            presets[name.lower().replace(" ", "_")] = DisplayWindow(name, low, high, "HU", inverted)
        return presets
    chosen = XR_PERCENTILES if family is ModalityFamily.XR else AUTO_PERCENTILES
    for key, (low_p, high_p) in (("auto", chosen), ("wide", WIDE_PERCENTILES)):
        bounds = percentile_bounds(values, low_p, high_p)
        if bounds is None:
            continue
        name = f"{'Auto' if key == 'auto' else 'Wide'} (percentiles {low_p:g}-{high_p:g})"
        presets[key] = DisplayWindow(name, bounds[0], bounds[1], units, inverted)
    if not presets:
        raise MmdxError("the image holds no finite value; it cannot be displayed")
    return presets


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``array`` (``[I, J]`` or ``[I, J, K]``) turned to the nearest RAS axes by flips and axis swaps.

    Returns ``(volume [X, Y, Z], spacing [3] mm, ornt)``; ``ornt`` is the nibabel orientation that was
    applied, to turn maps on the same grid the same way (:func:`apply_ras`).
    """
    import nibabel as nib

    volume = np.asarray(array)
    if volume.ndim == 2:
        volume = volume[:, :, None]
    if volume.ndim != 3:
        raise MmdxError(f"an image must be 2D or 3D, got shape {volume.shape}")
    affine = np.asarray(affine, dtype=np.float64)
    ornt = nib.orientations.io_orientation(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    spacing = np.where(spacing > 0, spacing, 1.0)
    out_spacing = np.empty(3)
    for axis, (target, _flip) in enumerate(ornt):
        out_spacing[int(target)] = spacing[axis]
    return apply_ras(volume, ornt), out_spacing, ornt


def apply_ras(volume: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """``volume`` (on the grid :func:`to_ras` turned) turned the same way."""
    import nibabel as nib

    array = np.asarray(volume)
    if array.ndim == 2:
        array = array[:, :, None]
    return nib.orientations.apply_orientation(array, ornt)


def display_order(plane_values: np.ndarray, plane: Plane) -> np.ndarray:
    """A slice ``[first RAS axis, second RAS axis]`` of a RAS volume in radiological display order
    ``[rows, cols]`` (see the module docs): the second axis runs from the top down (anterior or superior at
    the top), the first from left to right reversed (the patient's right, or anterior, on the left)."""
    return np.swapaxes(plane_values[::-1, ::-1], 0, 1)


def _resize_indices(length: int, out: int) -> np.ndarray:
    return np.minimum((np.arange(out) + 0.5) * length / out, length - 1).astype(np.intp)


def display_shape(
    shape: tuple[int, int],
    spacing: tuple[float, float],
    min_pixels: int = MIN_DISPLAY_PIXELS,
    max_pixels: int = MAX_DISPLAY_PIXELS,
) -> tuple[int, int]:
    """Displayed ``(rows, cols)`` of a plane of ``shape`` with ``spacing`` (mm per row, per column): square
    millimetres, the longest side between ``min_pixels`` and ``max_pixels``."""
    finest = min(spacing)
    rows, cols = shape[0] * spacing[0] / finest, shape[1] * spacing[1] / finest
    longest = max(rows, cols)
    scale = 1.0
    if longest < min_pixels:
        scale = min_pixels / longest
    elif longest > max_pixels:
        scale = max_pixels / longest
    return max(1, round(rows * scale)), max(1, round(cols * scale))


@dataclass
class NativeImage:
    """One case's image on its own grid, turned to RAS, with what is drawn over it.

    Attributes:
        values: ``[X, Y, Z]`` float32 in the image's units (``Z == 1`` for a 2D image).
        spacing: mm along X, Y, Z.
        modality: the DICOM modality code (``CT``, ``MR``, ``CR``...) or ``""`` when unknown.
        photometric: the DICOM PhotometricInterpretation (``MONOCHROME1`` is shown inverted).
        units: the values' units (``HU`` for CT), ``""`` when arbitrary.
        attribution: same shape as ``values``, float32, in :data:`ATTRIBUTION_UNITS` (``None`` without one).
        mask: same shape, bool ground-truth lesion (``None`` when there is none to draw).
        lesion_in_truth: ``True``/``False`` what the ground truth says, ``None`` without ground truth.
        withheld: why the attribution map is not drawn in colour (see :mod:`mmdx.review.overlay`), or ``None``.
    """

    values: np.ndarray
    spacing: tuple[float, float, float]
    modality: str = ""
    photometric: str = ""
    units: str = ""
    attribution: np.ndarray | None = None
    mask: np.ndarray | None = None
    lesion_in_truth: bool | None = None
    withheld: str | None = None

    def __post_init__(self) -> None:
        if self.values.ndim != 3:
            raise MmdxError(f"a native image is [X, Y, Z], got shape {self.values.shape}")
        for name in ("attribution", "mask"):
            extra = getattr(self, name)
            if extra is not None and extra.shape != self.values.shape:
                raise MmdxError(f"the {name} has shape {extra.shape}, the image {self.values.shape}")
        self._scale: float | None | bool = False  # not computed yet
        self._default_slices: dict[Plane, int] = {}

    @property
    def is_3d(self) -> bool:
        return sum(s > 1 for s in self.values.shape) == 3

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.values.shape)  # type: ignore[return-value]

    def planes(self) -> tuple[Plane, ...]:
        """Every plane for a volume; for a 2D image the one plane it lies in."""
        if self.is_3d:
            return PLANES
        flat = [p for p in PLANES if self.values.shape[p.axis] == 1]
        return tuple(flat[:1]) or (Plane.AXIAL,)

    def n_slices(self, plane: Plane) -> int:
        return int(self.values.shape[Plane(plane).axis])

    def default_slice(self, plane: Plane) -> int:
        """The slice of ``plane`` with the largest total positive attribution (the middle one without)."""
        plane = Plane(plane)
        if plane not in self._default_slices:
            chosen = self.n_slices(plane) // 2
            if self.attribution is not None:
                others = tuple(a for a in range(3) if a != plane.axis)
                per_slice = np.clip(self.attribution, 0, None).sum(axis=others, dtype=np.float64)
                if per_slice.size and per_slice.max() > 0:
                    chosen = int(np.argmax(per_slice))
            self._default_slices[plane] = chosen
        return self._default_slices[plane]

    def overlay_scale(self) -> float | None:
        """The attribution shown at full opacity: the 99th percentile of positive values, or ``None`` (over a
        regular subsample of at most 2^20 voxels of a large map)."""
        if self._scale is False:
            scale = None
            if self.attribution is not None:
                values = sample(self.attribution)  # at most 2^20 voxels, a regular subsample of a large map
                positive = values[values > 0]
                if positive.size:
                    scale = float(np.percentile(positive, OVERLAY_PERCENTILE))
            self._scale = scale
        return self._scale  # type: ignore[return-value]

    def plane_spacing(self, plane: Plane) -> tuple[float, float]:
        """mm per displayed (row, column) of ``plane`` before scaling."""
        x, y, z = self.spacing
        return {Plane.AXIAL: (y, x), Plane.CORONAL: (z, x), Plane.SAGITTAL: (z, y)}[Plane(plane)]

    def _slice(self, volume: np.ndarray, plane: Plane, index: int) -> np.ndarray:
        plane = Plane(plane)
        if not 0 <= index < self.n_slices(plane):
            raise MmdxError(f"{plane} slice {index} is outside the image (0 to {self.n_slices(plane) - 1})")
        taken = volume[
            (slice(None),) * plane.axis + (index,)
        ]  # a view: np.take would copy through the volume
        return display_order(taken, plane)

    def render(
        self,
        plane: Plane,
        index: int,
        window: DisplayWindow,
        opacity: float = 0.5,
        show_overlay: bool = True,
        show_contour: bool = True,
        min_pixels: int = MIN_DISPLAY_PIXELS,
        max_pixels: int = MAX_DISPLAY_PIXELS,
    ) -> np.ndarray:
        """Slice ``index`` of ``plane`` as RGB ``[rows, cols, 3]`` uint8, in radiological order, each image
        pixel shown as a block of display pixels of its physical proportions."""
        if not 0.0 <= opacity <= 1.0:
            raise MmdxError(f"overlay opacity must lie in [0, 1], got {opacity!r}")
        values = self._slice(self.values, plane, index)
        rows, cols = display_shape(values.shape, self.plane_spacing(plane), min_pixels, max_pixels)
        row_index = _resize_indices(values.shape[0], rows)
        col_index = _resize_indices(values.shape[1], cols)
        grey = window.grey(values)[np.ix_(row_index, col_index)]
        rgb = np.repeat(grey[..., None], 3, axis=2)
        scale = self.overlay_scale() if show_overlay else None
        if scale is not None and opacity > 0:
            weight = np.clip(self._slice(self.attribution, plane, index) / scale, 0.0, 1.0)
            weight = weight[np.ix_(row_index, col_index)]
            alpha = (opacity * weight)[..., None]
            rgb = (1 - alpha) * rgb + alpha * colormap(weight)
        out = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
        if show_contour and self.mask is not None:
            mask = self._slice(self.mask, plane, index)[np.ix_(row_index, col_index)]
            if mask.any():
                thickness = max(1, round(min(rows / values.shape[0], cols / values.shape[1]) / 3))
                outline = mask & ~binary_erosion(mask, iterations=thickness, border_value=0)
                out[outline] = CONTOUR_RGB
        return out


_LUT_CACHE: dict[str, np.ndarray] = {}


def _lut(name: str = OVERLAY_COLORMAP) -> np.ndarray:
    if name not in _LUT_CACHE:
        from matplotlib import colormaps

        _LUT_CACHE[name] = colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3]
    return _LUT_CACHE[name]


def colormap(weight: np.ndarray) -> np.ndarray:
    """``weight`` in [0, 1] as RGB [0, 1] colours of :data:`OVERLAY_COLORMAP` (a 256-entry table)."""
    index = np.clip(np.round(np.asarray(weight) * 255), 0, 255).astype(np.intp)
    return _lut()[index]


def colour_bar_html(scale: float, units: str = ATTRIBUTION_UNITS, opacity: float = 1.0) -> str:
    """The overlay's colour scale as a small HTML bar: 0 to ``scale`` (and above) in ``units``."""
    if not np.isfinite(scale) or scale <= 0:
        raise MmdxError(f"the colour bar needs a positive scale, got {scale!r}")
    stops = ", ".join(
        f"rgb({int(r * 255)}, {int(g * 255)}, {int(b * 255)}) {100 * i / 8:.0f}%"
        for i, (r, g, b) in enumerate(_lut()[np.linspace(0, 255, 9).astype(int)])
    )
    label = html.escape(f"{scale:.3g}")
    return (
        '<div class="mmdx-colour-bar" style="font-size: 0.8rem; max-width: 320px">'
        f'<div style="height: 12px; opacity: {max(0.2, opacity):.2f}; background: linear-gradient(to right, '
        f'{stops})"></div>'
        '<div style="display: flex; justify-content: space-between">'
        f"<span>0</span><span>\u2265 {label}</span></div>"
        f"<div>Positive attribution per voxel, {html.escape(units)}</div></div>"
    )


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an ``[rows, cols, 3]`` uint8 image (fast zlib level: a viewer redraws often)."""
    from PIL import Image

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise MmdxError(f"expected an RGB uint8 image [rows, cols, 3], got {rgb.dtype} {rgb.shape}")
    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def same_grid(
    shape_a: tuple[int, ...], affine_a: np.ndarray, shape_b: tuple[int, ...], affine_b: np.ndarray
) -> bool:
    """Whether two arrays lie on one grid: equal shapes (a 2D array equals ``[I, J, 1]``) and voxel
    corners within :data:`GRID_TOLERANCE_MM`."""
    pad = lambda s: tuple(s) + (1,) * (3 - len(s))  # noqa: E731
    if pad(shape_a) != pad(shape_b):
        return False
    corners = np.array([[i, j, k, 1] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=np.float64)
    corners[:, :3] *= np.array(pad(shape_a)) - 1
    a = corners @ np.asarray(affine_a, dtype=np.float64).T
    b = corners @ np.asarray(affine_b, dtype=np.float64).T
    return bool(np.max(np.abs(a - b)) <= GRID_TOLERANCE_MM)


def mask_on_grid(
    mask: np.ndarray, mask_affine: np.ndarray, shape: tuple[int, ...], affine: np.ndarray
) -> np.ndarray:
    """A label mask moved to another grid by nearest neighbour: ``[*shape]`` bool (2D arrays as ``[I, J, 1]``)."""
    source = np.asarray(mask) != 0
    if source.ndim == 2:
        source = source[:, :, None]
    target = tuple(shape) + (1,) * (3 - len(shape))
    if same_grid(source.shape, mask_affine, target, affine):
        return source.reshape(target)
    transform = np.linalg.inv(np.asarray(mask_affine, dtype=np.float64)) @ np.asarray(
        affine, dtype=np.float64
    )
    moved = affine_transform(
        source.astype(np.uint8), transform, output_shape=target, order=0, mode="constant"
    )
    return moved.astype(bool)


def load_native_image(
    image_path: str | Path | ImageVolume,
    attribution_path: str | Path | None = None,
    mask_path: str | Path | ImageVolume | None = None,
    default_modality: str | None = None,
) -> tuple[NativeImage, list[str]]:
    """Read an image, its attribution map on its own grid (NIfTI) and its lesion mask, turned to RAS.

    Returns the :class:`NativeImage` and the problems met (a map or mask that cannot be used is left out and
    named). Raises :class:`mmdx.data.issues.ImageReadError` when the image itself cannot be read.
    ``default_modality``: the cohort's declared modality, for files that name none (NIfTI). The image and the
    mask may be given already read (:func:`mmdx.data.imaging.read_image`): they are not read again.
    """
    import nibabel as nib

    from mmdx.data.imaging import ImageVolume, read_image
    from mmdx.data.issues import ImageReadError

    def read(source: str | Path | ImageVolume) -> ImageVolume:
        return source if isinstance(source, ImageVolume) else read_image(str(source))

    problems: list[str] = []
    volume = read(image_path)
    values, spacing, ornt = to_ras(volume.array.astype(np.float32, copy=False), volume.affine)
    meta = volume.meta
    image = NativeImage(
        values=values,
        spacing=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        modality=str(meta.get("modality") or default_modality or ""),
        photometric=str(meta.get("photometric_interpretation") or ""),
        units=str(meta.get("value_units") or ""),
    )
    if attribution_path is not None:
        try:
            loaded = nib.load(str(attribution_path))
            array = np.asarray(loaded.dataobj, dtype=np.float32)
            if not same_grid(array.shape, loaded.affine, volume.array.shape, volume.affine):
                problems.append(
                    "the attribution map on the image's grid does not fit the image (it was made for another "
                    "version of the image): the overlay is not shown on the original image"
                )
            elif not np.all(np.isfinite(array)):
                problems.append("the attribution map on the image's grid holds non-finite values: not shown")
            else:
                image.attribution = apply_ras(array.reshape(volume.array.shape), ornt)
        except (OSError, ValueError, EOFError) as exc:
            problems.append(f"the attribution map on the image's grid cannot be read: {exc}")
    if mask_path is not None:
        try:
            mask_volume = read(mask_path)
            image.lesion_in_truth = bool(np.any(mask_volume.array))
            if image.lesion_in_truth:
                moved = mask_on_grid(mask_volume.array, mask_volume.affine, volume.array.shape, volume.affine)
                image.mask = apply_ras(moved, ornt)
        except (ImageReadError, MmdxError) as exc:
            problems.append(f"the lesion mask cannot be shown: {exc}")
    return replace(image), problems  # built anew: shapes checked, nothing computed before the map was set
