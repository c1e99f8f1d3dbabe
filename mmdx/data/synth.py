"""A synthetic cohort generator whose Bayes-optimal posterior is known exactly.

The generative model (written to ``cohort.yaml`` under ``generator`` so the posterior can be recomputed
from the files alone):

* label ``y ~ Bernoulli(prevalence)``; age, sex and site do not depend on ``y``.
* **image** (a CT-like chest phantom, 2D slice or 3D volume): a lesion is planted with probability
  ``lesion_prob[y]``; it is a solid nodule inside a lung, large and dense enough to be unmistakable, so the
  image tells ``L`` exactly and contributes ``log P(L | y=1) / P(L | y=0)``. Sites differ in field of view,
  slice spacing, noise, and a calibration offset in HU; some cases are DICOM series, others NIfTI.
* **observations**: each catalogue feature is a truncated normal in a transformed space (log for labs).
  Only the *latest* measurement of a causal feature depends on ``y``; earlier ones and all non-causal
  features are drawn from the same baseline for both classes. Values are written in the site's unit, rounded
  to a fixed number of decimals, so the likelihood of a written value is the probability mass of its rounding
  interval -- computed exactly from normal CDFs.
* **notes**: a few findings are each affirmed, negated or not mentioned with probabilities depending on
  ``y``; negated sentences reuse the finding's words ("no evidence of consolidation"), so a bag of words is
  misled. Filler sentences do not depend on ``y``.
* each modality is missing for some cases at random (independently of ``y``), so the posterior simply
  drops its term.

The posterior log-odds is ``logit(prevalence)`` plus one log-likelihood ratio per present modality.

With ``phi=True`` the cohort is *identified*: every identifying DICOM attribute (nested sequences and a private
block included), extra columns of the cases table and the notes carry recognisable canary values
(``CANARY_NAME_00012``, ``CANARYMRN000012``, phone numbers, e-mails, addresses, dates of birth), and the patient
and case IDs are themselves canaries. The list of canaries is written to ``ground_truth/phi_canaries.json`` so
that tests can prove that de-identification removed every one. The random streams are the same as without
``phi``: the PHI is added on top, so labels, images, observations and posteriors do not change.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import yaml
from pydicom import config as pydicom_config
from scipy.special import log_ndtr, ndtr
from sklearn.metrics import roc_auc_score

from mmdx.data.catalogue import Feature, FeatureCatalogue
from mmdx.data.splits import patient_level_split
from mmdx.data.text import Note, join_notes
from mmdx.errors import MmdxError

SCHEMA_VERSION = 1
TASK_POSITIVE = "pneumonia requiring escalation of care"

# ---------------------------------------------------------------------------------------------------------
# The generative model. Everything the posterior depends on lives here and is copied into cohort.yaml.
# ---------------------------------------------------------------------------------------------------------
PREVALENCE = 0.35
LESION_PROB = {1: 0.70, 0: 0.15}
MISSING = {"image": 0.15, "tabular": 0.08, "text": 0.15}

#: feature -> (transform, baseline mean, sd, disease mean or None, probability observed) in transformed space
FEATURE_MODEL: dict[str, tuple[str, float, float, float | None, float]] = {
    "heart_rate": ("identity", 84.0, 13.0, 91.0, 0.95),
    "resp_rate": ("identity", 16.5, 3.0, 18.1, 0.95),
    "spo2": ("identity", 96.5, 1.6, None, 0.95),
    "temperature": ("identity", 37.0, 0.5, 37.27, 0.95),
    "sbp": ("identity", 126.0, 17.0, None, 0.95),
    "dbp": ("identity", 75.0, 10.0, None, 0.95),
    "wbc": ("log", math.log(8.0), 0.32, math.log(8.0 * math.exp(0.16)), 0.75),
    "hemoglobin": ("log", math.log(13.3), 0.11, None, 0.75),
    "platelets": ("log", math.log(245.0), 0.30, None, 0.75),
    "crp": ("log", math.log(9.0), 0.90, math.log(9.0 * math.exp(0.5)), 0.75),
    "procalcitonin": ("log", math.log(0.12), 0.80, None, 0.6),
    "lactate": ("log", math.log(1.3), 0.32, math.log(1.3 * math.exp(0.16)), 0.75),
    "creatinine": ("log", math.log(0.95), 0.30, None, 0.75),
    "bun": ("log", math.log(15.0), 0.35, None, 0.75),
    "glucose": ("log", math.log(110.0), 0.20, None, 0.75),
    "sodium": ("log", math.log(139.0), 0.022, None, 0.75),
    "potassium": ("log", math.log(4.2), 0.10, None, 0.75),
    "bilirubin": ("log", math.log(0.7), 0.45, None, 0.6),
    "albumin": ("log", math.log(3.9), 0.12, None, 0.6),
    "troponin_i": ("log", math.log(0.012), 0.9, None, 0.5),
}

#: finding -> (kind, P(affirmed, negated, absent | y=1), P(... | y=0))
FINDINGS: dict[str, tuple[str, tuple[float, float, float], tuple[float, float, float]]] = {
    "consolidation": ("imaging", (0.40, 0.12, 0.48), (0.12, 0.35, 0.53)),
    "productive cough": ("symptom", (0.40, 0.12, 0.48), (0.12, 0.35, 0.53)),
    "rigors": ("symptom", (0.40, 0.12, 0.48), (0.12, 0.35, 0.53)),
}
AFFIRMED_TEMPLATES = (
    "{F} is present.",
    "Findings consistent with {f}.",
    "There is {f}.",
    "{F} noted on examination.",
    "Evidence of {f}.",
    "Positive for {f}.",
)
NEGATED_TEMPLATES = (
    "No {f}.",
    "No evidence of {f}.",
    "{F} has been ruled out.",
    "Negative for {f}.",
    "Without {f}.",
    "There is no {f}.",
)
FILLER_SENTENCES = (
    "Patient admitted from the emergency department.",
    "Seen on the morning ward round.",
    "Family updated at the bedside.",
    "Tolerating oral intake.",
    "Mobilising with the assistance of one.",
    "Plan to review blood results this afternoon.",
    "Medication chart reviewed and reconciled.",
    "Peripheral intravenous access in situ.",
    "Observations recorded four hourly.",
    "History obtained from the patient and a relative.",
    "Lives with partner and is independent at baseline.",
    "Past medical history of hypertension.",
    "Allergic to penicillin, reaction unknown.",
    "Social work referral made.",
    "Physiotherapy to review tomorrow.",
    "Venous thromboembolism prophylaxis prescribed.",
    "Discussed with the consultant on call.",
    "Ex-smoker with a twenty pack-year history.",
    "Slept well overnight.",
    "Pain controlled with regular paracetamol.",
    "Chest radiograph requested.",
    "Urinary catheter not required.",
    "Nursing handover completed.",
    "Dietitian review requested for poor appetite.",
)
NOTE_TYPES = ("admission note", "progress note", "nursing note", "radiology report")

#: site -> acquisition and reporting habits. ``units`` maps a feature to the unit the site reports it in.
SITES: dict[str, dict] = {
    "north": {
        "weight": 0.40,
        "units": {
            "temperature": "Cel",
            "creatinine": "umol/L",
            "glucose": "mmol/L",
            "hemoglobin": "g/L",
            "bilirubin": "umol/L",
            "albumin": "g/L",
            "bun": "mmol/L",
            "wbc": "10*9/L",
            "platelets": "10*9/L",
            "troponin_i": "ng/L",
            "procalcitonin": "ug/L",
        },
        "hu_offset": 0.0,
        "noise_hu": 18.0,
        "fov_mm": 340.0,
        "z_factor": 1.0,
        "dicom_share": 0.8,
        "manufacturer": "SIEMENS",
        "rescale": (1.0, -1024.0),
    },
    "south": {
        "weight": 0.35,
        "units": {
            "temperature": "[degF]",
            "lactate": "mg/dL",
            "crp": "mg/dL",
            "sodium": "meq/L",
            "potassium": "meq/L",
            "hemoglobin": "g/dL",
        },
        "hu_offset": 30.0,
        "noise_hu": 28.0,
        "fov_mm": 380.0,
        "z_factor": 1.25,
        "dicom_share": 0.5,
        "manufacturer": "GE MEDICAL SYSTEMS",
        "rescale": (1.0, 0.0),
    },
    "east": {
        "weight": 0.25,
        "units": {
            "heart_rate": "bpm",
            "sbp": "mmHg",
            "dbp": "mmHg",
            "glucose": "mg/dl",
            "creatinine": "umol/L",
            "wbc": "10^9/L",
        },
        "hu_offset": -25.0,
        "noise_hu": 22.0,
        "fov_mm": 320.0,
        "z_factor": 0.9,
        "dicom_share": 0.65,
        "manufacturer": "Philips",
        "rescale": (0.5, -1024.0),
    },
}

HU_AIR, HU_TISSUE, HU_LUNG, HU_BONE, HU_HEART, HU_LESION = -1000.0, 40.0, -850.0, 650.0, 45.0, 25.0
TRUNCATION_SDS = 4.5
MIN_CASES_WITH_DEFECTS = 40


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


# ---------------------------------------------------------------------------------------------------------
# Tabular likelihoods (shared by the generator and the posterior recomputation)
# ---------------------------------------------------------------------------------------------------------
def _transform(kind: str, x: np.ndarray | float) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if kind == "log":
        with np.errstate(divide="ignore"):
            return np.where(x > 0, np.log(np.maximum(x, 1e-300)), -np.inf)
    return x


def _inverse_transform(kind: str, t: np.ndarray | float) -> np.ndarray:
    return np.exp(t) if kind == "log" else np.asarray(t, dtype=float)


def truncation_bounds(feature: Feature) -> tuple[float, float]:
    """Support of a feature's distribution in transformed space: ±4.5 sd around both class means, kept one
    rounding step inside the plausible range so that no generated value is ever implausible."""
    kind, mean0, sd, mean1, _ = FEATURE_MODEL[feature.key]
    means = [mean0] + ([mean1] if mean1 is not None else [])
    step = 10.0**-feature.decimals
    low_c = max(feature.plausible[0] + step, 1e-6 if kind == "log" else -np.inf)
    high_c = feature.plausible[1] - step
    low = max(min(means) - TRUNCATION_SDS * sd, float(_transform(kind, low_c)))
    high = min(max(means) + TRUNCATION_SDS * sd, float(_transform(kind, high_c)))
    return low, high


def unit_decimals(feature: Feature, unit: str) -> int:
    """Decimals a value is written with in ``unit``: the canonical resolution carried over to that unit."""
    factor, _ = feature.units[feature.resolve_unit(unit)]
    return max(0, feature.decimals + int(round(math.log10(factor))))


def interval_log_mass(
    feature: Feature, written: float, unit: str, mean: float, decimals: int | None = None
) -> float:
    """log P(a value written as ``written`` in ``unit``) under the truncated normal with ``mean``.

    The written value stands for its rounding interval ``written ± 0.5 * 10**-decimals`` in ``unit``; the
    interval is mapped to canonical units and to transformed space, and its probability mass computed.
    """
    kind, _, sd, _, _ = FEATURE_MODEL[feature.key]
    decimals = unit_decimals(feature, unit) if decimals is None else decimals
    half = 0.5 * 10.0**-decimals
    a = float(_transform(kind, feature.to_canonical(written - half, unit)))
    b = float(_transform(kind, feature.to_canonical(written + half, unit)))
    low, high = truncation_bounds(feature)
    a, b = max(a, low), min(b, high)
    if b <= a:
        return -np.inf
    za, zb = (a - mean) / sd, (b - mean) / sd
    zl, zh = (low - mean) / sd, (high - mean) / sd
    return _log_diff_ndtr(zb, za) - _log_diff_ndtr(zh, zl)


def _log_diff_ndtr(upper: float, lower: float) -> float:
    """log(Φ(upper) − Φ(lower)) computed stably in either tail."""
    if lower > 0:  # upper tail: use symmetry
        upper, lower = -lower, -upper
    lu, ll = log_ndtr(upper), log_ndtr(lower)
    return float(lu + np.log1p(-np.exp(min(ll - lu, 0.0)))) if lu > ll else -np.inf


def tabular_llr(catalogue: FeatureCatalogue, latest: dict[str, tuple[float, str]]) -> float:
    """Log-likelihood ratio of the latest written value of each causal feature: ``{key: (value, unit)}``."""
    total = 0.0
    for key, (value, unit) in latest.items():
        _, mean0, _, mean1, _ = FEATURE_MODEL[key]
        if mean1 is None:
            continue
        feature = catalogue[key]
        total += interval_log_mass(feature, value, unit, mean1) - interval_log_mass(
            feature, value, unit, mean0
        )
    return total


def image_llr(lesion: bool) -> float:
    p1, p0 = LESION_PROB[1], LESION_PROB[0]
    return math.log(p1 / p0) if lesion else math.log((1 - p1) / (1 - p0))


def text_llr(statuses: dict[str, str]) -> float:
    """Log-likelihood ratio of the findings' statuses (``affirmed`` / ``negated`` / ``absent``)."""
    index = {"affirmed": 0, "negated": 1, "absent": 2}
    total = 0.0
    for finding, status in statuses.items():
        _, p1, p0 = FINDINGS[finding]
        total += math.log(p1[index[status]] / p0[index[status]])
    return total


