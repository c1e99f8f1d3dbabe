"""Defects: broken inputs a real extract contains, each with the reason code validation must report.

Each defect is a small recipe (:class:`DefectRecipe`) registered in :data:`DEFECTS`, in the order they are
planted; :func:`plant_defects` runs those that apply to the cohort's dimensionality. A recipe breaks one
input through a :class:`DefectSite` (the cohort being written, its tables and the defect random stream)
and records the reason code validation must give it. Recipes draw from one random stream in a fixed
order, so a seed gives the same cohort every time; a new recipe goes at the end to keep earlier cohorts.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import nibabel as nib
import numpy as np

from mmdx.data.synth.cases import CasePlan, SynthOptions
from mmdx.data.synth.dicom import write_no_pixel_dicom, write_unsupported_syntax
from mmdx.data.synth.model import MIN_CASES_WITH_DEFECTS, sigmoid
from mmdx.errors import MmdxError
from mmdx.registry import Registry

DICOM = "dicom"


@dataclass
class DefectSite:
    """The cohort being written, as the recipes see it: its folder, plans and rows (edited in place), the
    defect random stream, the cases already broken and the list of what was planted."""

    out: Path
    opts: SynthOptions
    plans: list[CasePlan]
    case_rows: list[dict]
    obs_rows: list[dict]
    note_lines: list
    truth: list[dict]
    rng: np.random.Generator
    used: set[str] = field(default_factory=set)
    planted: list[dict] = field(default_factory=list)

    @cached_property
    def by_id(self) -> dict[str, dict]:
        return {r["case_id"]: r for r in self.case_rows}

    @cached_property
    def truth_by_id(self) -> dict[str, dict]:
        return {t["case_id"]: t for t in self.truth}

    @cached_property
    def with_observations(self) -> list[CasePlan]:
        """Cases with observations not broken by an earlier recipe (fixed at first use)."""
        return [p for p in self.plans if p.has_tabular and p.case_id not in self.used]

    def pick(self, condition: Callable[[CasePlan], bool]) -> str:
        """A random case not used yet that meets ``condition``; it is marked used."""
        candidates = [p.case_id for p in self.plans if p.case_id not in self.used and condition(p)]
        if not candidates:
            raise MmdxError(
                f"cohort too small to plant every defect; use --cases {MIN_CASES_WITH_DEFECTS} or more"
            )
        case_id = str(candidates[int(self.rng.integers(len(candidates)))])
        self.used.add(case_id)
        return case_id

    def pick_observed(self) -> CasePlan:
        """A random case with observations (several recipes may pick the same one)."""
        cases = self.with_observations
        return cases[int(self.rng.integers(len(cases)))]

    def image(self, case_id: str) -> str:
        return self.by_id[case_id]["image"]

    def record(self, code: str, case_id: str | None, what: str, file: str | None = None) -> None:
        self.planted.append({"code": code, "case_id": case_id, "file": file, "what": what})

    def drop_image(self, case_id: str) -> None:
        """The case's image is unusable: its truth loses the image term."""
        t = self.truth_by_id[case_id]
        t["modalities"]["image"] = False
        t["image_defect"] = True
        t["logit_terms"]["image"] = 0.0
        t["posterior"] = sigmoid(sum(t["logit_terms"].values()))

    def image_defect(self, code: str, case_id: str, what: str) -> None:
        self.drop_image(case_id)
        self.record(code, case_id, what, self.image(case_id))


@dataclass(frozen=True)
class DefectRecipe:
    """One kind of broken input: ``plant`` breaks it; ``dims`` are the cohorts (2D, 3D) that get it."""

    name: str
    plant: Callable[[DefectSite], None]
    dims: tuple[int, ...] = (2, 3)


#: The defects, in the order they are planted.
DEFECTS: Registry[DefectRecipe] = Registry("defect")


def _has_image(p: CasePlan) -> bool:
    return p.has_image


def _dicom_file(p: CasePlan) -> bool:
    return p.has_image and p.image_format == DICOM


def _dicom_series(p: CasePlan) -> bool:
    """A DICOM volume (a folder of slices); with --mix-dims a 3D cohort holds single slices too."""
    return _dicom_file(p) and p.image_dims == 3


def _dicom_slice(p: CasePlan) -> bool:
    return _dicom_file(p) and p.image_dims == 2


def _nifti(p: CasePlan) -> bool:
    return p.has_image and p.image_format == "nifti"


def _anyone(p: CasePlan) -> bool:
    return True


def _image_not_found(site: DefectSite) -> None:
    cid = site.pick(_has_image)
    _remove(site.out / site.image(cid))
    site.image_defect("IMAGE_NOT_FOUND", cid, "image file deleted")


