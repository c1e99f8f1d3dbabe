"""The image preprocessing plan: measured on the training images, fixed in the model bundle.

A cohort mmdx did not generate may hold 20 mm MR patches, 350 mm chest CTs or 1.8 m radiographs; one fixed
grid cannot serve them all. As in nnU-Net's dataset fingerprint, training therefore

1. **measures a fingerprint** of the training split's images (:class:`Fingerprint`): per image its
   dimensionality, shape, spacing and field of view along the grid's axes, orientation, modality (DICOM
   header, else the cohort's declared ``image.modality``) and intensity percentiles (:class:`ImageFacts`,
   gathered while validation decodes each image anyway);
2. **derives the plan** (:func:`derive_plan`, an :class:`ImagePlan`): the dimensionality most training
   images have; a target spacing and shape such that the *median field of view fills the grid* within the
   config's voxel budget (shape a multiple of :data:`GRID_MULTIPLE`); orientation RAS; an intensity
   normalisation per modality family (:mod:`mmdx.data.intensity`). Values the config gives explicitly win;
3. **checks every image against the plan** (:func:`check_image`) where it can still be fixed -- ``mmdx
   validate --config``/``--bundle`` and the start of ``mmdx train`` -- with typed warnings: an image
   covering less than :data:`MIN_GRID_COVERAGE` of the grid (``IMAGE_FOV_MISMATCH``), one losing more than
   :data:`MAX_CROPPED_SHARE` of its field of view to cropping (``IMAGE_FOV_CROPPED``), an intensity
   normalisation that does not fit the image's modality (``IMAGE_INTENSITY_MISMATCH``), a modality the
   model was not trained on (``IMAGE_MODALITY_UNSEEN``).

**Mixed 2D/3D cohorts.** The plan takes the dimensionality of the majority of training images. Under a 3D
plan a 2D image is dropped (``IMAGE_DIMS_DROPPED``; the case keeps its other modalities); under a 2D plan
a volume contributes its centre slice along its slice axis (``IMAGE_CENTRE_SLICE``). A config that fixes
the dimensionality against the majority of the training images fails before training, saying what to
change (:class:`PlanError`).

The plan and the fingerprint are saved in the bundle (``preprocessing.json``); prediction applies the
bundle's plan, never a new one. A bundle written before plans existed holds fixed settings, read by
:meth:`ImagePlan.from_legacy` (a HU window for every image, as then).

Conventions: for a 3D image the grid's axes are RAS x, y, z; for a 2D image they are the two world axes its
rows and columns run closest to (x, y for an axial slice, x, z for a coronal radiograph), in that order.
Fields of view are voxel-edge extents in mm along those axes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmdx.data.intensity import (
    AUTO_METHOD,
    IntensityMethod,
    IntensitySpec,
    ModalityFamily,
    mismatch,
    modality_family,
    percentiles,
    spec_for,
)
from mmdx.data.issues import Issue, IssueCode, Severity
from mmdx.errors import MmdxError

PLAN_VERSION = 1
#: An image covering less than this share of the grid's volume (area in 2D) gets IMAGE_FOV_MISMATCH.
MIN_GRID_COVERAGE = 0.5
#: An image losing more than this share of its field of view to cropping gets IMAGE_FOV_CROPPED.
MAX_CROPPED_SHARE = 0.5
#: Planned grid axes are multiples of this (the encoders halve the grid several times).
GRID_MULTIPLE = 8
#: Smallest planned grid axis, in voxels.
MIN_AXIS = 16
#: Key of the intensity spec applied to every modality (plans written before plans existed).
ANY_MODALITY = "ANY"


class PlanError(MmdxError):
    """The config and the cohort's images cannot be reconciled; the message says what to change."""


# ---------------------------------------------------------------------------------------------------------
# per-image facts
# ---------------------------------------------------------------------------------------------------------
def plane_axes(affine: np.ndarray) -> list[int]:
    """The two world axes (0 = x, 1 = y, 2 = z) a 2D image's columns and rows run closest to, ascending.

    An axial slice gives ``[0, 1]``, a coronal radiograph ``[0, 2]``, a sagittal one ``[1, 2]``.
    """
    matrix = np.abs(np.asarray(affine, dtype=np.float64)[:3, :2])
    first = int(np.argmax(matrix[:, 0]))
    rest = matrix[:, 1].copy()
    rest[first] = -1.0
    second = int(np.argmax(rest))
    return sorted([first, second])


def spatial_affine(affine: np.ndarray, dims: int) -> np.ndarray:
    """A 4x4 voxel->RAS affine reduced to the grid's ``dims`` axes: itself in 3D, the ``3 x 3`` affine of
    the image's plane (:func:`plane_axes`) in 2D."""
    affine = np.asarray(affine, dtype=np.float64)
    if dims == 3:
        return affine
    rows = [*plane_axes(affine), 3]
    return affine[np.ix_(rows, [0, 1, 3])]


