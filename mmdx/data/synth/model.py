"""The generative model of the synthetic cohort and its exact likelihoods.

Everything the Bayes posterior depends on lives here and is copied into ``cohort.yaml`` under
``generator``, so the posterior can be recomputed from the files alone.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_ndtr
from sklearn.metrics import roc_auc_score

from mmdx.data.catalogue import Feature, FeatureCatalogue

SCHEMA_VERSION = 1
TASK_POSITIVE = "pneumonia requiring escalation of care"

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

#: An MR-like site (``mmdx synth --mr-site``): DICOM only, Modality MR, signal in arbitrary units whose
#: scale differs per image (``gain``), so no fixed window fits it. Its labs follow the north site's units.
MR_SITE: dict[str, dict] = {
    "west": {
        "weight": 0.30,
        "units": dict(SITES["north"]["units"]),
        "modality": "MR",
        "gain": (0.3, 4.0),
        "noise_signal": 12.0,
        "fov_mm": 360.0,
        "z_factor": 1.1,
        "dicom_share": 1.0,
        "manufacturer": "SIEMENS",
        "rescale": (1.0, 0.0),
    }
}
#: A second hospital (``mmdx synth --site-shift``): every case of the cohort comes from it. Its outcome is
#: rarer (``prevalence``), three features that carry no information about the outcome are shifted in both
#: classes alike (``feature_shift``: mean shift in standard deviations of the feature's transformed scale),
#: one is measured more often (``p_observed``), and its scanner and units lie within the home sites' range.
#: Every feature's class-conditional distribution stays that of the home sites except those named, so the
#: Bayes posterior changes only through its prior term and ``bayes_auroc`` stays known.
SHIFTED_SITE: dict[str, dict] = {
    "harbour": {
        "weight": 1.0,
        "prevalence": 0.20,
        "feature_shift": {"spo2": -0.8, "creatinine": 0.8, "glucose": 0.7},
        "p_observed": {"troponin_i": 0.85},
        # its laboratories follow the home sites' unit conventions, each case one of them (home weights):
        # a value's recorded resolution is then distributed as at home, and only the named features move
        "units": {},
        "units_from_sites": True,
        "hu_offset": 12.0,
        "noise_hu": 24.0,
        "fov_mm": 350.0,
        "z_factor": 1.1,
        "dicom_share": 0.6,
        "manufacturer": "CANON",
        "rescale": (1.0, -1024.0),
    }
}
#: Every site by name (the sites of a cohort are SITES, plus MR_SITE with ``--mr-site``, or SHIFTED_SITE
#: alone with ``--site-shift``).
ALL_SITES: dict[str, dict] = {**SITES, **MR_SITE, **SHIFTED_SITE}


def site_prevalence(site: str) -> float:
    """The outcome's prevalence at ``site`` (the home sites share :data:`PREVALENCE`)."""
    return float(ALL_SITES[site].get("prevalence", PREVALENCE))


HU_AIR, HU_TISSUE, HU_LUNG, HU_BONE, HU_HEART, HU_LESION = -1000.0, 40.0, -850.0, 650.0, 45.0, 25.0
#: MR-like signal of each phantom tissue (before the per-image gain), as (HU, signal) pairs interpolated
#: linearly: air dark, lung faint, soft tissue and the nodule bright, bone intermediate.
MR_SIGNAL: tuple[tuple[float, float], ...] = (
    (HU_AIR, 0.0),
    (HU_LUNG, 60.0),
    (HU_TISSUE, 520.0),
    (HU_BONE, 240.0),
)
TRUNCATION_SDS = 4.5
MIN_CASES_WITH_DEFECTS = 40


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def to_transformed(kind: str, x: np.ndarray | float) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if kind == "log":
        with np.errstate(divide="ignore"):
            return np.where(x > 0, np.log(np.maximum(x, 1e-300)), -np.inf)
    return x


def from_transformed(kind: str, t: np.ndarray | float) -> np.ndarray:
    return np.exp(t) if kind == "log" else np.asarray(t, dtype=float)


def truncation_bounds(feature: Feature) -> tuple[float, float]:
    """Support of a feature's distribution in transformed space: ±4.5 sd around both class means, kept one
    rounding step inside the plausible range so that no generated value is ever implausible."""
    kind, mean0, sd, mean1, _ = FEATURE_MODEL[feature.key]
    means = [mean0] + ([mean1] if mean1 is not None else [])
    step = 10.0**-feature.decimals
    low_c = max(feature.plausible[0] + step, 1e-6 if kind == "log" else -np.inf)
    high_c = feature.plausible[1] - step
    low = max(min(means) - TRUNCATION_SDS * sd, float(to_transformed(kind, low_c)))
    high = min(max(means) + TRUNCATION_SDS * sd, float(to_transformed(kind, high_c)))
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
    a = float(to_transformed(kind, feature.to_canonical(written - half, unit)))
    b = float(to_transformed(kind, feature.to_canonical(written + half, unit)))
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


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def bayes_aurocs(truth: list[dict]) -> dict[str, float]:
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
