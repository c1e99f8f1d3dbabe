"""Options of a synthetic cohort, the plan of each case (patient, site, label, modalities) and its
observation rows."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import ndtr

from mmdx.data.catalogue import FeatureCatalogue
from mmdx.data.synth.model import (
    ALL_SITES,
    FEATURE_MODEL,
    LESION_PROB,
    MIN_CASES_WITH_DEFECTS,
    MISSING,
    MR_SITE,
    PREVALENCE,
    SHIFTED_SITE,
    SITES,
    from_transformed,
    site_prevalence,
    truncation_bounds,
    unit_decimals,
)


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
    #: in-plane field of view (mm) of every site, centred on a lung, instead of each site's own 320-380 mm
    fov_mm: float | None = None
    #: distance between slices (mm) of every volume, instead of the in-plane spacing times the site's factor
    slice_spacing_mm: float | None = None
    #: slices per volume (default: ``size``)
    slices: int | None = None
    #: add an MR-like site whose signal is in arbitrary units (see ``MR_SITE``)
    mr_site: bool = False
    #: share of the images written with the other dimensionality (2D slices in a 3D cohort and vice versa)
    mix_dims: float = 0.0
    #: every case from a second hospital (see ``SHIFTED_SITE``): another prevalence, shifted features
    site_shift: bool = False

    @property
    def varied(self) -> bool:
        """Whether any option beyond the default synthesis is set."""
        return (
            self.fov_mm is not None
            or self.slice_spacing_mm is not None
            or self.slices is not None
            or self.mr_site
            or self.mix_dims > 0
            or self.site_shift
        )

    def variety(self) -> dict:
        """The options that vary the default synthesis, for ``cohort.yaml`` (empty when none is set)."""
        out = {
            "fov_mm": self.fov_mm,
            "slice_spacing_mm": self.slice_spacing_mm,
            "slices": self.slices,
            "mr_site": self.mr_site or None,
            "mix_dims": self.mix_dims or None,
            "site_shift": shifted_site_parameters() if self.site_shift else None,
        }
        return {k: v for k, v in out.items() if v is not None}

    def __post_init__(self) -> None:
        if self.n_cases < 10:
            raise ValueError(f"--cases must be at least 10, got {self.n_cases}")
        if self.dims not in (2, 3):
            raise ValueError(f"--dims must be 2 or 3, got {self.dims}")
        if not 16 <= self.size <= 512:
            raise ValueError(f"--size must be between 16 and 512 voxels, got {self.size}")
        if self.fov_mm is not None and not 8.0 <= self.fov_mm <= 500.0:
            raise ValueError(f"--fov must be between 8 and 500 mm, got {self.fov_mm}")
        if self.slice_spacing_mm is not None and not 0.1 <= self.slice_spacing_mm <= 50.0:
            raise ValueError(f"--slice-spacing must be between 0.1 and 50 mm, got {self.slice_spacing_mm}")
        if self.slices is not None and not 2 <= self.slices <= 512:
            raise ValueError(f"--slices must be between 2 and 512, got {self.slices}")
        if not 0.0 <= self.mix_dims <= 0.5:
            raise ValueError(f"--mix-dims must be between 0 and 0.5, got {self.mix_dims}")
        if self.site_shift and self.mr_site:
            raise ValueError(
                "--site-shift and --mr-site cannot be combined: the shifted site is the only site"
            )
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
    image_dims: int = 3  # 2 or 3: the cohort's dims, or the other one for a --mix-dims case


def plan_cases(opts: SynthOptions) -> list[CasePlan]:
    rng = np.random.default_rng([opts.seed, 0])
    n = opts.n_cases
    sites = {**SITES, **MR_SITE} if opts.mr_site else SHIFTED_SITE if opts.site_shift else SITES
    site_names = list(sites)
    weights = np.array([sites[s]["weight"] for s in site_names])
    n_patients = max(2, int(round(n * 0.8)))
    patient_site = rng.choice(len(site_names), size=n_patients, p=weights / weights.sum())
    patient_sex = rng.choice(["F", "M"], size=n_patients)
    patient_age = np.clip(rng.normal(64, 16, size=n_patients), 18, 98).astype(int)
    # every patient has one case; the remaining cases are readmissions of random patients
    patient_of_case = np.concatenate([np.arange(n_patients), rng.integers(0, n_patients, n - n_patients)])
    patient_of_case = rng.permutation(patient_of_case)
    prevalence = site_prevalence(site_names[0]) if opts.site_shift else PREVALENCE
    labels = (rng.random(n) < prevalence).astype(int)
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
                image_format="dicom" if fmt_u[i] < sites[site]["dicom_share"] else "nifti",
                admit=base + pd.Timedelta(minutes=int(rng.integers(0, 60 * 24 * 360))),
                patient_number=p + 1,
                image_dims=opts.dims,
            )
        )
    if opts.mix_dims > 0:
        # a stream of its own, so that everything else is drawn exactly as without the option
        flip = np.random.default_rng([opts.seed, 5]).random(n) < opts.mix_dims
        for plan, flipped in zip(plans, flip, strict=True):
            plan.image_dims = 5 - opts.dims if flipped else opts.dims
    return plans


def shifted_site_parameters() -> dict:
    """What ``--site-shift`` changes, for ``cohort.yaml``: the site, its prevalence, the shifted features
    (mean shift in standard deviations, both classes alike) and the features observed more often."""
    ((name, site),) = SHIFTED_SITE.items()
    return {
        "site": name,
        "prevalence": site["prevalence"],
        "feature_shift_sd": dict(site["feature_shift"]),
        "p_observed": dict(site["p_observed"]),
        "shifted_features": sorted(site["feature_shift"]),
    }


def age_band(age: int) -> str:
    return "18-49" if age < 50 else ("50-69" if age < 70 else "70+")


def observation_rows(plan: CasePlan, catalogue: FeatureCatalogue, rng: np.random.Generator) -> tuple:
    """Long-format rows for one case, and the latest written value of each feature ``{key: (value, unit)}``."""
    rows: list[dict] = []
    latest: dict[str, tuple[float, str]] = {}
    if not plan.has_tabular:
        return rows, latest
    site = ALL_SITES[plan.site]
    units = site["units"]
    if site.get("units_from_sites"):
        names = list(SITES)
        weights = np.array([SITES[n]["weight"] for n in names])
        units = SITES[names[int(rng.choice(len(names), p=weights / weights.sum()))]]["units"]
    shift, observed = site.get("feature_shift", {}), site.get("p_observed", {})
    for key, (kind, mean0, sd, mean1, p_obs) in FEATURE_MODEL.items():
        if rng.random() >= observed.get(key, p_obs):
            continue
        delta = shift.get(key, 0.0) * sd
        feature = catalogue[key]
        unit = units.get(key, feature.unit)
        decimals = unit_decimals(feature, unit)
        low, high = truncation_bounds(feature)
        n_obs = int(rng.integers(1, 5))
        hours = np.sort(rng.choice(np.arange(1, 72), size=n_obs, replace=False))
        for j, hour in enumerate(hours):
            latest_row = j == n_obs - 1
            mean = mean1 if (latest_row and mean1 is not None and plan.label == 1) else mean0
            t = _truncated_normal(rng, mean + delta, sd, low, high)
            canonical = float(from_transformed(kind, t))
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