def _world_extent(affine: np.ndarray, shape: tuple[int, ...], axes: list[int]) -> list[float]:
    """Voxel-edge extent (mm) of an image along world ``axes``: the voxel centres' bounding box plus one
    voxel's projection."""
    n = len(shape)
    matrix = np.asarray(affine, dtype=np.float64)[:3, :n]
    corners = np.array(np.meshgrid(*[[0.0, s - 1.0] for s in shape], indexing="ij")).reshape(n, -1)
    world = matrix @ corners
    span = world.max(axis=1) - world.min(axis=1) + np.abs(matrix).sum(axis=1)
    return [round(float(span[a]), 4) for a in axes]


def _world_spacing(affine: np.ndarray, n: int, axes: list[int]) -> list[float]:
    """Voxel size (mm) along world ``axes``: the step of the array axis running closest to each."""
    matrix = np.abs(np.asarray(affine, dtype=np.float64)[:3, :n])
    return [round(float(matrix[a].max()), 6) for a in axes]


@dataclass(frozen=True)
class ImageFacts:
    """What the plan needs to know about one image (JSON-serialisable via :meth:`to_dict`).

    ``dims``: 2 or 3 (a single-slice volume counts as 2D); ``shape``: the array shape; ``spacing``: mm
    along the grid's axes; ``fov_mm``: field of view along the grid's axes; ``slice_fov_mm`` and
    ``slice_spacing``: the same for a volume's centre slice (what a 2D plan would see); ``modality``: the
    DICOM Modality ("" when the file has none); ``photometric``: PhotometricInterpretation ("" for NIfTI);
    ``percentiles``: of the raw values (``p0.5``, ``p5``, ``p50``, ``p95``, ``p99.5``).
    """

    dims: int
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    fov_mm: tuple[float, ...]
    axcodes: str
    modality: str = ""
    photometric: str = ""
    percentiles: Mapping[str, float] = field(default_factory=dict)
    slice_fov_mm: tuple[float, ...] | None = None
    slice_spacing: tuple[float, ...] | None = None

    def geometry(self, dims: int) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """``(fov_mm, spacing)`` as a ``dims``-D plan sees this image; ``None`` when it cannot (a 2D image
        under a 3D plan)."""
        if dims == self.dims:
            return self.fov_mm, self.spacing
        if dims == 2 and self.slice_fov_mm is not None and self.slice_spacing is not None:
            return self.slice_fov_mm, self.slice_spacing
        return None

    def to_dict(self) -> dict:
        return {
            "dims": self.dims,
            "shape": list(self.shape),
            "spacing": list(self.spacing),
            "fov_mm": list(self.fov_mm),
            "axcodes": self.axcodes,
            "modality": self.modality,
            "photometric": self.photometric,
            "percentiles": dict(self.percentiles),
            "slice_fov_mm": None if self.slice_fov_mm is None else list(self.slice_fov_mm),
            "slice_spacing": None if self.slice_spacing is None else list(self.slice_spacing),
        }

    @classmethod
    def from_dict(cls, state: Mapping) -> ImageFacts:
        def tup(key: str) -> tuple | None:
            value = state.get(key)
            return None if value is None else tuple(value)

        return cls(
            dims=int(state["dims"]),
            shape=tuple(int(s) for s in state["shape"]),
            spacing=tuple(float(s) for s in state["spacing"]),
            fov_mm=tuple(float(s) for s in state["fov_mm"]),
            axcodes=str(state.get("axcodes", "")),
            modality=str(state.get("modality", "")),
            photometric=str(state.get("photometric", "")),
            percentiles=dict(state.get("percentiles") or {}),
            slice_fov_mm=tup("slice_fov_mm"),
            slice_spacing=tup("slice_spacing"),
        )


def facts_of(array: np.ndarray, affine: np.ndarray, meta: Mapping | None = None) -> ImageFacts:
    """The :class:`ImageFacts` of an image read by :func:`mmdx.data.imaging.read_image`."""
    import nibabel as nib

    meta = meta or {}
    array = np.asarray(array)
    affine = np.asarray(affine, dtype=np.float64)
    shape = tuple(int(s) for s in array.shape)
    flat = len(shape) == 2 or shape[2] == 1
    if flat:
        plane = plane_axes(affine)
        fov = _world_extent(affine, shape[:2], plane)
        spacing = _world_spacing(affine, 2, plane)
        slice_fov = slice_spacing = None
    else:
        fov = _world_extent(affine, shape, [0, 1, 2])
        spacing = _world_spacing(affine, 3, [0, 1, 2])
        plane = plane_axes(affine)
        slice_fov = tuple(_world_extent(affine, shape[:2], plane))
        slice_spacing = tuple(_world_spacing(affine, 2, plane))
    return ImageFacts(
        dims=2 if flat else 3,
        shape=shape,
        spacing=tuple(spacing),
        fov_mm=tuple(fov),
        axcodes="".join(nib.orientations.aff2axcodes(affine)),
        modality=str(meta.get("modality", "") or ""),
        photometric=str(meta.get("photometric_interpretation", "") or ""),
        percentiles=percentiles(array),
        slice_fov_mm=slice_fov,
        slice_spacing=slice_spacing,
    )