def generator_parameters() -> dict:
    """The generative model as plain data (written into ``cohort.yaml``)."""
    catalogue = FeatureCatalogue.load()
    return {
        "schema_version": SCHEMA_VERSION,
        "prevalence": PREVALENCE,
        "lesion_prob": {"positive": LESION_PROB[1], "negative": LESION_PROB[0]},
        "missing": dict(MISSING),
        "features": {
            key: {
                "transform": kind,
                "mean_negative": m0,
                "sd": sd,
                "mean_positive": m1,
                "p_observed": p,
                "support": list(truncation_bounds(catalogue[key])),
            }
            for key, (kind, m0, sd, m1, p) in FEATURE_MODEL.items()
        },
        "findings": {
            f: {
                "kind": kind,
                "p_positive": list(p1),
                "p_negative": list(p0),
                "order": "affirmed,negated,absent",
            }
            for f, (kind, p1, p0) in FINDINGS.items()
        },
        "affirmed_templates": list(AFFIRMED_TEMPLATES),
        "negated_templates": list(NEGATED_TEMPLATES),
    }


# ---------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------
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


def _case_geometry(rng: np.random.Generator, site: dict, dims: int, size: int, fmt: str) -> ImageGeometry:
    spacing = site["fov_mm"] / size
    z_spacing = spacing * site["z_factor"]
    centre = np.array([rng.normal(0, 6), rng.normal(0, 6), rng.normal(0, 15)])
    shape = (size, size) if dims == 2 else (size, size, size)
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


