"""CT-like chest phantoms: the voxel grid of a case, the rendered HU image (or MR-like signal) with its
lesion, NIfTI writing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from mmdx.data.synth.model import HU_AIR, HU_BONE, HU_HEART, HU_LESION, HU_LUNG, HU_TISSUE, MR_SIGNAL


@dataclass
class ImageGeometry:
    """A voxel grid: ``affine`` maps (i, j, k) to RAS mm; ``shape`` is (I, J) or (I, J, K)."""

    shape: tuple[int, ...]
    affine: np.ndarray

    def world(self) -> np.ndarray:
        """RAS coordinates of every voxel centre, ``[*shape, 3]``."""
        grids = list(np.meshgrid(*[np.arange(n, dtype=float) for n in self.shape], indexing="ij"))
        if len(self.shape) == 2:
            grids.append(np.zeros(self.shape))
        ijk = np.stack([*grids, np.ones(self.shape)], axis=-1)
        return (ijk @ self.affine.T)[..., :3]


def _phantom_hu(world: np.ndarray, body_scale: float, lesion: tuple[np.ndarray, float] | None) -> tuple:
    """CT-like chest in HU at the given RAS points; returns (hu, lesion_mask)."""
    x, y, z = world[..., 0], world[..., 1], world[..., 2]
    b = body_scale
    hu = np.full(x.shape, HU_AIR)
    body = (x / (150 * b)) ** 2 + ((y + 10) / (110 * b)) ** 2 <= 1.0
    hu[body] = HU_TISSUE
    for side in (-1.0, 1.0):
        lung = ((x - side * 70 * b) / (52 * b)) ** 2 + ((y - 5) / (66 * b)) ** 2 + (z / (150 * b)) ** 2 <= 1.0
        hu[lung & body] = HU_LUNG
    heart = ((x - 12 * b) / (42 * b)) ** 2 + ((y - 28 * b) / (38 * b)) ** 2 + (
        (z + 35) / (55 * b)
    ) ** 2 <= 1.0
    hu[heart & body] = HU_HEART
    spine = x**2 + (y + 78 * b) ** 2 <= (17 * b) ** 2
    hu[spine] = HU_BONE
    mask = np.zeros(x.shape, dtype=bool)
    if lesion is not None:
        centre, radius = lesion
        mask = ((world - centre) ** 2).sum(-1) <= radius**2
        hu[mask] = HU_LESION
    return hu, mask


def case_geometry(
    rng: np.random.Generator,
    site: dict,
    dims: int,
    size: int,
    fmt: str,
    fov_mm: float | None = None,
    slice_spacing_mm: float | None = None,
    slices: int | None = None,
) -> ImageGeometry:
    """The grid of one case: the site's field of view (or ``fov_mm``, then centred on a lung), ``size``
    pixels across, slices ``slice_spacing_mm`` apart (default: the site's factor times the in-plane
    spacing), ``slices`` of them (default ``size``)."""
    spacing = (site["fov_mm"] if fov_mm is None else fov_mm) / size
    z_spacing = spacing * site["z_factor"] if slice_spacing_mm is None else slice_spacing_mm
    if fov_mm is None:
        centre = np.array([rng.normal(0, 6), rng.normal(0, 6), rng.normal(0, 15)])
    else:  # a targeted field of view: one lung, where a nodule would be looked for
        side = float(rng.choice([-1.0, 1.0]))
        centre = np.array([side * 70 + rng.normal(0, 4), 5 + rng.normal(0, 6), rng.normal(0, 15)])
    shape = (size, size) if dims == 2 else (size, size, size if slices is None else slices)
    if fmt == "dicom":
        # axial DICOM (LPS row/column directions +x, +y) seen in RAS: x and y axes flipped
        directions = np.diag([-spacing, -spacing, z_spacing])
    else:
        # NIfTI in LAS orientation, as many converters write it
        directions = np.diag([-spacing, spacing, z_spacing])
    extent = np.array([(n - 1) / 2.0 for n in shape] + ([0.0] if dims == 2 else []))
    affine = np.eye(4)
    affine[:3, :3] = directions
    affine[:3, 3] = centre - directions @ extent
    return ImageGeometry(shape=shape, affine=affine)


def _lesion_spec(
    rng: np.random.Generator, geometry: ImageGeometry, body_scale: float
) -> tuple[np.ndarray, float]:
    spacing = float(abs(geometry.affine[0, 0]))
    side = rng.choice([-1.0, 1.0])
    radius = float(rng.uniform(1.7, 2.4) * spacing)
    centre_z = geometry.affine[2, 3] + geometry.affine[2, 2] * (
        (geometry.shape[2] - 1) / 2 if len(geometry.shape) == 3 else 0
    )
    # inside the lung, away from its edge by more than the lesion radius
    for _ in range(100):
        offset = rng.uniform(-1, 1, size=3) * np.array([28, 38, 25]) * body_scale
        centre = np.array([side * 70 * body_scale, 5.0, 0.0]) + offset
        if len(geometry.shape) == 2:
            centre[2] = centre_z
        else:
            centre[2] = centre_z + offset[2]
        inside = (
            ((centre[0] - side * 70 * body_scale) / (52 * body_scale - radius)) ** 2
            + ((centre[1] - 5) / (66 * body_scale - radius)) ** 2
            + (centre[2] / (150 * body_scale - radius)) ** 2
        )
        if inside <= 0.8:
            return centre, radius
    return np.array([side * 70 * body_scale, 5.0, centre_z]), radius


def _lesion_in_view(
    rng: np.random.Generator, geometry: ImageGeometry, body_scale: float
) -> tuple[np.ndarray, float]:
    """A nodule inside a targeted field of view, surrounded by lung (so that it shows), for ``--fov``."""
    spacing = float(abs(geometry.affine[0, 0]))
    radius = float(rng.uniform(1.7, 2.4) * spacing)
    n = np.asarray(geometry.shape, dtype=float)
    index_centre = np.append((n - 1) / 2, [0.0] * (3 - len(n)))
    centre = geometry.affine[:3, :3] @ index_centre + geometry.affine[:3, 3]
    extent = np.abs(np.diag(geometry.affine)[:3]) * np.append(n, [1.0] * (3 - len(n)))
    room = np.maximum(extent / 2 - radius - spacing, 0.0)
    if len(geometry.shape) == 2:
        room[2] = 0.0
    probes = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    candidate = centre
    for _ in range(100):
        candidate = centre + rng.uniform(-1, 1, size=3) * room
        hu, _ = _phantom_hu(candidate + 1.5 * radius * probes, body_scale, None)
        if np.all(hu == HU_LUNG):
            return candidate, radius
    return candidate, radius


def render_image(
    rng: np.random.Generator, site: dict, geometry: ImageGeometry, lesion: bool, in_view: bool = False
) -> tuple:
    """The image (float32) and lesion mask (uint8) on ``geometry``: HU with the site's noise and calibration
    offset, or, for an MR-like site, signal in arbitrary units scaled by a per-image gain. ``in_view``: the
    field of view is targeted (``--fov``), so the nodule is placed inside it."""
    body_scale = float(rng.uniform(0.92, 1.08))
    if lesion:
        spec = (_lesion_in_view if in_view else _lesion_spec)(rng, geometry, body_scale)
    else:
        spec = None
    hu, mask = _phantom_hu(geometry.world(), body_scale, spec)
    if lesion and not mask.any():  # a lesion must show: put it on the nearest voxel centre
        world = geometry.world()
        nearest = np.unravel_index(((world - spec[0]) ** 2).sum(-1).argmin(), mask.shape)
        mask[nearest] = True
        hu[nearest] = HU_LESION
    if site.get("modality") == "MR":
        gain = float(rng.uniform(*site["gain"]))
        xs, ys = zip(*MR_SIGNAL, strict=True)
        signal = np.interp(hu, xs, ys) * gain + rng.normal(0.0, site["noise_signal"] * gain, size=hu.shape)
        return np.clip(signal, 0.0, None).astype(np.float32), mask.astype(np.uint8)
    hu = hu + site["hu_offset"] + rng.normal(0.0, site["noise_hu"], size=hu.shape)
    return hu.astype(np.float32), mask.astype(np.uint8)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, dtype=np.int16) -> None:
    img = nib.Nifti1Image(np.asarray(np.round(data) if dtype != np.float32 else data, dtype=dtype), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header["descrip"] = b"mmdx synthetic"
    nib.save(img, str(path))