def inspect_image(
    path: str | Path, root: Path | None = None, dims: int | None = None
) -> tuple[list, dict | None]:
    """Read one image: ``(its issues, its facts as a dict)``; facts are ``None`` when it cannot be read.

    Validation calls this for every image, so the fingerprint costs no second decoding. Never raises for a
    problem with the file.
    """
    from mmdx.data.imaging import read_image
    from mmdx.data.issues import ImageReadError

    try:
        volume = read_image(path, root=root, dims=dims)
    except ImageReadError as exc:
        return [exc.issue], None
    return list(volume.warnings), facts_of(volume.array, volume.affine, volume.meta).to_dict()


# ---------------------------------------------------------------------------------------------------------
# the fingerprint
# ---------------------------------------------------------------------------------------------------------
def _stats(rows: list[tuple[float, ...]]) -> dict | None:
    if not rows:
        return None
    matrix = np.asarray(rows, dtype=np.float64)
    return {
        name: [round(float(v), 4) for v in np.percentile(matrix, q, axis=0)]
        for name, q in (("p10", 10), ("median", 50), ("p90", 90))
    }


def image_modality(facts: ImageFacts, declared: str | None) -> str:
    """The modality code of an image: its DICOM header's, else the cohort's declared one, else ""."""
    return facts.modality or (declared or "")


@dataclass(frozen=True)
class Fingerprint:
    """The training images summarised (see the module docs); a plain JSON document under ``data``."""

    data: dict

    @property
    def n_images(self) -> int:
        return int(self.data.get("n_images", 0))

    def share(self, dims: int) -> float:
        return float(self.data.get("dims", {}).get(f"{dims}d", {}).get("share", 0.0))

    def median(self, dims: int, what: str) -> tuple[float, ...] | None:
        """Median ``fov_mm`` or ``spacing`` per axis of the images a ``dims``-D plan would use."""
        entry = self.data.get("geometry", {}).get(f"{dims}d", {}).get(what)
        return None if entry is None else tuple(float(v) for v in entry["median"])

    @property
    def families(self) -> list[str]:
        return sorted(self.data.get("modalities", {}))

    def to_dict(self) -> dict:
        return self.data


def fingerprint(facts: Iterable[ImageFacts], declared_modality: str | None = None) -> Fingerprint:
    """Summarise the facts of the training images."""
    facts = list(facts)
    n = len(facts)
    by_dims = Counter(f.dims for f in facts)
    geometry: dict = {}
    for dims in (2, 3):
        seen = [g for f in facts if (g := f.geometry(dims)) is not None]
        if seen:
            geometry[f"{dims}d"] = {
                "n_images": len(seen),
                "fov_mm": _stats([fov for fov, _ in seen]),
                "spacing": _stats([spacing for _, spacing in seen]),
            }
    for dims in (2, 3):
        own = [f.shape[:dims] for f in facts if f.dims == dims]
        if own and f"{dims}d" in geometry:
            geometry[f"{dims}d"]["shape"] = _stats([tuple(float(s) for s in shape) for shape in own])
    modalities: dict = {}
    for f in facts:
        code = image_modality(f, declared_modality)
        family = str(modality_family(code))
        entry = modalities.setdefault(
            family,
            {"n_images": 0, "codes": Counter(), "source": Counter(), "photometric": Counter(), "_p": []},
        )
        entry["n_images"] += 1
        entry["codes"][code or "(none)"] += 1
        entry["source"]["header" if f.modality else ("cohort.yaml" if declared_modality else "unknown")] += 1
        if f.photometric:
            entry["photometric"][f.photometric] += 1
        if f.percentiles:
            entry["_p"].append(dict(f.percentiles))
    for entry in modalities.values():
        rows = entry.pop("_p")
        keys = sorted({k for r in rows for k in r}, key=lambda k: float(k[1:]))
        entry["percentiles_median"] = {
            k: round(float(np.median([r[k] for r in rows if k in r])), 4) for k in keys
        }
        for key in ("codes", "source", "photometric"):
            entry[key] = dict(sorted(entry[key].items()))
    return Fingerprint(
        {
            "n_images": n,
            "dims": {
                f"{d}d": {
                    "n_images": by_dims.get(d, 0),
                    "share": round(by_dims.get(d, 0) / n, 4) if n else 0.0,
                }
                for d in (2, 3)
            },
            "geometry": geometry,
            "orientation": dict(sorted(Counter(f.axcodes for f in facts).items())),
            "modalities": dict(sorted(modalities.items())),
            "declared_modality": declared_modality,
        }
    )


