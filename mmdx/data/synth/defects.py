"""Defects: broken inputs a real extract contains, each with the reason code validation must report."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

from mmdx.data.synth.cases import CasePlan, SynthOptions
from mmdx.data.synth.dicom import write_no_pixel_dicom, write_unsupported_syntax
from mmdx.data.synth.model import MIN_CASES_WITH_DEFECTS, sigmoid
from mmdx.errors import MmdxError


def plant_defects(
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
        t["posterior"] = sigmoid(sum(t["logit_terms"].values()))

    dicom = "dicom"
    series = lambda p: p.has_image and p.image_format == dicom and p.image_dims == 3  # noqa: E731
    dicom_file = lambda p: p.has_image and p.image_format == dicom  # noqa: E731
    slice_file = lambda p: dicom_file(p) and p.image_dims == 2  # noqa: E731
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
        cid = pick(slice_file)
        folder = out / "images" / f"{cid}_mixed"
        folder.mkdir()
        shutil.copy(out / by_id[cid]["image"], folder / "a.dcm")
        other = pick(slice_file)
        shutil.copy(out / by_id[other]["image"], folder / "b.dcm")
        used.discard(other)
        by_id[cid]["image"] = f"images/{cid}_mixed"
        drop_image(cid)
        note(
            "DICOM_MIXED_SERIES", cid, f"folder holding this case's slice and {other}'s", by_id[cid]["image"]
        )
    cid = pick(dicom_file)
    write_no_pixel_dicom(out / "images" / f"{cid}_report.dcm")
    by_id[cid]["image"] = f"images/{cid}_report.dcm"
    drop_image(cid)
    note("DICOM_NO_PIXEL_DATA", cid, "image points to a DICOM without pixel data", by_id[cid]["image"])
    # 5. an unsupported transfer syntax
    cid = pick(dicom_file)
    write_unsupported_syntax(out / "images" / f"{cid}_mpeg.dcm")
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
    note(
        "LOINC_CHECK_DIGIT",
        plan.case_id,
        "LOINC-shaped code 99999-9 whose check digit is wrong (99999 has check digit 5)",
        "observations.csv",
    )
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
