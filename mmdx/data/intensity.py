"""Image intensities: which modality an image is, and how its values become the model's [0, 1] input.

This module owns every intensity mapping of mmdx -- the model's preprocessing and any viewer that shows an
image as the model saw it use the same functions:

* **CT** (Hounsfield units, physical): a HU *window* ``(low, high)`` mapped linearly to [0, 1], clipped
  (:func:`apply_window`). Window/level presets (:func:`window_bounds`) use the same mapping.
* **MR** (arbitrary units that differ between scanners and even series): a per-image *robust z-score*
  (:func:`robust_zscore`) -- median and normalised interquartile range of the voxels above the image's
  background floor -- clipped to ``±clip_sd`` and mapped to [0, 1].
* **CR/DX and other projection radiographs** (detector values, arbitrary units): *percentile scaling*
  per image (:func:`percentile_scale`), the ``percentiles`` (default 0.5 and 99.5) mapped to 0 and 1,
  clipped. A ``MONOCHROME1`` image (where the lowest value is shown white) is inverted (:func:`invert`)
  so that dense structures are bright in every image, as in ``MONOCHROME2``.

The modality comes from the DICOM header (``Modality``) or, for files without one (NIfTI), from the
cohort's declared ``image.modality`` in ``cohort.yaml``; :func:`modality_family` groups DICOM modality
codes into the families above. Images of any other or unknown modality are percentile-scaled, which
suits any unit.

All functions take and return float arrays of any shape; the output of :func:`normalise` is float32 in
[0, 1], 0 being the darkest value (air in CT, background in MR, padding outside the field of view).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

import numpy as np

#: The CT window of the model input when a config gives none (HU): air to dense soft tissue.
DEFAULT_WINDOW: tuple[float, float] = (-1000.0, 400.0)
#: Percentiles mapped to 0 and 1 by percentile scaling.
DEFAULT_PERCENTILES: tuple[float, float] = (0.5, 99.5)
#: Robust z-scores are clipped to this many standard deviations before mapping to [0, 1].
DEFAULT_CLIP_SD = 3.0
#: Normalised interquartile range: the IQR of a normal distribution is 1.349 standard deviations.
_IQR_TO_SD = 1.349
#: At most this many voxels are used to estimate an image's percentiles (a regular subsample beyond).
_MAX_SAMPLE = 1 << 20


class ModalityFamily(StrEnum):
    """Groups of DICOM modality codes that share an intensity normalisation."""

    CT = "CT"  # Hounsfield units
    MR = "MR"  # arbitrary units
    XR = "XR"  # projection radiography: CR, DX, MG, RF, XA, PX, IO
    OTHER = "OTHER"  # anything else, or unknown


class IntensityMethod(StrEnum):
    """How an image's values are mapped to [0, 1]."""

    WINDOW = "window"  # fixed HU window
    ZSCORE = "zscore"  # per-image robust z-score
    PERCENTILE = "percentile"  # per-image percentile scaling


_XR_CODES = frozenset({"CR", "DX", "MG", "RF", "XA", "PX", "IO", "DR", "RG"})


def modality_family(modality: str | None) -> ModalityFamily:
    """The family of a DICOM ``Modality`` code (``"CT"``, ``"MR"``, ``"CR"``, ...); OTHER when unknown."""
    code = str(modality or "").strip().upper()
    if code == "CT":
        return ModalityFamily.CT
    if code in ("MR", "MRI"):
        return ModalityFamily.MR
    if code in _XR_CODES:
        return ModalityFamily.XR
    return ModalityFamily.OTHER


#: The method each family gets under ``intensity: auto``.
AUTO_METHOD: dict[ModalityFamily, IntensityMethod] = {
    ModalityFamily.CT: IntensityMethod.WINDOW,
    ModalityFamily.MR: IntensityMethod.ZSCORE,
    ModalityFamily.XR: IntensityMethod.PERCENTILE,
    ModalityFamily.OTHER: IntensityMethod.PERCENTILE,
}