# ---------------------------------------------------------------------------------------------------------
# the plan
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImagePlan:
    """How every image becomes the model's input; fixed at training and saved in the bundle.

    ``dims``: 2 or 3; ``shape``: the grid in voxels; ``spacing``: mm per grid axis, or ``None`` to stretch
    each image's own bounding box onto the grid; ``intensity``: modality family (or ``ANY``) ->
    :class:`~mmdx.data.intensity.IntensitySpec`; ``trained_families``: the modality families of the
    training images; ``origin``: where each setting came from (``config``, ``fingerprint``, ``legacy``);
    ``notes``: remarks of the derivation worth showing to a user.
    """

    dims: int
    shape: tuple[int, ...]
    spacing: tuple[float, ...] | None
    intensity: Mapping[str, IntensitySpec]
    orientation: str = "RAS"
    trained_families: tuple[str, ...] = ()
    origin: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    version: int = PLAN_VERSION

    def __post_init__(self) -> None:
        if self.dims not in (2, 3) or len(self.shape) != self.dims:
            raise ValueError(f"plan: shape {list(self.shape)} does not have dims={self.dims} axes")
        if self.spacing is not None and len(self.spacing) != self.dims:
            raise ValueError(f"plan: spacing {list(self.spacing)} does not have dims={self.dims} axes")

    @property
    def legacy(self) -> bool:
        return self.origin.get("dims") == "legacy"

    @property
    def window(self) -> tuple[float, float]:
        """The HU window of CT images (what viewers offer as the model's window)."""
        for key in (ModalityFamily.CT.value, ANY_MODALITY):
            spec = self.intensity.get(key)
            if spec is not None and spec.method == IntensityMethod.WINDOW and spec.window is not None:
                return spec.window
        return (-1000.0, 400.0)

    @property
    def fov_mm(self) -> tuple[float, ...] | None:
        """The grid's field of view (mm) per axis; ``None`` when each image is stretched to the grid."""
        if self.spacing is None:
            return None
        return tuple(round(n * s, 4) for n, s in zip(self.shape, self.spacing, strict=True))

    def spec_for(self, modality: str | None) -> IntensitySpec:
        """The normalisation of an image of DICOM ``modality``."""
        family = str(modality_family(modality))
        if family in self.intensity:
            return self.intensity[family]
        if ANY_MODALITY in self.intensity:
            return self.intensity[ANY_MODALITY]
        return self.intensity.get(ModalityFamily.OTHER.value, spec_for(IntensityMethod.PERCENTILE))

    def describe(self) -> str:
        """One paragraph: the grid and the normalisation per modality."""
        shape = " x ".join(str(s) for s in self.shape)
        grid = (
            f"{self.dims}D grid of {shape} voxels of {' x '.join(f'{s:.3g}' for s in self.spacing)} mm "
            f"({' x '.join(f'{f:.0f}' for f in self.fov_mm or ())} mm)"
            if self.spacing is not None
            else f"{self.dims}D grid of {shape} voxels, each image stretched to fill it"
        )
        families = [k for k in self.intensity if k == ANY_MODALITY or k in self.trained_families]
        families = families or list(self.intensity)
        intensity = "; ".join(
            f"{'every image' if k == ANY_MODALITY else k}: {self.intensity[k].describe()}" for k in families
        )
        return f"{grid}, oriented {self.orientation}; {intensity}"

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "dims": self.dims,
            "shape": list(self.shape),
            "spacing": None if self.spacing is None else [round(float(s), 6) for s in self.spacing],
            "orientation": self.orientation,
            "intensity": {k: v.to_dict() for k, v in self.intensity.items()},
            "window": list(self.window),
            "trained_families": list(self.trained_families),
            "origin": dict(self.origin),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, state: Mapping) -> ImagePlan:
        """A plan from :meth:`to_dict`, or the fixed image settings of a bundle written before plans."""
        if "intensity" not in state or isinstance(state.get("intensity"), str):
            return cls.from_legacy(state)
        version = int(state.get("version", PLAN_VERSION))
        if version > PLAN_VERSION:
            raise PlanError(
                f"the image plan has version {version}, newer than this mmdx reads ({PLAN_VERSION}); "
                "upgrade mmdx to use this bundle"
            )
        return cls(
            dims=int(state["dims"]),
            shape=tuple(int(s) for s in state["shape"]),
            spacing=None if state.get("spacing") is None else tuple(float(s) for s in state["spacing"]),
            intensity={k: IntensitySpec.from_dict(v) for k, v in state["intensity"].items()},
            orientation=str(state.get("orientation", "RAS")),
            trained_families=tuple(state.get("trained_families") or ()),
            origin=dict(state.get("origin") or {}),
            notes=tuple(state.get("notes") or ()),
            version=version,
        )

    @classmethod
    def from_legacy(cls, state: Mapping) -> ImagePlan:
        """The fixed settings ``{dims, shape, spacing, window}`` of a bundle written before plans existed:
        the HU window applied to every image, whatever its modality."""
        try:
            dims = int(state["dims"])
            shape = tuple(int(s) for s in state["shape"])
            window = tuple(float(v) for v in state.get("window", (-1000.0, 400.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(
                f"the bundle's image settings {dict(state)!r} are neither a plan nor the fixed settings of an "
                f"older mmdx ({type(exc).__name__}: {exc}); retrain the model"
            ) from None
        spacing = state.get("spacing")
        return cls(
            dims=dims,
            shape=shape,
            spacing=None if spacing is None else tuple(float(s) for s in spacing),
            intensity={ANY_MODALITY: IntensitySpec(IntensityMethod.WINDOW, window=window)},  # type: ignore[arg-type]
            origin={"dims": "legacy", "shape": "legacy", "spacing": "legacy", "intensity": "legacy"},
        )

    @classmethod
    def from_config(cls, config) -> ImagePlan:
        """A plan from a config that fixes the grid (dims, shape, spacing); ``intensity: auto`` takes each
        modality family's default normalisation. Raises :class:`PlanError` for an ``auto`` grid setting."""
        auto = [k for k in ("shape", "spacing") if getattr(config, k) == "auto"]
        if auto or config.declared_dims is None:
            missing = auto or ["dims"]
            raise PlanError(
                f"data.image.{', data.image.'.join(missing)} is auto: fit a plan to the training images "
                "(mmdx.data.plan.plan_cohort_images) or give explicit values"
            )
        window = tuple(float(v) for v in config.window)
        if config.intensity == "auto":
            intensity = {str(f): spec_for(AUTO_METHOD[f], window) for f in ModalityFamily}
        else:
            intensity = {ANY_MODALITY: spec_for(config.intensity, window)}
        return cls(
            dims=int(config.declared_dims),
            shape=tuple(int(s) for s in config.shape),
            spacing=None if config.spacing is None else tuple(float(s) for s in config.spacing),
            intensity=intensity,
            origin=dict.fromkeys(("dims", "shape", "spacing", "intensity"), "config"),
        )


def _round_axis(value: float, up: bool = False) -> int:
    steps = math.ceil(value / GRID_MULTIPLE - 1e-9) if up else int(round(value / GRID_MULTIPLE))
    return max(MIN_AXIS, GRID_MULTIPLE * steps)


def _fit_shape(voxels: np.ndarray, budget: int, up: bool = False) -> tuple[int, ...]:
    """Grid axes near ``voxels`` (fractional; at least as many with ``up``), multiples of GRID_MULTIPLE,
    whose product fits ``budget``."""
    voxels = np.maximum(np.asarray(voxels, dtype=np.float64), 1.0)
    total = float(np.prod(voxels))
    if total > budget:
        voxels = voxels * (budget / total) ** (1.0 / len(voxels))
    shape = [_round_axis(v, up) for v in voxels]
    while math.prod(shape) > budget and max(shape) > MIN_AXIS:
        # shrink the axis that overshoots its ideal size the most
        ratios = [s / v if s > MIN_AXIS else 0.0 for s, v in zip(shape, voxels, strict=True)]
        shape[int(np.argmax(ratios))] -= GRID_MULTIPLE
    return tuple(shape)


def derive_plan(fp: Fingerprint, config) -> ImagePlan:
    """The plan for images like those of ``fp`` under the image config ``config`` (explicit values win).

    Raises :class:`PlanError` when the config fixes a dimensionality that most training images lack, or
    when no training image fits the chosen dimensionality.
    """
    origin: dict[str, str] = {}
    notes: list[str] = []
    declared = config.declared_dims
    majority = 3 if fp.share(3) > fp.share(2) else 2
    if declared is None:
        dims = majority
        origin["dims"] = "fingerprint"
    else:
        dims = declared
        origin["dims"] = "config"
        other_share = fp.share(5 - dims)
        if fp.n_images and other_share > 0.5:
            found = "3D volumes" if dims == 2 else "2D images"
            key = "data.image.dims" if config.dims != "auto" else "data.image.shape"
            raise PlanError(
                f"the config asks for {dims}D images ({key}) but {other_share:.0%} of the "
                f"{fp.n_images} training images are {found}; set data.image.dims, shape and spacing to auto "
                f"(or --set data.image.dims={5 - dims} --set data.image.shape=auto --set data.image.spacing=auto)"
            )
    fov = fp.median(dims, "fov_mm")
    native = fp.median(dims, "spacing")
    budget = config.budget(dims)
    shape_auto, spacing_auto = config.shape == "auto", config.spacing == "auto"
    if (shape_auto or spacing_auto) and fov is None:
        raise PlanError(
            f"no training image can be planned as {dims}D, so data.image.shape/spacing cannot be fitted; "
            "give explicit values or check the cohort's images with 'mmdx validate'"
        )
    if shape_auto and spacing_auto:
        assert fov is not None and native is not None
        shape = _fit_shape(np.asarray(fov) / np.asarray(native), budget)
        spacing: tuple[float, ...] | None = tuple(f / n for f, n in zip(fov, shape, strict=True))
        origin.update(shape="fingerprint", spacing="fingerprint")
        ideal = math.prod(f / s for f, s in zip(fov, native, strict=True))
        if ideal > budget * 1.05:
            notes.append(
                f"the median field of view at the median spacing needs {ideal:,.0f} voxels, more than the "
                f"budget of {budget:,}: the grid is coarser than the images ({_fmt(spacing)} mm against "
                f"{_fmt(native)} mm); raise data.image.voxel_budget_{dims}d for finer detail"
            )
    elif shape_auto:
        assert fov is not None
        if config.spacing is None:
            assert native is not None
            shape = _fit_shape(np.asarray(fov) / np.asarray(native), budget)
            spacing = None
        else:
            spacing = tuple(float(s) for s in config.spacing)
            shape = _fit_shape(np.asarray(fov) / np.asarray(spacing), budget, up=True)
            covered = [n * s for n, s in zip(shape, spacing, strict=True)]
            if any(c < 0.9 * f for c, f in zip(covered, fov, strict=True)):
                notes.append(
                    f"at the configured spacing {_fmt(spacing)} mm the budget of {budget:,} voxels covers "
                    f"{_fmt(covered)} mm of the median field of view {_fmt(fov)} mm"
                )
        origin.update(shape="fingerprint", spacing="config")
    elif spacing_auto:
        assert fov is not None
        shape = tuple(int(s) for s in config.shape)
        spacing = tuple(f / n for f, n in zip(fov, shape, strict=True))
        origin.update(shape="config", spacing="fingerprint")
    else:
        shape = tuple(int(s) for s in config.shape)
        spacing = None if config.spacing is None else tuple(float(s) for s in config.spacing)
        origin.update(shape="config", spacing="config")
    window = tuple(float(v) for v in config.window)
    if config.intensity == "auto":
        intensity = {str(f): spec_for(AUTO_METHOD[f], window) for f in ModalityFamily}
        origin["intensity"] = "fingerprint"
    else:
        intensity = {ANY_MODALITY: spec_for(config.intensity, window)}
        origin["intensity"] = "config"
    families = tuple(fp.families)
    if "OTHER" in families:
        notes.append(
            "some training images have no known modality (no DICOM Modality and no image.modality in "
            "cohort.yaml): they are percentile-scaled; declare image.modality in cohort.yaml if they are CT"
        )
    return ImagePlan(
        dims=dims,
        shape=tuple(shape),
        spacing=spacing,
        intensity=intensity,
        trained_families=families,
        origin=origin,
        notes=tuple(notes),
    )


def _share(value: float) -> str:
    """A share as a percentage, with two significant digits below 1%."""
    return f"{value:.0%}" if value >= 0.01 else f"{value * 100:.2g}%"


def _fmt(values: Iterable[float] | None) -> str:
    """``"40 x 40 x 100"``: millimetres to three significant digits, whole millimetres from 1 m on."""
    return " x ".join(f"{v:.0f}" if abs(v) >= 1000 else f"{v:.3g}" for v in values or ())


# ---------------------------------------------------------------------------------------------------------
# checking images against the plan
# ---------------------------------------------------------------------------------------------------------
def grid_coverage(facts: ImageFacts, plan: ImagePlan) -> tuple[float, float] | None:
    """``(share of the grid the image covers, share of the image cropped away)``; ``None`` when the plan
    cannot take the image or stretches every image to the grid."""
    geometry = facts.geometry(plan.dims)
    grid = plan.fov_mm
    if geometry is None or grid is None:
        return None
    fov = geometry[0]
    inside = [min(f, g) for f, g in zip(fov, grid, strict=True)]
    covered = math.prod(i / g for i, g in zip(inside, grid, strict=True))
    kept = math.prod(i / f for i, f in zip(inside, fov, strict=True) if f > 0)
    return covered, 1.0 - kept


def check_image(
    facts: ImageFacts, plan: ImagePlan, declared_modality: str | None = None, file: str | None = None
) -> list[Issue]:
    """Warnings for one image under ``plan`` (see the module docs); ``[]`` when it fits."""
    out: list[Issue] = []

    def warn(code: IssueCode, message: str) -> None:
        out.append(Issue(code=code, message=message, file=file, severity=Severity.WARNING))

    if plan.dims == 3 and facts.dims == 2:
        warn(
            IssueCode.IMAGE_DIMS_DROPPED,
            f"a 2D image (shape {list(facts.shape)}) in a cohort planned as 3D volumes: the image is not used "
            "(the case keeps its other modalities); give a volume, or train a 2D model (data.image.dims: 2)",
        )
        return out
    if plan.dims == 2 and facts.dims == 3:
        warn(
            IssueCode.IMAGE_CENTRE_SLICE,
            f"a volume (shape {list(facts.shape)}) in a cohort planned as 2D images: the model sees its centre "
            f"slice ({facts.shape[2] // 2 + 1} of {facts.shape[2]})",
        )
    coverage = grid_coverage(facts, plan)
    if coverage is not None:
        covered, cropped = coverage
        geometry = facts.geometry(plan.dims)
        assert geometry is not None
        fov, grid = _fmt(geometry[0]), _fmt(plan.fov_mm)
        if covered < MIN_GRID_COVERAGE:
            warn(
                IssueCode.IMAGE_FOV_MISMATCH,
                f"the image's field of view ({fov} mm) covers {_share(covered)} of the model grid ({grid} mm): "
                "most of what the model sees is padding; plan the grid on images like this one, or crop "
                "the others to a similar field of view",
            )
        if cropped > MAX_CROPPED_SHARE:
            warn(
                IssueCode.IMAGE_FOV_CROPPED,
                f"the model grid ({grid} mm) keeps {_share(1 - cropped)} of the image's field of view ({fov} mm): "
                "the rest is cropped away around its centre",
            )
    modality = image_modality(facts, declared_modality)
    family = modality_family(modality)
    spec = plan.spec_for(modality)
    reason = mismatch(family, spec.method)
    if reason is None and spec.method == IntensityMethod.WINDOW and family == ModalityFamily.CT:
        assert spec.window is not None
        reason = _not_hounsfield(facts.percentiles, spec.window)
    if reason is not None:
        warn(
            IssueCode.IMAGE_INTENSITY_MISMATCH,
            f"{modality or 'an image of unknown modality'}: {reason} (normalisation: {spec.describe()}); "
            "use data.image.intensity: auto",
        )
    if plan.trained_families and str(family) not in plan.trained_families:
        warn(
            IssueCode.IMAGE_MODALITY_UNSEEN,
            f"a {modality or 'modality-less'} image, but the model was trained on "
            f"{', '.join(plan.trained_families)} images only; its prediction is outside what it learned",
        )
    return out


#: Hounsfield units run from air (-1000) to dense metal (about +3000); scanners pad outside the scan
#: circle with values down to -3024. Raw stored values (Rescale Slope/Intercept not applied) or arbitrary
#: units fall outside this range or put the median where no tissue is.
HU_RANGE: tuple[float, float] = (-3100.0, 4000.0)
#: A median below air (with noise) is not a CT image in HU; a median *at* air is a mostly-air image
#: (the top of a head, a slice outside the body) and is fine.
HU_BELOW_AIR: float = -1100.0


def _not_hounsfield(p: Mapping[str, float], window: tuple[float, float]) -> str | None:
    """Why a CT image's percentiles ``p`` do not look like Hounsfield units under ``window``; ``None`` if they do."""
    low, median, high = p.get("p0.5"), p.get("p50"), p.get("p99.5")
    question = "are the values Hounsfield units (Rescale Slope/Intercept applied)?"
    if low is not None and high is not None and (low < HU_RANGE[0] or high > HU_RANGE[1]):
        return (
            f"its values run from {low:g} to {high:g} (0.5th to 99.5th percentile), outside the Hounsfield "
            f"range {HU_RANGE[0]:g} to {HU_RANGE[1]:g}: {question}"
        )
    if median is None:
        return None
    if median > window[1]:
        return (
            f"its median value {median:g} lies above the HU window {window[0]:g} to {window[1]:g}: {question}"
        )
    if median < HU_BELOW_AIR:
        return f"its median value {median:g} lies below air ({HU_BELOW_AIR:g} HU): {question}"
    return None


def centre_slice(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The slice ``k = K // 2`` of a volume ``[I, J, K]`` as ``[I, J]`` with its 4x4 affine (origin moved)."""
    k = array.shape[2] // 2
    moved = np.asarray(affine, dtype=np.float64).copy()
    moved[:3, 3] = moved[:3, 3] + moved[:3, 2] * k
    return np.ascontiguousarray(array[:, :, k]), moved


# ---------------------------------------------------------------------------------------------------------
# a validated cohort
# ---------------------------------------------------------------------------------------------------------
@dataclass
class CohortImagePlan:
    """A plan applied to a validated cohort: the plan, the fingerprint it came from (``None`` for a plan
    given, e.g. a bundle's), the warnings per case and the cases whose image was dropped."""

    plan: ImagePlan
    fingerprint: Fingerprint | None
    issues: dict[str, list[Issue]]
    dropped: list[str]

    def summary(self) -> dict:
        codes = Counter(str(i.code) for issues in self.issues.values() for i in issues)
        return {
            "plan": self.plan.to_dict(),
            "warnings_by_code": dict(sorted(codes.items())),
            "dropped": len(self.dropped),
        }


def describe_warnings(planned: CohortImagePlan) -> str:
    """``"; 12 image warnings (IMAGE_FOV_MISMATCH 10, ...)"`` or ``""`` (for one-line logs)."""
    codes = planned.summary()["warnings_by_code"]
    if not codes:
        return ""
    listing = ", ".join(f"{code} {count}" for code, count in sorted(codes.items(), key=lambda kv: -kv[1]))
    return f"; {sum(codes.values())} image warning(s) ({listing}); see the validation report"


def declared_modality(cohort) -> str | None:
    """The modality ``cohort.yaml`` declares for its images (``image.modality``), if any."""
    value = (cohort.spec.get("image") or {}).get("modality")
    return str(value) if value else None


def cohort_facts(cohort, case_ids: Iterable[str] | None = None) -> dict[str, ImageFacts]:
    """:class:`ImageFacts` of the usable images of ``case_ids`` (default: every case with an image).

    Validation gathers them while it decodes the images; a cohort validated without decoding
    (``check_images=False``) has its images read here.
    """
    cases = cohort.cases
    if cases.empty or "image_path" not in cases:
        return {}
    with_image = cases[cases["has_image"].astype(bool)]
    if case_ids is not None:
        wanted = set(case_ids)
        with_image = with_image[with_image["case_id"].isin(wanted)]
    known = getattr(cohort, "image_facts", None)
    if known is None:
        known = {}
    # facts read here are kept on the cohort, so a second plan (a resumed run, a check) reads nothing
    out: dict[str, ImageFacts] = {}
    for case_id, path in zip(with_image["case_id"], with_image["image_path"], strict=True):
        state = known.get(case_id)
        if state is None:
            _, state = inspect_image(path)
            if state is None:
                continue
            known[case_id] = state
        out[str(case_id)] = ImageFacts.from_dict(state)
    return out


def plan_cohort_images(cohort, config=None, plan: ImagePlan | None = None) -> CohortImagePlan:
    """Fit a plan to the training split's images under the image ``config`` (or apply ``plan``, e.g. a
    bundle's), check every usable image against it and record the warnings in the cohort's validation
    report. Images the plan cannot take (2D under a 3D plan) are dropped from their cases; a case left with
    no modality is rejected.

    Raises :class:`PlanError` when the config and the images cannot be reconciled.
    """
    from mmdx.data.validation import attach_issues

    declared = declared_modality(cohort)
    facts = cohort_facts(cohort)
    fp = None
    if plan is None:
        if config is None:
            raise ValueError("plan_cohort_images needs an image config or a plan")
        train_ids = set(cohort.split("train")["case_id"])
        fp = fingerprint([f for c, f in facts.items() if c in train_ids], declared)
        if fp.n_images == 0 and any(getattr(config, k) == "auto" for k in ("dims", "shape", "spacing")):
            raise PlanError(
                f"no usable image in the training split of {cohort.name}, so data.image cannot be fitted to "
                "it; train without the image encoder (--set model.image=null) or give explicit "
                "data.image.dims, shape and spacing"
            )
        plan = derive_plan(fp, config)
    issues: dict[str, list[Issue]] = {}
    files = cohort.cases.set_index("case_id")["image_path"]
    for case_id, image in facts.items():
        label = _relative(files.get(case_id), cohort.root)
        found = check_image(image, plan, declared, label)
        if found:
            issues[case_id] = found
    dropped = [c for c, found in issues.items() if any(i.code == IssueCode.IMAGE_DIMS_DROPPED for i in found)]
    attach_issues(cohort, issues, drop_images=dropped)
    return CohortImagePlan(plan=plan, fingerprint=fp, issues=issues, dropped=dropped)


def _relative(path: object, root: Path) -> str | None:
    if not isinstance(path, str):
        return None
    try:
        return Path(path).relative_to(Path(root)).as_posix()
    except ValueError:
        return path