def _dicom_truncated(site: DefectSite) -> None:
    cid = site.pick(_dicom_file)
    target = site.out / site.image(cid)
    victim = sorted(target.iterdir())[0] if target.is_dir() else target
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - len(data) // 3])
    site.image_defect("DICOM_TRUNCATED", cid, f"last third of {victim.name} cut off")


def _slice_missing(site: DefectSite) -> None:
    from pydicom import dcmread

    cid = site.pick(_dicom_series)
    folder = site.out / site.image(cid)
    files = sorted(
        folder.iterdir(), key=lambda f: float(dcmread(f, stop_before_pixels=True).ImagePositionPatient[2])
    )
    files[len(files) // 2].unlink()
    site.image_defect("SLICE_SPACING_INCONSISTENT", cid, "a middle slice deleted")


def _mixed_series_3d(site: DefectSite) -> None:
    cid = site.pick(_dicom_series)
    other = site.pick(_dicom_series)
    folder, other_folder = site.out / site.image(cid), site.out / site.image(other)
    for f in sorted(other_folder.iterdir())[:5]:
        shutil.copy(f, folder / f"X_{f.name}")
    site.used.discard(other)
    site.image_defect("DICOM_MIXED_SERIES", cid, f"five slices of {other} copied into the folder")


def _mixed_series_2d(site: DefectSite) -> None:
    cid = site.pick(_dicom_slice)
    folder = site.out / "images" / f"{cid}_mixed"
    folder.mkdir()
    shutil.copy(site.out / site.image(cid), folder / "a.dcm")
    other = site.pick(_dicom_slice)
    shutil.copy(site.out / site.image(other), folder / "b.dcm")
    site.used.discard(other)
    site.by_id[cid]["image"] = f"images/{cid}_mixed"
    site.image_defect("DICOM_MIXED_SERIES", cid, f"folder holding this case's slice and {other}'s")


def _no_pixel_data(site: DefectSite) -> None:
    cid = site.pick(_dicom_file)
    write_no_pixel_dicom(site.out / "images" / f"{cid}_report.dcm")
    site.by_id[cid]["image"] = f"images/{cid}_report.dcm"
    site.image_defect("DICOM_NO_PIXEL_DATA", cid, "image points to a DICOM without pixel data")


def _unsupported_syntax(site: DefectSite) -> None:
    cid = site.pick(_dicom_file)
    write_unsupported_syntax(site.out / "images" / f"{cid}_mpeg.dcm")
    site.by_id[cid]["image"] = f"images/{cid}_mpeg.dcm"
    site.image_defect("TRANSFER_SYNTAX_UNSUPPORTED", cid, "pixel data in MPEG2 transfer syntax")


def _qform_sform_mismatch(site: DefectSite) -> None:
    cid = site.pick(_nifti)
    path = site.out / site.image(cid)
    img = nib.load(str(path))
    qform = img.affine.copy()
    qform[:3, 3] += [15.0, -10.0, 5.0]
    img = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine)
    img.set_sform(img.affine, code=1)
    img.set_qform(qform, code=1)
    nib.save(img, str(path))
    site.image_defect("NIFTI_QFORM_SFORM_MISMATCH", cid, "qform shifted by 19 mm from the sform")


def _path_escapes(site: DefectSite) -> None:
    cid = site.pick(_has_image)
    site.by_id[cid]["image"] = "../outside_the_cohort/scan.nii.gz"
    site.image_defect("PATH_ESCAPES_COHORT", cid, "image path climbs out of the cohort")


def _duplicate_case_id(site: DefectSite) -> None:
    """The second row is rejected; the first stays."""
    cid = site.pick(_anyone)
    duplicate = dict(site.by_id[cid])
    duplicate["patient_id"] = duplicate["patient_id"] + "X"
    site.case_rows.append(duplicate)
    site.record("DUPLICATE_CASE_ID", cid, "the case appears twice in cases.csv", "cases.csv")


def _label_invalid(site: DefectSite) -> None:
    cid = site.pick(_anyone)
    site.by_id[cid]["label"] = "yes"
    site.truth_by_id[cid]["excluded"] = True
    site.record("LABEL_INVALID", cid, "label 'yes' instead of 0/1", "cases.csv")


def _patient_in_two_splits(site: DefectSite) -> None:
    pairs: dict[str, list[str]] = {}
    for p in site.plans:
        pairs.setdefault(p.patient_id, []).append(p.case_id)
    multi = [ids for ids in pairs.values() if len(ids) > 1 and not site.used.intersection(ids)]
    if not multi:
        return
    ids = multi[int(site.rng.integers(len(multi)))]
    site.used.update(ids)
    first, second = site.by_id[ids[0]], site.by_id[ids[1]]
    second["split"] = "train" if first["split"] != "train" else "test"
    for c in ids:
        site.truth_by_id[c]["excluded"] = True
        site.truth_by_id[c]["split"] = site.by_id[c]["split"]
    site.record(
        "PATIENT_IN_TWO_SPLITS", ids[0], f"patient {first['patient_id']}'s cases split apart", "cases.csv"
    )