@dataclass(frozen=True)
class IntensitySpec:
    """One normalisation with its parameters. ``window``: HU ``(low, high)`` for WINDOW; ``percentiles``:
    ``(low, high)`` in percent for PERCENTILE; ``clip_sd``: for ZSCORE; ``invert_monochrome1``: invert
    MONOCHROME1 images after PERCENTILE scaling."""

    method: IntensityMethod
    window: tuple[float, float] | None = None
    percentiles: tuple[float, float] | None = None
    clip_sd: float | None = None
    invert_monochrome1: bool = False

    def __post_init__(self) -> None:
        method = IntensityMethod(self.method)
        object.__setattr__(self, "method", method)
        if method == IntensityMethod.WINDOW:
            low, high = self.window if self.window is not None else DEFAULT_WINDOW
            if not high > low:
                raise ValueError(f"window {self.window}: the upper HU bound must exceed the lower")
            object.__setattr__(self, "window", (float(low), float(high)))
        elif method == IntensityMethod.PERCENTILE:
            low, high = self.percentiles if self.percentiles is not None else DEFAULT_PERCENTILES
            if not 0 <= low < high <= 100:
                raise ValueError(f"percentiles {self.percentiles}: need 0 <= low < high <= 100")
            object.__setattr__(self, "percentiles", (float(low), float(high)))
        else:
            clip = DEFAULT_CLIP_SD if self.clip_sd is None else float(self.clip_sd)
            if not clip > 0:
                raise ValueError(f"clip_sd {self.clip_sd} must be positive")
            object.__setattr__(self, "clip_sd", clip)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["method"] = str(self.method)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items() if v is not None}

    @classmethod
    def from_dict(cls, state: dict) -> IntensitySpec:
        return cls(
            method=IntensityMethod(state["method"]),
            window=tuple(state["window"]) if state.get("window") is not None else None,
            percentiles=tuple(state["percentiles"]) if state.get("percentiles") is not None else None,
            clip_sd=state.get("clip_sd"),
            invert_monochrome1=bool(state.get("invert_monochrome1", False)),
        )

    def describe(self) -> str:
        """One line for model cards and reports."""
        if self.method == IntensityMethod.WINDOW:
            assert self.window is not None
            return f"HU window {self.window[0]:g} to {self.window[1]:g} mapped to [0, 1], clipped"
        if self.method == IntensityMethod.ZSCORE:
            return f"per-image robust z-score (median, IQR/1.349) clipped to ±{self.clip_sd:g} SD, mapped to [0, 1]"
        assert self.percentiles is not None
        inverted = "; MONOCHROME1 inverted" if self.invert_monochrome1 else ""
        return (
            f"per-image percentiles {self.percentiles[0]:g}-{self.percentiles[1]:g} mapped to [0, 1], "
            f"clipped{inverted}"
        )


def spec_for(method: IntensityMethod | str, window: tuple[float, float] = DEFAULT_WINDOW) -> IntensitySpec:
    """The default parameters of ``method`` (``window`` for the WINDOW method)."""
    method = IntensityMethod(method)
    if method == IntensityMethod.WINDOW:
        return IntensitySpec(method, window=window)
    if method == IntensityMethod.ZSCORE:
        return IntensitySpec(method, clip_sd=DEFAULT_CLIP_SD)
    return IntensitySpec(method, percentiles=DEFAULT_PERCENTILES, invert_monochrome1=True)


def mismatch(family: ModalityFamily | str, method: IntensityMethod | str) -> str | None:
    """Why ``method`` does not fit images of ``family`` (``None`` when it does).

    A HU window assumes physical CT units; MR and radiograph values are in arbitrary units, so a fixed
    window clips them to a uniform block or leaves them nearly constant.
    """
    family, method = ModalityFamily(family), IntensityMethod(method)
    if method == IntensityMethod.WINDOW and family in (ModalityFamily.MR, ModalityFamily.XR):
        kind = "MR" if family == ModalityFamily.MR else "radiograph"
        return (
            f"{kind} intensities are in arbitrary units, not Hounsfield units: a HU window does not fit them"
        )
    return None


# ---------------------------------------------------------------------------------------------------------
# the mappings
# ---------------------------------------------------------------------------------------------------------
def window_bounds(level: float, width: float) -> tuple[float, float]:
    """``(low, high)`` of a window given as level (centre) and width, in the image's units."""
    if not width > 0:
        raise ValueError(f"window width must be positive, got {width!r}")
    return level - width / 2, level + width / 2