def render_image(rng: np.random.Generator, site: dict, geometry: ImageGeometry, lesion: bool) -> tuple:
    """HU image (float32, with site noise and calibration offset) and lesion mask (uint8) on ``geometry``."""
    body_scale = float(rng.uniform(0.92, 1.08))
    spec = _lesion_spec(rng, geometry, body_scale) if lesion else None
    hu, mask = _phantom_hu(geometry.world(), body_scale, spec)
    if lesion and not mask.any():  # a lesion must show: put it on the nearest voxel centre
        world = geometry.world()
        nearest = np.unravel_index(((world - spec[0]) ** 2).sum(-1).argmin(), mask.shape)
        mask[nearest] = True
        hu[nearest] = HU_LESION
    hu = hu + site["hu_offset"] + rng.normal(0.0, site["noise_hu"], size=hu.shape)
    return hu.astype(np.float32), mask.astype(np.uint8)


def _write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, dtype=np.int16) -> None:
    img = nib.Nifti1Image(np.asarray(np.round(data) if dtype != np.float32 else data, dtype=dtype), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header["descrip"] = b"mmdx synthetic"
    nib.save(img, str(path))


def _dicom_datasets(
    hu: np.ndarray,
    geometry: ImageGeometry,
    site: dict,
    rng: np.random.Generator,
    ids: dict,
    order: str,
) -> list:
    """One pydicom dataset per slice. ``hu`` is [I, J] or [I, J, K] with I along the DICOM row direction."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian

    volume = hu if hu.ndim == 3 else hu[..., None]
    n_slices = volume.shape[2]
    slope, intercept = site["rescale"]
    stored = np.round((volume - intercept) / slope)
    signed = intercept == 0.0
    stored = np.clip(stored, -32768, 32767) if signed else np.clip(stored, 0, 65535)
    dtype = np.int16 if signed else np.uint16
    spacing = abs(float(geometry.affine[0, 0]))
    z_spacing = float(geometry.affine[2, 2]) if hu.ndim == 3 else 2.0 * spacing
    origin_ras = geometry.affine[:3, 3]
    numbers = np.arange(1, n_slices + 1)
    if order == "descending":
        numbers = numbers[::-1]
    elif order == "shuffled":
        numbers = rng.permutation(numbers)
    out = []
    for k in range(n_slices):
        ras = origin_ras + geometry.affine[:3, 2] * k if hu.ndim == 3 else origin_ras
        lps = [-ras[0], -ras[1], ras[2]]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = _uid(ids["seed_uid"], "sop", k)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = "MMDX_SYNTH_1"
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyDate = ids["study_date"]
        ds.SeriesDate = ids["study_date"]
        ds.StudyTime = "083000"
        ds.AccessionNumber = ids["accession"]
        ds.Modality = "CT"
        ds.Manufacturer = site["manufacturer"]
        ds.InstitutionName = f"{ids['site'].title()} General Hospital"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "CT CHEST"
        ds.SeriesDescription = "AXIAL 2D" if hu.ndim == 2 else "AXIAL"
        ds.PatientName = ids["patient_name"]
        ds.PatientID = ids["patient_id"]
        ds.PatientBirthDate = ""
        ds.PatientSex = ids["sex"]
        ds.PatientAge = f"{int(ids['age']):03d}Y"
        ds.BodyPartExamined = "CHEST"
        ds.SliceThickness = f"{z_spacing:.4f}"
        ds.KVP = "120"
        ds.PatientPosition = "FFS"
        ds.StudyInstanceUID = _uid(ids["seed_uid"], "study", 0)
        ds.SeriesInstanceUID = ids.get("series_uid") or _uid(ids["seed_uid"], "series", 0)
        ds.StudyID = "1"
        ds.SeriesNumber = 2
        ds.InstanceNumber = int(numbers[k])
        ds.ImagePositionPatient = [f"{v:.4f}" for v in lps]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.FrameOfReferenceUID = _uid(ids["seed_uid"], "frame", 0)
        ds.SliceLocation = f"{lps[2]:.4f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = volume.shape[1]
        ds.Columns = volume.shape[0]
        ds.PixelSpacing = [f"{spacing:.6f}", f"{spacing:.6f}"]
        if hu.ndim == 3:
            ds.SpacingBetweenSlices = f"{z_spacing:.4f}"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if signed else 0
        ds.WindowCenter = "-600"
        ds.WindowWidth = "1500"
        ds.RescaleIntercept = f"{intercept:g}"
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleType = "HU"
        # pixel rows run along J (the column direction), columns along I: store the transpose
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T.astype(dtype)).tobytes()
        if "phi" in ids:
            _add_phi_attributes(ds, ids, k)
        out.append(ds)
    return out


PHI_PRIVATE_GROUP = 0x0011
PHI_PRIVATE_CREATOR = "MMDX SYNTH PHI"


def _add_phi_attributes(ds, ids: dict, k: int) -> None:
    """Fill every identifying attribute of one slice with canary values (``ids["phi"]``, see ``phi_identity``).

    Covers the patient, physician, operator, institution and device attributes, dates and date-times, a
    request sequence nesting a physician's name and a study reference, a physician identification sequence
    nested two levels deep, other patient IDs, a reference to the previous slice (so UID remapping can be
    checked to keep references resolvable) and a private block with its creator.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import CTImageStorage

    phi = ids["phi"]
    study_uid = ds.StudyInstanceUID
    ds.PatientBirthDate = phi["birth_date"].replace("-", "")
    ds.PatientAddress = phi["address"]
    ds.PatientTelephoneNumbers = phi["phone"]
    ds.OtherPatientNames = f"{phi['given']}^{phi['family']}"
    ds.PatientMotherBirthName = phi["family"]
    ds.ReferringPhysicianName = f"{phi['doctor']}^DR"
    ds.PerformingPhysicianName = f"{phi['doctor']}^DR"
    ds.OperatorsName = phi["operator"]
    ds.InstitutionAddress = phi["address"]
    ds.StationName = phi["station"]
    ds.DeviceSerialNumber = phi["device_serial"]
    ds.StudyID = phi["study_id"]
    ds.AdditionalPatientHistory = f"Patient {phi['given']} {phi['family']} referred by Dr {phi['doctor']}"
    ds.ImageComments = f"{phi['family']} {phi['mrn']} {phi['phone']}"
    ds.PatientComments = f"Contact {phi['email']}"
    ds.AcquisitionDate = ids["study_date"]
    ds.ContentDate = ids["study_date"]
    ds.InstanceCreationDate = ids["study_date"]
    ds.AcquisitionDateTime = f"{ids['study_date']}0830{k % 60:02d}.000000"
    ds.BurnedInAnnotation = "NO"

    other = Dataset()
    other.PatientID = phi["other_id"]
    other.IssuerOfPatientID = "CANARY_ISSUER"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])

    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired)
    study_ref.ReferencedSOPInstanceUID = study_uid
    request = Dataset()
    request.RequestedProcedureID = phi["request_id"]
    request.ScheduledProcedureStepID = phi["request_id"]
    request.RequestingPhysician = f"{phi['doctor']}^DR"
    request.ReferencedStudySequence = Sequence([study_ref])
    ds.RequestAttributesSequence = Sequence([request])

    code = Dataset()
    code.CodeValue = phi["mrn"]
    code.CodingSchemeDesignator = "L"
    code.CodeMeaning = f"Dr {phi['doctor']}"
    physician = Dataset()
    physician.PersonIdentificationCodeSequence = Sequence([code])
    physician.PersonAddress = phi["address"]
    physician.InstitutionName = f"{phi['family']} Clinic"
    ds.ReferringPhysicianIdentificationSequence = Sequence([physician])

    patient_ref = Dataset()
    patient_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.1.1"  # Detached Patient Management (retired)
    patient_ref.ReferencedSOPInstanceUID = _uid(ids["seed_uid"], "patient", 0)
    ds.ReferencedPatientSequence = Sequence([patient_ref])
    if k > 0:
        image_ref = Dataset()
        image_ref.ReferencedSOPClassUID = CTImageStorage
        image_ref.ReferencedSOPInstanceUID = _uid(ids["seed_uid"], "sop", k - 1)
        ds.ReferencedImageSequence = Sequence([image_ref])

    block = ds.private_block(PHI_PRIVATE_GROUP, PHI_PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", f"{phi['family']}^{phi['given']}")
    block.add_new(0x11, "LO", phi["mrn"])
    block.add_new(0x12, "LT", f"{phi['private']} {phi['email']}")


def _uid(seed_uid: str, kind: str, index: int) -> str:
    digest = int(hashlib.sha256(f"{seed_uid}/{kind}/{index}".encode()).hexdigest()[:24], 16)
    return f"2.25.{digest}"


def _save_dicom(ds, path: Path) -> None:
    from pydicom import dcmwrite

    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(str(path), ds, enforce_file_format=True)


# ---------------------------------------------------------------------------------------------------------
# Notes
# ---------------------------------------------------------------------------------------------------------
def _sentence(template: str, finding: str) -> str:
    return template.format(f=finding, F=finding[0].upper() + finding[1:])


def parse_finding_statuses(text: str) -> dict[str, str]:
    """Status of each generator finding in a joined note text, by matching the templates exactly."""
    statuses = {}
    for finding in FINDINGS:
        status = "absent"
        for kind, templates in (("affirmed", AFFIRMED_TEMPLATES), ("negated", NEGATED_TEMPLATES)):
            if any(_sentence(t, finding) in text for t in templates):
                status = kind
        statuses[finding] = status
    return statuses


# ---------------------------------------------------------------------------------------------------------
# Identified cohorts (--phi): canary values that de-identification must remove
# ---------------------------------------------------------------------------------------------------------
PHI_CANARIES_FILE = "ground_truth/phi_canaries.json"


def phi_identity(plan: CasePlan) -> dict[str, str]:
    """The canary identity of a case's patient: names, identifiers, contact details and dates.

    Every value is recognisable (``CANARY_...``, ``CANARYMRN...``, a fixed phone pattern, an example.org
    e-mail), so a byte scan can tell whether any of them survived. Values depend only on the patient number
    and the case index, never on a random stream.
    """
    n, i = plan.patient_number, plan.index + 1
    birth = pd.Timestamp(year=2024 - plan.age, month=1 + n % 12, day=1 + n % 28)
    return {
        "family": f"CANARY_NAME_{n:05d}",
        "given": f"CANARY_GIVEN_{n:05d}",
        "mrn": f"CANARYMRN{n:06d}",
        "other_id": f"CANARYOPID{n:06d}",
        "birth_date": birth.strftime("%Y-%m-%d"),
        "birth_date_written": birth.strftime("%d/%m/%Y"),
        "address": f"{10 + n % 890} CANARY_STREET_{n:05d} Road, Springfield",
        "phone": f"(555) {100 + n % 900:03d}-{n % 10000:04d}",
        "email": f"canary.name.{n:05d}@example.org",
        "doctor": f"CANARY_DOC_{n:05d}",
        "operator": f"CANARY_OP_{n:05d}",
        "accession": f"CANARYACC{i:06d}",
        "study_id": f"CANARYSTD{i:06d}",
        "request_id": f"CANARYREQ{i:06d}",
        "station": f"CANARYSTN{n:05d}",
        "device_serial": f"CANARYSN{n:06d}",
        "private": f"CANARY_PRIVATE_{n:05d}",
        "visit_date": plan.admit.strftime("%m/%d/%Y"),
        "appointment_date": (plan.admit + pd.Timedelta(days=14)).strftime("%d %B %Y"),
    }


def _phi_sentences(identity: dict[str, str], j: int) -> list[str]:
    """Sentences naming the patient, written at the start of the ``j``-th note of a case."""
    if j == 0:
        return [
            f"Patient {identity['given']} {identity['family']} (MRN {identity['mrn']}), date of birth "
            f"{identity['birth_date_written']}, seen by Dr {identity['doctor']} on {identity['visit_date']}.",
            f"Contact: {identity['phone']}, {identity['email']}.",
            f"Home address: {identity['address']}.",
        ]
    return [
        f"Reviewed with Dr. {identity['doctor']}; {identity['family']} is aware of the plan.",
        f"Next appointment {identity['appointment_date']}, call {identity['phone']} to rearrange.",
    ]


def _phi_canaries(plans: list[CasePlan], opts: SynthOptions) -> list[dict]:
    """Every canary of an identified cohort: ``{"value", "kind"}``, one entry per distinct value."""
    found: dict[str, str] = {}
    for plan in plans:
        identity = phi_identity(plan)
        for kind, value in identity.items():
            if kind == "address":
                value = value.split()[1]  # the street name: the house number alone is not distinctive
            found.setdefault(value, kind)
        found.setdefault(identity["birth_date"].replace("-", ""), "birth_date_dicom")
        found.setdefault(plan.case_id, "case_id")
        found.setdefault(plan.patient_id, "patient_id")
        if plan.has_image and plan.image_format == "dicom":
            seed_uid = f"{opts.seed}/{plan.case_id}"
            for kind in ("study", "series", "frame", "patient"):
                found.setdefault(_uid(seed_uid, kind, 0), f"{kind}_uid")
    return [{"value": value, "kind": kind} for value, kind in sorted(found.items())]


def phi_canaries(root: str | Path) -> list[dict]:
    """The canaries of an identified cohort written with ``phi=True`` (``[{"value", "kind"}]``).

    Raises :class:`MmdxError` when the cohort has no canary list (it was not written with ``--phi``).
    """
    path = Path(root) / PHI_CANARIES_FILE
    if not path.is_file():
        raise MmdxError(f"{path} not found: only a cohort written by 'mmdx synth --phi' lists its canaries")
    return list(json.loads(path.read_text(encoding="utf-8"))["canaries"])


# ---------------------------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------------------------
@dataclass
class SynthOptions:
    n_cases: int = 600
    seed: int = 0
    dims: int = 2
    size: int = 32
    defects: bool = False
    workers: int = 1
    phi: bool = False
    split_fractions: dict = field(default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15})

    def __post_init__(self) -> None:
        if self.n_cases < 10:
            raise ValueError(f"--cases must be at least 10, got {self.n_cases}")
        if self.dims not in (2, 3):
            raise ValueError(f"--dims must be 2 or 3, got {self.dims}")
        if not 16 <= self.size <= 512:
            raise ValueError(f"--size must be between 16 and 512 voxels, got {self.size}")
        if self.defects and self.n_cases < MIN_CASES_WITH_DEFECTS:
            raise ValueError(
                f"--defects needs at least {MIN_CASES_WITH_DEFECTS} cases to plant every kind of defect, "
                f"got {self.n_cases}"
            )