def _bad_observation(code: str, loinc: str, value: str, unit: str, what: str) -> Callable[[DefectSite], None]:
    """An extra observation row that must be rejected, older than the case's latest, so that nothing
    informative is lost."""

    def plant(site: DefectSite) -> None:
        plan = site.pick_observed()
        time = plan.admit.strftime("%Y-%m-%dT%H:%M:%SZ")
        site.obs_rows.append(
            {"case_id": plan.case_id, "code": loinc, "value": value, "unit": unit, "time": time}
        )
        site.record(code, plan.case_id, what, "observations.csv")

    return plant


def _time_invalid(site: DefectSite) -> None:
    plan = site.pick_observed()
    site.obs_rows.append(
        {"case_id": plan.case_id, "code": "heart_rate", "value": "80", "unit": "/min", "time": "yesterday"}
    )
    site.record("TIME_INVALID", plan.case_id, "time 'yesterday'", "observations.csv")


def _unknown_case_id(site: DefectSite) -> None:
    site.obs_rows.append(
        {"case_id": "C_UNKNOWN", "code": "8867-4", "value": "80", "unit": "/min", "time": ""}
    )
    site.record("UNKNOWN_CASE_ID", None, "observation for a case that does not exist", "observations.csv")


def _note_malformed(site: DefectSite) -> None:
    position = int(site.rng.integers(0, len(site.note_lines) + 1))
    site.note_lines.insert(position, '{"case_id": "C00001", "text": "Patient seen and')
    site.record("NOTE_MALFORMED", None, "a notes.jsonl line cut off mid-string", "notes.jsonl")


for _recipe in (
    DefectRecipe("image_not_found", _image_not_found),
    DefectRecipe("dicom_truncated", _dicom_truncated),
    DefectRecipe("slice_missing", _slice_missing, dims=(3,)),
    DefectRecipe("mixed_series_3d", _mixed_series_3d, dims=(3,)),
    DefectRecipe("mixed_series_2d", _mixed_series_2d, dims=(2,)),
    DefectRecipe("no_pixel_data", _no_pixel_data),
    DefectRecipe("unsupported_transfer_syntax", _unsupported_syntax),
    DefectRecipe("qform_sform_mismatch", _qform_sform_mismatch),
    DefectRecipe("path_escapes_cohort", _path_escapes),
    DefectRecipe("duplicate_case_id", _duplicate_case_id),
    DefectRecipe("label_invalid", _label_invalid),
    DefectRecipe("patient_in_two_splits", _patient_in_two_splits),
    DefectRecipe(
        "value_implausible",
        _bad_observation("VALUE_IMPLAUSIBLE", "8867-4", "900", "/min", "heart rate of 900/min"),
    ),
    DefectRecipe(
        "unit_unknown",
        _bad_observation("UNIT_UNKNOWN", "2823-3", "16", "mg/dL", "potassium reported in mg/dL"),
    ),
    DefectRecipe(
        "value_not_numeric",
        _bad_observation("VALUE_NOT_NUMERIC", "2524-7", "pending", "mmol/L", "lactate value 'pending'"),
    ),
    DefectRecipe(
        "loinc_check_digit",
        _bad_observation(
            "LOINC_CHECK_DIGIT",
            "99999-9",
            "1.0",
            "mg/dL",
            "LOINC-shaped code 99999-9 whose check digit is wrong (99999 has check digit 5)",
        ),
    ),
    DefectRecipe("time_invalid", _time_invalid),
    DefectRecipe("unknown_case_id", _unknown_case_id),
    DefectRecipe("note_malformed", _note_malformed),
):
    DEFECTS.register(_recipe)


def plant_defects(
    out: Path,
    opts: SynthOptions,
    plans: list[CasePlan],
    case_rows: list[dict],
    obs_rows: list[dict],
    note_lines: list,
    truth: list[dict],
) -> list[dict]:
    """Break some inputs on purpose (the rows are edited in place); returns what was planted and the
    reason code each must get."""
    site = DefectSite(
        out, opts, plans, case_rows, obs_rows, note_lines, truth, np.random.default_rng([opts.seed, 3])
    )
    for recipe in DEFECTS:
        if opts.dims in recipe.dims:
            recipe.plant(site)
    return site.planted


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