def apply_window(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` mapped linearly to [0, 1]: ``low`` and below -> 0, ``high`` and above -> 1 (float64)."""
    if not high > low:
        raise ValueError(f"window ({low}, {high}): the upper bound must exceed the lower")
    return np.clip((np.asarray(values, dtype=np.float64) - low) / (high - low), 0.0, 1.0)


def sample(values: np.ndarray, limit: int = _MAX_SAMPLE) -> np.ndarray:
    """At most ``limit`` finite values of ``values`` (a regular subsample of a large image), flattened."""
    flat = np.asarray(values).reshape(-1)
    if flat.size > limit:
        flat = flat[:: int(np.ceil(flat.size / limit))]
    return flat[np.isfinite(flat)]


def robust_zscore(values: np.ndarray) -> np.ndarray:
    """``(values - median) / (IQR / 1.349)`` over the image's foreground (float64, same shape).

    The foreground is every voxel above the image's minimum when they are at least a tenth of the image
    (MR background is a floor of near-zero signal that would otherwise dominate the median); otherwise all
    voxels. A constant image has zero spread and maps to zeros.
    """
    array = np.asarray(values, dtype=np.float64)
    data = sample(array)
    if data.size == 0:
        return np.zeros_like(array)
    floor = float(data.min())
    foreground = data[data > floor]
    if foreground.size < 0.1 * data.size:
        foreground = data
    q25, median, q75 = np.percentile(foreground, [25.0, 50.0, 75.0])
    scale = (q75 - q25) / _IQR_TO_SD
    if not scale > 0:
        scale = float(np.std(foreground))
    if not scale > 0:
        return np.zeros_like(array)
    return (array - median) / scale


def percentile_bounds(values: np.ndarray, low: float, high: float) -> tuple[float, float] | None:
    """The image's ``low`` and ``high`` percentiles as a window ``(lo, hi)`` with ``hi > lo`` (a constant
    image gets ``(v, v + 1)``); ``None`` when the image holds no finite value."""
    data = sample(values)
    if data.size == 0:
        return None
    lo, hi = (float(v) for v in np.percentile(data, [low, high]))
    if not hi > lo:
        hi = lo + 1.0  # a constant image maps to 0, not to NaN
    return lo, hi


def percentile_scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """The image's ``low`` and ``high`` percentiles mapped to 0 and 1, clipped (float64)."""
    array = np.asarray(values, dtype=np.float64)
    bounds = percentile_bounds(array, low, high)
    if bounds is None:
        return np.zeros_like(array)
    lo, hi = bounds
    return np.clip((array - lo) / (hi - lo), 0.0, 1.0)


def invert(unit: np.ndarray) -> np.ndarray:
    """``1 - unit`` for values already in [0, 1] (MONOCHROME1 shown the MONOCHROME2 way)."""
    return 1.0 - np.asarray(unit, dtype=np.float64)


def normalise(values: np.ndarray, spec: IntensitySpec, photometric: str | None = None) -> np.ndarray:
    """One image's values mapped to [0, 1] by ``spec`` (float32, same shape).

    ``photometric``: the DICOM PhotometricInterpretation (``MONOCHROME1`` images are inverted after
    percentile scaling when the spec says so).
    """
    if spec.method == IntensityMethod.WINDOW:
        assert spec.window is not None
        out = apply_window(values, *spec.window)
    elif spec.method == IntensityMethod.ZSCORE:
        assert spec.clip_sd is not None
        z = np.clip(robust_zscore(values), -spec.clip_sd, spec.clip_sd)
        out = (z + spec.clip_sd) / (2 * spec.clip_sd)
    else:
        assert spec.percentiles is not None
        out = percentile_scale(values, *spec.percentiles)
        if spec.invert_monochrome1 and str(photometric or "").strip().upper() == "MONOCHROME1":
            out = invert(out)
    return out.astype(np.float32)


def percentiles(
    values: np.ndarray, points: tuple[float, ...] = (0.5, 5.0, 50.0, 95.0, 99.5)
) -> dict[str, float]:
    """Summary percentiles of an image's raw values, ``{"p0.5": ..., "p50": ...}`` (for fingerprints)."""
    data = sample(values)
    if data.size == 0:
        return {}
    found = np.percentile(data, points)
    return {f"p{p:g}": round(float(v), 4) for p, v in zip(points, found, strict=True)}