@dataclass
class CasePlan:
    index: int
    case_id: str
    patient_id: str
    site: str
    sex: str
    age: int
    label: int
    has_image: bool
    has_tabular: bool
    has_text: bool
    lesion: bool
    image_format: str  # "dicom" | "nifti"
    admit: pd.Timestamp
    patient_number: int = 0  # 1-based patient index; names the canaries of an identified (--phi) cohort


def _plan_cases(opts: SynthOptions) -> list[CasePlan]:
    rng = np.random.default_rng([opts.seed, 0])
    n = opts.n_cases
    site_names = list(SITES)
    weights = np.array([SITES[s]["weight"] for s in site_names])
    n_patients = max(2, int(round(n * 0.8)))
    patient_site = rng.choice(len(site_names), size=n_patients, p=weights / weights.sum())
    patient_sex = rng.choice(["F", "M"], size=n_patients)
    patient_age = np.clip(rng.normal(64, 16, size=n_patients), 18, 98).astype(int)
    # every patient has one case; the remaining cases are readmissions of random patients
    patient_of_case = np.concatenate([np.arange(n_patients), rng.integers(0, n_patients, n - n_patients)])
    patient_of_case = rng.permutation(patient_of_case)
    labels = (rng.random(n) < PREVALENCE).astype(int)
    has = {m: rng.random(n) >= MISSING[m] for m in ("image", "tabular", "text")}
    lesion_u = rng.random(n)
    fmt_u = rng.random(n)
    base = pd.Timestamp("2024-01-01T00:00:00Z")
    plans = []
    for i in range(n):
        p = int(patient_of_case[i])
        site = site_names[patient_site[p]]
        label = int(labels[i])
        plans.append(
            CasePlan(
                index=i,
                case_id=f"CANARYENC{i + 1:06d}" if opts.phi else f"C{i + 1:05d}",
                patient_id=f"CANARYMRN{p + 1:06d}" if opts.phi else f"P{p + 1:05d}",
                site=site,
                sex=str(patient_sex[p]),
                age=int(patient_age[p]),
                label=label,
                has_image=bool(has["image"][i]),
                has_tabular=bool(has["tabular"][i]),
                has_text=bool(has["text"][i]),
                lesion=bool(lesion_u[i] < LESION_PROB[label]),
                image_format="dicom" if fmt_u[i] < SITES[site]["dicom_share"] else "nifti",
                admit=base + pd.Timedelta(minutes=int(rng.integers(0, 60 * 24 * 360))),
                patient_number=p + 1,
            )
        )
    return plans


def _age_band(age: int) -> str:
    return "18-49" if age < 50 else ("50-69" if age < 70 else "70+")


def _observation_rows(plan: CasePlan, catalogue: FeatureCatalogue, rng: np.random.Generator) -> tuple:
    """Long-format rows for one case, and the latest written value of each feature ``{key: (value, unit)}``."""
    rows: list[dict] = []
    latest: dict[str, tuple[float, str]] = {}
    if not plan.has_tabular:
        return rows, latest
    units = SITES[plan.site]["units"]
    for key, (kind, mean0, sd, mean1, p_obs) in FEATURE_MODEL.items():
        if rng.random() >= p_obs:
            continue
        feature = catalogue[key]
        unit = units.get(key, feature.unit)
        decimals = unit_decimals(feature, unit)
        low, high = truncation_bounds(feature)
        n_obs = int(rng.integers(1, 5))
        hours = np.sort(rng.choice(np.arange(1, 72), size=n_obs, replace=False))
        for j, hour in enumerate(hours):
            latest_row = j == n_obs - 1
            mean = mean1 if (latest_row and mean1 is not None and plan.label == 1) else mean0
            t = _truncated_normal(rng, mean, sd, low, high)
            canonical = float(_inverse_transform(kind, t))
            written = round(feature.from_canonical(canonical, unit), decimals)
            code = feature.loinc if rng.random() < 0.8 else feature.key
            rows.append(
                {
                    "case_id": plan.case_id,
                    "code": code,
                    "value": f"{written:.{decimals}f}",
                    "unit": unit,
                    "time": (plan.admit + pd.Timedelta(hours=int(hour))).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
            if latest_row:
                latest[key] = (float(f"{written:.{decimals}f}"), unit)
    return rows, latest


def _truncated_normal(rng: np.random.Generator, mean: float, sd: float, low: float, high: float) -> float:
    a, b = ndtr((low - mean) / sd), ndtr((high - mean) / sd)
    u = rng.uniform(a, b)
    from scipy.special import ndtri

    return float(np.clip(mean + sd * ndtri(u), low, high))


def _notes(
    plan: CasePlan, rng: np.random.Generator, phi: bool = False
) -> tuple[list[dict], dict[str, str], list[dict]]:
    """Note lines, finding statuses and the planted phrases (with character spans in the joined text).

    With ``phi`` each note also gets sentences naming the patient, the physician, the MRN, a phone number, an
    e-mail, a street address and dates; they draw nothing from ``rng``, so the findings stay the same.
    """
    if not plan.has_text:
        return [], {}, []
    statuses: dict[str, str] = {}
    planted: list[tuple[str, str, str]] = []
    for finding, (_, p1, p0) in FINDINGS.items():
        probs = p1 if plan.label == 1 else p0
        status = ("affirmed", "negated", "absent")[int(rng.choice(3, p=probs))]
        statuses[finding] = status
        if status != "absent":
            templates = AFFIRMED_TEMPLATES if status == "affirmed" else NEGATED_TEMPLATES
            template = templates[int(rng.integers(len(templates)))]
            planted.append((finding, status, _sentence(template, finding)))
    n_notes = int(rng.integers(1, 4))
    note_sentences: list[list[str]] = [
        list(rng.choice(FILLER_SENTENCES, size=int(rng.integers(3, 7)), replace=False))
        for _ in range(n_notes)
    ]
    for _, _, sentence in planted:
        target = note_sentences[int(rng.integers(n_notes))]
        target.insert(int(rng.integers(0, len(target) + 1)), sentence)
    times = sorted(rng.choice(np.arange(1, 72), size=n_notes, replace=False))
    notes = []
    lines = []
    if phi:
        identity = phi_identity(plan)
        for j, sentences in enumerate(note_sentences):
            sentences[:0] = _phi_sentences(identity, j)
    for j, sentences in enumerate(note_sentences):
        text = " ".join(sentences)
        time = plan.admit + pd.Timedelta(hours=int(times[j]))
        note_type = str(rng.choice(NOTE_TYPES))
        notes.append(Note(text=text, time=time, note_type=note_type, line=j))
        lines.append(
            {
                "case_id": plan.case_id,
                "text": text,
                "note_type": note_type,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    rng.shuffle(lines)  # file order is not time order; mmdx joins by time
    joined = join_notes(notes)
    phrases = []
    for finding, status, sentence in planted:
        start = joined.find(sentence)
        f_start = start + sentence.lower().find(finding)
        phrases.append(
            {
                "finding": finding,
                "status": status,
                "sentence": sentence,
                "span": [start, start + len(sentence)],
                "finding_span": [f_start, f_start + len(finding)],
            }
        )
    return lines, statuses, phrases


def _write_case_image(args: tuple) -> dict:
    """Render and write one case's image and mask (runs in a worker process)."""
    plan, opts_dict, out_dir = args
    opts = SynthOptions(**opts_dict)
    out = Path(out_dir)
    rng = np.random.default_rng([opts.seed, 1, plan.index])
    site = SITES[plan.site]
    geometry = _case_geometry(rng, site, opts.dims, opts.size, plan.image_format)
    hu, mask = render_image(rng, site, geometry, plan.lesion)
    mask_rel = f"ground_truth/masks/{plan.case_id}.nii.gz"
    _write_nifti(out / mask_rel, mask, geometry.affine, dtype=np.uint8)
    if plan.image_format == "nifti":
        rel = f"images/{plan.case_id}.nii.gz"
        _write_nifti(out / rel, hu, geometry.affine)
    else:
        ids = {
            "seed_uid": f"{opts.seed}/{plan.case_id}",
            "study_date": plan.admit.strftime("%Y%m%d"),
            "accession": f"A{plan.index + 1:07d}",
            "site": plan.site,
            "patient_name": f"SYNTHETIC^{plan.patient_id}",
            "patient_id": plan.patient_id,
            "sex": plan.sex,
            "age": plan.age,
        }
        if opts.phi:
            identity = phi_identity(plan)
            ids.update(
                accession=identity["accession"],
                patient_name=f"{identity['family']}^{identity['given']}",
                phi=identity,
            )
        order = str(rng.choice(["ascending", "descending", "shuffled"], p=[0.5, 0.2, 0.3]))
        # the values are built valid by construction; pydicom's per-value checks would double the run time
        with pydicom_config.disable_value_validation():
            datasets = _dicom_datasets(hu, geometry, site, rng, ids, order)
            if opts.dims == 2:
                rel = f"images/{plan.case_id}.dcm"
                _save_dicom(datasets[0], out / rel)
            else:
                rel = f"images/{plan.case_id}"
                names = rng.permutation(len(datasets))
                for ds, name in zip(datasets, names, strict=True):
                    _save_dicom(ds, out / rel / f"IM{int(name):04d}_{ds.SOPInstanceUID[-8:]}.dcm")
    return {"case_id": plan.case_id, "image": rel, "mask": mask_rel, "affine": geometry.affine.tolist()}


def synthesize_cohort(
    out: str | Path, opts: SynthOptions, progress: Callable[[int, int], None] | None = None
) -> dict:
    """Write a cohort (Contract 1) to ``out`` and return a summary dict. ``out`` must not exist or be empty."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder or delete it first")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ground_truth" / "masks").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    catalogue = FeatureCatalogue.load()
    plans = _plan_cases(opts)

    # images (the slow part) in worker processes; every case has its own random stream
    image_plans = [p for p in plans if p.has_image]
    opts_dict = {
        k: getattr(opts, k) for k in ("n_cases", "seed", "dims", "size", "defects", "workers", "phi")
    }
    jobs = [(p, opts_dict, str(out)) for p in image_plans]
    images: dict[str, dict] = {}
    if opts.workers > 1 and len(jobs) > 8:
        with ProcessPoolExecutor(max_workers=opts.workers) as pool:
            for done, result in enumerate(pool.map(_write_case_image, jobs, chunksize=8), start=1):
                images[result["case_id"]] = result
                if progress:
                    progress(done, len(jobs))
    else:
        for done, job in enumerate(jobs, start=1):
            result = _write_case_image(job)
            images[result["case_id"]] = result
            if progress:
                progress(done, len(jobs))

    split = patient_level_split(
        [p.patient_id for p in plans], [p.label for p in plans], opts.split_fractions, seed=opts.seed
    )
    case_rows, obs_rows, note_lines, truth = [], [], [], []
    for plan, split_name in zip(plans, split, strict=True):
        rng = np.random.default_rng([opts.seed, 2, plan.index])
        rows, latest = _observation_rows(plan, catalogue, rng)
        lines, statuses, phrases = _notes(plan, rng, phi=opts.phi)
        obs_rows.extend(rows)
        note_lines.extend(lines)
        case_rows.append(
            {
                "case_id": plan.case_id,
                "patient_id": plan.patient_id,
                "label": plan.label,
                "split": split_name,
                "image": images[plan.case_id]["image"] if plan.has_image else "",
                "age": plan.age,
                "age_band": _age_band(plan.age),
                "sex": plan.sex,
                "site": plan.site,
            }
        )
        if opts.phi:
            identity = phi_identity(plan)
            case_rows[-1].update(
                patient_name=f"{identity['given']} {identity['family']}",
                mrn=identity["mrn"],
                birth_date=identity["birth_date"],
                address=identity["address"],
                phone=identity["phone"],
                email=identity["email"],
            )
        terms = {
            "prior": _logit(PREVALENCE),
            "image": image_llr(plan.lesion) if plan.has_image else 0.0,
            "tabular": tabular_llr(catalogue, latest),
            "text": text_llr(statuses) if plan.has_text else 0.0,
        }
        truth.append(
            {
                "case_id": plan.case_id,
                "label": plan.label,
                "split": split_name,
                "site": plan.site,
                "modalities": {"image": plan.has_image, "tabular": plan.has_tabular, "text": plan.has_text},
                "lesion": plan.lesion if plan.has_image else None,
                "mask": images[plan.case_id]["mask"] if plan.has_image else None,
                "causal_features": [k for k, v in FEATURE_MODEL.items() if v[3] is not None and k in latest],
                "latest_causal_values": {
                    k: {"value": v[0], "unit": v[1]}
                    for k, v in latest.items()
                    if FEATURE_MODEL[k][3] is not None
                },
                "findings": statuses,
                "planted_phrases": phrases,
                "logit_terms": terms,
                "posterior": _sigmoid(sum(terms.values())),
            }
        )

    defects: list[dict] = []
    if opts.defects:
        defects = _plant_defects(out, opts, plans, case_rows, obs_rows, note_lines, truth)

    cases = pd.DataFrame(case_rows)
    cases.to_csv(out / "cases.csv", index=False)
    pd.DataFrame(obs_rows, columns=["case_id", "code", "value", "unit", "time"]).to_csv(
        out / "observations.csv", index=False
    )
    with (out / "notes.jsonl").open("w", encoding="utf-8") as fh:
        for line in note_lines:
            fh.write(line if isinstance(line, str) else json.dumps(line, ensure_ascii=False))
            fh.write("\n")
    with (out / "ground_truth" / "truth.jsonl").open("w", encoding="utf-8") as fh:
        for record in truth:
            fh.write(json.dumps(record) + "\n")
    if defects:
        (out / "ground_truth" / "defects.json").write_text(json.dumps(defects, indent=1), encoding="utf-8")
    if opts.phi:
        canaries = _phi_canaries(plans, opts)
        (out / PHI_CANARIES_FILE).write_text(json.dumps({"canaries": canaries}, indent=1), encoding="utf-8")

    aurocs = _test_aurocs(truth)
    spec = {
        "name": f"synthetic-{'2d' if opts.dims == 2 else '3d'}-{opts.n_cases}-seed{opts.seed}",
        "version": "1.0",
        "description": (
            "Synthetic chest cohort written by mmdx synth: CT-like images (DICOM series and NIfTI), "
            "LOINC-coded observations in site-specific units, and clinical notes with affirmed and negated "
            "findings. The Bayes-optimal posterior of every case is in ground_truth/truth.jsonl."
        ),
        "task": {"label": "label", "positive": TASK_POSITIVE, "type": "binary"},
        "subgroups": ["sex", "age_band", "site"],
        "image": {"dims": opts.dims, "modality": "CT"},
        "bayes_auroc": aurocs["all"],
        "modality_auroc": {k: aurocs[k] for k in ("image", "tabular", "text")},
        "generator": {
            "seed": opts.seed,
            "n_cases": opts.n_cases,
            "dims": opts.dims,
            "size": opts.size,
            "defects": opts.defects,
            **({"phi": True} if opts.phi else {}),
            **generator_parameters(),
        },
    }
    (out / "cohort.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, width=110), encoding="utf-8")
    return {
        "path": str(out),
        "cases": len(cases),
        "images": len(images),
        "observations": len(obs_rows),
        "notes": len(note_lines),
        "defects": len(defects),
        "bayes_auroc": aurocs["all"],
        "modality_auroc": spec["modality_auroc"],
    }


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _test_aurocs(truth: list[dict]) -> dict[str, float]:
    """AUROC on the test split of the full posterior and of each modality's posterior alone."""
    test = [t for t in truth if t["split"] == "test" and not t.get("excluded")]
    y = np.array([t["label"] for t in test])
    out = {}
    if len(set(y.tolist())) < 2:
        return {"all": float("nan"), "image": float("nan"), "tabular": float("nan"), "text": float("nan")}
    for name in ("all", "image", "tabular", "text"):
        scores = [
            t["logit_terms"]["prior"]
            + (
                sum(v for k, v in t["logit_terms"].items() if k != "prior")
                if name == "all"
                else t["logit_terms"][name]
            )
            for t in test
        ]
        out[name] = round(float(roc_auc_score(y, scores)), 4)
    return out


# ---------------------------------------------------------------------------------------------------------
# Defects: broken inputs a real extract contains, each with the reason code validation must report
# ---------------------------------------------------------------------------------------------------------
def _plant_defects(
    out: Path,
    opts: SynthOptions,
    plans: list[CasePlan],
    case_rows: list[dict],
    obs_rows: list[dict],
    note_lines: list,
    truth: list[dict],
) -> list[dict]:
    """Break some inputs on purpose; returns what was planted and the reason code each must get."""
    rng = np.random.default_rng([opts.seed, 3])
    by_id = {r["case_id"]: r for r in case_rows}
    truth_by_id = {t["case_id"]: t for t in truth}
    used: set[str] = set()
    planted: list[dict] = []

    def pick(condition) -> str:
        candidates = [p.case_id for p in plans if p.case_id not in used and condition(p)]
        if not candidates:
            raise MmdxError(
                f"cohort too small to plant every defect; use --cases {MIN_CASES_WITH_DEFECTS} or more"
            )
        case_id = str(candidates[int(rng.integers(len(candidates)))])
        used.add(case_id)
        return case_id

    def note(code: str, case_id: str | None, what: str, file: str | None = None) -> None:
        planted.append({"code": code, "case_id": case_id, "file": file, "what": what})

    def drop_image(case_id: str) -> None:
        t = truth_by_id[case_id]
        t["modalities"]["image"] = False
        t["image_defect"] = True
        t["logit_terms"]["image"] = 0.0
        t["posterior"] = _sigmoid(sum(t["logit_terms"].values()))

    dicom = "dicom"
    series = lambda p: p.has_image and p.image_format == dicom and opts.dims == 3  # noqa: E731
    dicom_file = lambda p: p.has_image and p.image_format == dicom  # noqa: E731
    nifti = lambda p: p.has_image and p.image_format == "nifti"  # noqa: E731

    # 1. the image file does not exist
    cid = pick(lambda p: p.has_image)
    _remove(out / by_id[cid]["image"])
    drop_image(cid)
    note("IMAGE_NOT_FOUND", cid, "image file deleted", by_id[cid]["image"])
    # 2. a truncated DICOM file
    cid = pick(dicom_file)
    target = out / by_id[cid]["image"]
    victim = sorted(target.iterdir())[0] if target.is_dir() else target
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - len(data) // 3])
    drop_image(cid)
    note("DICOM_TRUNCATED", cid, f"last third of {victim.name} cut off", by_id[cid]["image"])
    # 3. a missing slice (3D) / a DICOM without pixel data (2D)
    if opts.dims == 3:
        cid = pick(series)
        folder = out / by_id[cid]["image"]
        from pydicom import dcmread

        files = sorted(
            folder.iterdir(), key=lambda f: float(dcmread(f, stop_before_pixels=True).ImagePositionPatient[2])
        )
        files[len(files) // 2].unlink()
        drop_image(cid)
        note("SLICE_SPACING_INCONSISTENT", cid, "a middle slice deleted", by_id[cid]["image"])
        # 4. two series in one folder
        cid = pick(series)
        other = pick(series)
        folder, other_folder = out / by_id[cid]["image"], out / by_id[other]["image"]
        for f in sorted(other_folder.iterdir())[:5]:
            shutil.copy(f, folder / f"X_{f.name}")
        used.discard(other)
        drop_image(cid)
        note("DICOM_MIXED_SERIES", cid, f"five slices of {other} copied into the folder", by_id[cid]["image"])
    else:
        cid = pick(dicom_file)
        folder = out / "images" / f"{cid}_mixed"
        folder.mkdir()
        shutil.copy(out / by_id[cid]["image"], folder / "a.dcm")
        other = pick(dicom_file)
        shutil.copy(out / by_id[other]["image"], folder / "b.dcm")
        used.discard(other)
        by_id[cid]["image"] = f"images/{cid}_mixed"
        drop_image(cid)
        note(
            "DICOM_MIXED_SERIES", cid, f"folder holding this case's slice and {other}'s", by_id[cid]["image"]
        )
    cid = pick(dicom_file)
    _write_no_pixel_dicom(out / "images" / f"{cid}_report.dcm")
    by_id[cid]["image"] = f"images/{cid}_report.dcm"
    drop_image(cid)
    note("DICOM_NO_PIXEL_DATA", cid, "image points to a DICOM without pixel data", by_id[cid]["image"])
    # 5. an unsupported transfer syntax
    cid = pick(dicom_file)
    _write_unsupported_syntax(out / "images" / f"{cid}_mpeg.dcm")
    by_id[cid]["image"] = f"images/{cid}_mpeg.dcm"
    drop_image(cid)
    note("TRANSFER_SYNTAX_UNSUPPORTED", cid, "pixel data in MPEG2 transfer syntax", by_id[cid]["image"])
    # 6. NIfTI with disagreeing qform and sform
    cid = pick(nifti)
    path = out / by_id[cid]["image"]
    img = nib.load(str(path))
    qform = img.affine.copy()
    qform[:3, 3] += [15.0, -10.0, 5.0]
    img = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine)
    img.set_sform(img.affine, code=1)
    img.set_qform(qform, code=1)
    nib.save(img, str(path))
    drop_image(cid)
    note("NIFTI_QFORM_SFORM_MISMATCH", cid, "qform shifted by 19 mm from the sform", by_id[cid]["image"])
    # 7. a path escaping the cohort
    cid = pick(lambda p: p.has_image)
    by_id[cid]["image"] = "../outside_the_cohort/scan.nii.gz"
    drop_image(cid)
    note("PATH_ESCAPES_COHORT", cid, "image path climbs out of the cohort", by_id[cid]["image"])
    # 8. a duplicate case_id (the second row is rejected; the first stays)
    cid = pick(lambda p: True)
    duplicate = dict(by_id[cid])
    duplicate["patient_id"] = duplicate["patient_id"] + "X"
    case_rows.append(duplicate)
    note("DUPLICATE_CASE_ID", cid, "the case appears twice in cases.csv", "cases.csv")
    # 9. an invalid label
    cid = pick(lambda p: True)
    by_id[cid]["label"] = "yes"
    truth_by_id[cid]["excluded"] = True
    note("LABEL_INVALID", cid, "label 'yes' instead of 0/1", "cases.csv")
    # 10. one patient in two splits
    pairs: dict[str, list[str]] = {}
    for p in plans:
        pairs.setdefault(p.patient_id, []).append(p.case_id)
    multi = [ids for ids in pairs.values() if len(ids) > 1 and not used.intersection(ids)]
    if multi:
        ids = multi[int(rng.integers(len(multi)))]
        used.update(ids)
        first, second = by_id[ids[0]], by_id[ids[1]]
        second["split"] = "train" if first["split"] != "train" else "test"
        for c in ids:
            truth_by_id[c]["excluded"] = True
            truth_by_id[c]["split"] = by_id[c]["split"]
        note(
            "PATIENT_IN_TWO_SPLITS", ids[0], f"patient {first['patient_id']}'s cases split apart", "cases.csv"
        )
    # observation rows: extra rows that must be rejected (older than the latest, so nothing informative is lost)
    with_obs = [p for p in plans if p.has_tabular and p.case_id not in used]

    early = lambda p: p.admit.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    plan = with_obs[int(rng.integers(len(with_obs)))]
    obs_rows.append(
        {"case_id": plan.case_id, "code": "8867-4", "value": "900", "unit": "/min", "time": early(plan)}
    )
    note("VALUE_IMPLAUSIBLE", plan.case_id, "heart rate of 900/min", "observations.csv")
    plan = with_obs[int(rng.integers(len(with_obs)))]
    obs_rows.append(
        {"case_id": plan.case_id, "code": "2823-3", "value": "16", "unit": "mg/dL", "time": early(plan)}
    )
    note("UNIT_UNKNOWN", plan.case_id, "potassium reported in mg/dL", "observations.csv")
    plan = with_obs[int(rng.integers(len(with_obs)))]
    obs_rows.append(
        {"case_id": plan.case_id, "code": "2524-7", "value": "pending", "unit": "mmol/L", "time": early(plan)}
    )
    note("VALUE_NOT_NUMERIC", plan.case_id, "lactate value 'pending'", "observations.csv")
    plan = with_obs[int(rng.integers(len(with_obs)))]
    obs_rows.append(
        {"case_id": plan.case_id, "code": "99999-9", "value": "1.0", "unit": "mg/dL", "time": early(plan)}
    )
    note("CODE_UNKNOWN", plan.case_id, "LOINC code 99999-9 is not in the catalogue", "observations.csv")
    plan = with_obs[int(rng.integers(len(with_obs)))]
    obs_rows.append(
        {"case_id": plan.case_id, "code": "heart_rate", "value": "80", "unit": "/min", "time": "yesterday"}
    )
    note("TIME_INVALID", plan.case_id, "time 'yesterday'", "observations.csv")
    obs_rows.append({"case_id": "C_UNKNOWN", "code": "8867-4", "value": "80", "unit": "/min", "time": ""})
    note("UNKNOWN_CASE_ID", None, "observation for a case that does not exist", "observations.csv")
    # a malformed notes line
    note_lines.insert(
        int(rng.integers(0, len(note_lines) + 1)), '{"case_id": "C00001", "text": "Patient seen and'
    )
    note("NOTE_MALFORMED", None, "a notes.jsonl line cut off mid-string", "notes.jsonl")
    return planted


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _write_no_pixel_dicom(path: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path.name)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.PatientID = "SR"
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(path.name), "series"])
    _save_dicom(ds, path)


def _write_unsupported_syntax(path: Path) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import CTImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path.name)])
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 Main Profile / Main Level
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[str(path.name), "series"])
    ds.Modality = "CT"
    ds.Rows, ds.Columns = 16, 16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    ds.PixelData = encapsulate([hashlib.sha256(path.name.encode()).digest() * 2])
    ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    from pydicom import dcmwrite

    dcmwrite(str(path), ds, enforce_file_format=True)
