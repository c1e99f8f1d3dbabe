"""A whole identified cohort de-identified: no canary left, IDs, UIDs and dates consistent, pixels intact,
the same key reproducing the same bytes, and the result still a valid cohort."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from pydicom import dcmread

from mmdx.data.validation import validate_cohort
from mmdx.deid.canary import find_canaries, load_canaries
from mmdx.deid.cohort import REPORT_FILE, DeidOptions, deidentify_cohort, scrub_nifti
from mmdx.deid.dicom import QuarantineReason
from mmdx.errors import MmdxError
from tests.support.phi_cohorts import KEY_A, KEY_B

UID_KINDS = ("study_uid", "series_uid", "frame_uid", "patient_uid")


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _cases(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "cases.csv", dtype=str, keep_default_na=False)


def test_input_really_carries_every_kind_of_canary(phi3d: Path) -> None:
    canaries = load_canaries(phi3d)
    found = {h.canary for h in find_canaries([phi3d], canaries)}
    kinds = {c["kind"] for c in canaries if c["value"] in found}
    assert kinds >= {
        "family",
        "given",
        "mrn",
        "case_id",
        "doctor",
        "operator",
        "phone",
        "email",
        "address",
        "birth_date",
        "birth_date_dicom",
        "visit_date",
        "private",
        "other_id",
        "request_id",
        "accession",
        "study_uid",
        "series_uid",
    }
    assert len(found) == len({c["value"] for c in canaries})  # the scanner finds every one of them


@pytest.mark.parametrize("fixture", ["deid3d", "deid2d_defects"])
def test_no_canary_in_any_output_byte(fixture: str, request: pytest.FixtureRequest) -> None:
    out: Path = request.getfixturevalue(fixture)
    source = request.getfixturevalue("phi3d" if fixture == "deid3d" else "phi2d_defects")
    hits = find_canaries([out], load_canaries(source))
    assert hits == [], hits[:10]
    assert not (out / "ground_truth" / "phi_canaries.json").exists()


def test_ids_are_pseudonymised_consistently(phi3d: Path, deid3d: Path) -> None:
    cases_in, cases_out = _cases(phi3d), _cases(deid3d)
    assert cases_out["case_id"].str.fullmatch(r"C-[0-9a-f]{10}").all()
    assert cases_out["patient_id"].str.fullmatch(r"P-[0-9a-f]{10}").all()
    # the same patient keeps one pseudonym; different patients get different ones
    pairs = set(zip(cases_in["patient_id"], cases_out["patient_id"], strict=True))
    assert len(pairs) == cases_in["patient_id"].nunique() == cases_out["patient_id"].nunique()
    assert {"patient_name", "mrn", "birth_date", "address", "phone", "email"}.isdisjoint(cases_out.columns)
    assert list(cases_out.columns) == [
        "case_id",
        "patient_id",
        "label",
        "split",
        "image",
        "age",
        "age_band",
        "sex",
        "site",
    ]
    known = set(cases_out["case_id"])
    obs = pd.read_csv(deid3d / "observations.csv", dtype=str)
    notes = [json.loads(line) for line in (deid3d / "notes.jsonl").open()]
    truth = [json.loads(line) for line in (deid3d / "ground_truth" / "truth.jsonl").open()]
    assert set(obs["case_id"]) <= known and {n["case_id"] for n in notes} <= known
    assert {t["case_id"] for t in truth} == known
    for row in cases_out.itertuples():
        if row.image:
            assert row.image.startswith(f"images/{row.case_id}")
            assert (deid3d / row.image).exists()
            dicom = [f for f in (deid3d / row.image).glob("*.dcm")] if (deid3d / row.image).is_dir() else []
            for f in dicom[:2]:
                assert dcmread(f, stop_before_pixels=True).PatientID == row.patient_id


def test_the_same_key_gives_byte_identical_output(phi3d: Path, deid3d: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    deidentify_cohort(phi3d, again, KEY_A, DeidOptions(workers=1))  # another worker count, same bytes
    assert _digest(again) == _digest(deid3d)


def test_a_different_key_gives_unlinkable_ids(
    phi2d_defects: Path, deid2d_defects: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    deidentify_cohort(phi2d_defects, other, KEY_B)
    assert _digest(other) != _digest(deid2d_defects)
    a, b = _cases(deid2d_defects), _cases(other)
    assert set(a["case_id"]).isdisjoint(b["case_id"]) and set(a["patient_id"]).isdisjoint(b["patient_id"])


def _series(root: Path) -> dict[str, list]:
    cases = _cases(root)
    out = {}
    for row in cases.itertuples():
        folder = root / row.image if row.image else None
        if folder is not None and folder.is_dir():
            out[row.case_id] = [dcmread(f) for f in sorted(folder.iterdir())]
    return out


def test_uids_consistent_references_resolve_no_collisions(phi3d: Path, deid3d: Path) -> None:
    before, after = _series(phi3d), _series(deid3d)
    assert len(before) == len(after) > 3
    original_uids = {
        str(ds[t].value)
        for files in before.values()
        for ds in files
        for t in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID")
    }
    sops = []
    for files in after.values():
        assert len({ds.SeriesInstanceUID for ds in files}) == 1  # a series stays a series
        assert len({ds.StudyInstanceUID for ds in files}) == 1
        own = {ds.SOPInstanceUID for ds in files}
        for ds in files:
            for uid in (ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID):
                assert uid.startswith("2.25.") and len(uid) <= 64 and uid not in original_uids
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            for ref in ds.get("ReferencedImageSequence", []):
                assert ref.ReferencedSOPInstanceUID in own  # still points at a slice of the series
            sops.append(ds.SOPInstanceUID)
    assert len(sops) == len(set(sops)) == sum(len(f) for f in before.values())
    referencing = sum("ReferencedImageSequence" in ds for files in after.values() for ds in files)
    assert referencing > 0


def test_pixel_data_unchanged(phi3d: Path, deid3d: Path) -> None:
    cases_in, cases_out = _cases(phi3d), _cases(deid3d)
    before, after = _series(phi3d), _series(deid3d)
    mapping = dict(zip(cases_in["case_id"], cases_out["case_id"], strict=True))
    from tests.support.phi_cohorts import KEY_A as key

    checked = 0
    for case_in, files in before.items():
        by_uid = {ds.SOPInstanceUID: ds for ds in after[mapping[case_in]]}
        for ds in files:
            assert by_uid[key.uid(ds.SOPInstanceUID)].PixelData == ds.PixelData
            checked += 1
    for row_in, row_out in zip(cases_in.itertuples(), cases_out.itertuples(), strict=True):
        if row_in.image.endswith(".nii.gz"):
            a, b = nib.load(phi3d / row_in.image), nib.load(deid3d / row_out.image)
            np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
            np.testing.assert_array_equal(a.affine, b.affine)
            assert b.header["descrip"].item() == b""
            checked += 1
    assert checked > 50


def test_date_intervals_preserved_per_patient(phi3d: Path, deid3d: Path) -> None:
    cases_in, cases_out = _cases(phi3d), _cases(deid3d)
    patient_of = dict(zip(cases_in["case_id"], cases_in["patient_id"], strict=True))
    obs_in = pd.read_csv(phi3d / "observations.csv", dtype=str)
    obs_out = pd.read_csv(deid3d / "observations.csv", dtype=str)
    shifts: dict[str, set] = defaultdict(set)
    for a, b in zip(obs_in.itertuples(), obs_out.itertuples(), strict=True):
        delta = pd.Timestamp(b.time) - pd.Timestamp(a.time)
        assert delta.components.hours == delta.components.minutes == 0
        shifts[patient_of[a.case_id]].add(delta.days)
    notes_in = [json.loads(line) for line in (phi3d / "notes.jsonl").open()]
    notes_out = [json.loads(line) for line in (deid3d / "notes.jsonl").open()]
    for a, b in zip(notes_in, notes_out, strict=True):
        shifts[patient_of[a["case_id"]]].add((pd.Timestamp(b["time"]) - pd.Timestamp(a["time"])).days)
    before, after = _series(phi3d), _series(deid3d)
    mapping = dict(zip(cases_in["case_id"], cases_out["case_id"], strict=True))
    for case_in, files in before.items():
        a, b = files[0], after[mapping[case_in]][0]
        delta = pd.Timestamp(b.StudyDate) - pd.Timestamp(a.StudyDate)
        shifts[patient_of[case_in]].add(delta.days)
        assert b.StudyTime == a.StudyTime
    assert len(shifts) > 5
    for values in shifts.values():
        assert len(values) == 1 and -365 <= next(iter(values)) <= -1  # one offset per patient
    assert len({next(iter(v)) for v in shifts.values()}) > 1  # patients get different offsets


def test_planted_phrases_are_found_at_their_new_spans(deid3d: Path) -> None:
    from mmdx.data.cohort import read_cohort
    from mmdx.data.text import parse_notes

    files = read_cohort(deid3d)
    notes = parse_notes(files.note_lines, set(files.cases["case_id"]), "notes.jsonl")
    checked = 0
    for line in (deid3d / "ground_truth" / "truth.jsonl").open():
        record = json.loads(line)
        for phrase in record["planted_phrases"]:
            text = notes.joined(record["case_id"])
            start, end = phrase["span"]
            assert text[start:end] == phrase["sentence"]
            f_start, f_end = phrase["finding_span"]
            assert text[f_start:f_end].lower() == phrase["finding"]
            checked += 1
    assert checked > 5


def test_deidentified_cohort_still_validates_like_the_original(
    phi2d_defects: Path, deid2d_defects: Path
) -> None:
    before = validate_cohort(phi2d_defects, check_images=True)
    after = validate_cohort(deid2d_defects, check_images=True)
    assert after.report.usable
    codes = lambda v: {i.code for c in v.report.cases for i in c.issues} | {i.code for i in v.report.files}  # noqa: E731
    assert codes(after) <= codes(before)
    # every case usable before is usable after (the truncated file is quarantined, the case keeps the rest)
    assert len(after.cases) >= len(before.cases) - 1
    report = json.loads((deid2d_defects / REPORT_FILE).read_text())
    reasons = {q["reason"] for q in report["quarantine"]}
    assert reasons <= {QuarantineReason.DICOM_TRUNCATED.value, QuarantineReason.DICOM_UNREADABLE.value}
    assert any(n["path"] == "ground_truth/phi_canaries.json" for n in report["not_copied"])


def test_ultrasound_without_burned_in_annotation_is_quarantined(phi2d_defects: Path, tmp_path: Path) -> None:
    source = tmp_path / "in"
    shutil.copytree(phi2d_defects, source)
    cases = _cases(source)
    row = next(r for r in cases.itertuples() if r.image.endswith(".dcm") and "_" not in Path(r.image).stem)
    ds = dcmread(source / row.image)
    ds.Modality = "US"
    del ds.BurnedInAnnotation
    ds.save_as(source / row.image)
    out = tmp_path / "out"
    quarantine_dir = tmp_path / "held"
    deidentify_cohort(source, out, KEY_A, DeidOptions(quarantine_dir=quarantine_dir))
    report = json.loads((out / REPORT_FILE).read_text())
    held = [q for q in report["quarantine"] if q["reason"] == "BURNED_IN_ANNOTATION_UNKNOWN"]
    assert len(held) == 1
    pseudo = held[0]["case_id"]
    cases_out = _cases(out).set_index("case_id")
    assert cases_out.loc[pseudo, "image"] == ""  # the case keeps its other modalities
    assert not list((out / "images").glob(f"{pseudo}*"))
    assert (quarantine_dir / f"{pseudo}.dcm").is_file()  # the original, for manual review


def test_refuses_output_inside_input_or_not_empty(phi3d: Path, tmp_path: Path) -> None:
    with pytest.raises(MmdxError, match="outside the input cohort"):
        deidentify_cohort(phi3d, phi3d / "deid", KEY_A)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    with pytest.raises(MmdxError, match="not empty"):
        deidentify_cohort(phi3d, tmp_path / "full", KEY_A)
    assert (tmp_path / "full" / "x").read_text() == "keep"


def test_nifti_header_text_and_extensions_removed_voxels_kept(tmp_path: Path) -> None:
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = nib.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0]))
    img.header["descrip"] = b"SECRETNAME scan"
    img.header["aux_file"] = b"SECRETAUX"
    img.header["intent_name"] = b"SECRETINT"
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"SECRETEXT patient"))
    nib.save(img, tmp_path / "in.nii.gz")
    counts = scrub_nifti(tmp_path / "in.nii.gz", tmp_path / "out.nii.gz")
    assert counts == {"header_fields_cleared": 3, "extensions_removed": 1}
    assert (
        find_canaries([tmp_path / "out.nii.gz"], ["SECRETNAME", "SECRETAUX", "SECRETINT", "SECRETEXT"]) == []
    )
    assert find_canaries([tmp_path / "in.nii.gz"], ["SECRETEXT"]) != []  # the scan does look inside gzip
    out = nib.load(tmp_path / "out.nii.gz")
    np.testing.assert_array_equal(np.asarray(out.dataobj), data)
    np.testing.assert_array_equal(out.affine, img.affine)


def test_names_known_only_from_dicom_headers_are_scrubbed_from_notes(
    phi2d_defects: Path, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    shutil.copytree(phi2d_defects, source)
    cases = _cases(source)
    row = next(r for r in cases.itertuples() if r.image.endswith(".dcm") and "_" not in Path(r.image).stem)
    ds = dcmread(source / row.image, stop_before_pixels=True)
    operator = str(ds.OperatorsName)  # in no table and written without a title: only the header knows it
    family = str(ds.PatientName).split("^")[0]
    note = {
        "case_id": row.case_id,
        "text": f"Scan run by {operator}. Later {family.lower()} asked for water.",
    }
    with (source / "notes.jsonl").open("a") as fh:
        fh.write(json.dumps(note) + "\n")
    out = tmp_path / "out"
    deidentify_cohort(source, out, KEY_A)
    last = json.loads((out / "notes.jsonl").read_text().splitlines()[-1])
    assert last["text"] == "Scan run by [NAME]. Later [NAME] asked for water."


def _extra_fields_cohort(root: Path) -> Path:
    """Two cases whose tables and notes carry what the cohort format does not know, next to what it does."""
    root.mkdir()
    spec = {
        "name": "extras",
        "version": 1,
        "task": {"label": "pneumonia", "positive": "present", "type": "binary"},
        "subgroups": ["sex", "ethnicity"],
    }
    import yaml

    (root / "cohort.yaml").write_text(yaml.safe_dump(spec))
    pd.DataFrame(
        {
            "case_id": ["c1", "c2"],
            "patient_id": ["p1", "p2"],
            "label": ["1", "0"],
            "sex": ["F", "M"],
            "ethnicity": ["group a", "group b"],
            "index_time": ["2024-03-04T10:00:00Z", "2024-05-06T08:30:00Z"],
            "encounter_id": ["ENC-000981", "ENC-000982"],
            "bmi": ["31.2", "24.0"],
            "performer_note": ["by Nurse Ratched", "ok"],
        }
    ).to_csv(root / "cases.csv", index=False)
    pd.DataFrame(
        {
            "case_id": ["c1", "c2"],
            "code": ["8867-4", "8867-4"],
            "value": ["88", "72"],
            "unit": ["/min", "/min"],
            "time": ["2024-03-04T09:00:00Z", "2024-05-06T08:00:00Z"],
            "encounter_id": ["ENC-000981", "ENC-000982"],
            "performer": ["Mary Brown", "Kai Nakamura"],
        }
    ).to_csv(root / "observations.csv", index=False)
    notes = [
        {"case_id": "c1", "text": "Wife: Mary Brown at the bedside.", "encounter_id": "ENC-000981",
         "patient_name": "Rivera Canary", "author": "Imre Szabo"},
        {"case_id": "c2", "text": "No distress.", "time": "2024-05-06T09:00:00Z", "note_type": "nursing"},
    ]  # fmt: skip
    (root / "notes.jsonl").write_text("".join(json.dumps(n) + "\n" for n in notes))
    return root


def test_only_fields_the_cohort_format_knows_leave(tmp_path: Path) -> None:
    source = _extra_fields_cohort(tmp_path / "in")
    out = tmp_path / "out"
    report = deidentify_cohort(source, out, KEY_A, DeidOptions(keep_columns=("bmi",))).to_dict()
    cases = pd.read_csv(out / "cases.csv", dtype=str)
    assert list(cases.columns) == [
        "case_id", "patient_id", "label", "sex", "ethnicity", "index_time", "encounter_id", "bmi"
    ]  # fmt: skip
    assert report["cases"]["columns_not_in_the_format"] == ["performer_note"]
    before = pd.read_csv(source / "cases.csv", dtype=str)
    shift = pd.Timestamp(cases["index_time"][0]) - pd.Timestamp(before["index_time"][0])
    assert -365 <= shift.days <= -1 and shift.components.hours == 0
    assert cases["encounter_id"].str.fullmatch(r"E-[0-9a-f]{10}").all()
    observations = pd.read_csv(out / "observations.csv", dtype=str)
    assert "performer" not in observations.columns and report["observations"]["columns_dropped"] == [
        "performer"
    ]
    # one encounter keeps one pseudonym across the tables and the notes
    assert observations["encounter_id"].tolist() == cases["encounter_id"].tolist()
    notes = [json.loads(line) for line in (out / "notes.jsonl").read_text().splitlines()]
    assert set(notes[0]) == {"case_id", "text", "encounter_id"}
    assert notes[0]["encounter_id"] == cases["encounter_id"][0]
    assert report["notes"]["fields_dropped"] == {"author": 1, "patient_name": 1}
    written = "".join(p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())
    for identifying in ("Mary Brown", "Kai Nakamura", "Rivera", "Szabo", "Ratched", "ENC-00098"):
        assert identifying not in written
    assert "Wife: [NAME] at the bedside." in notes[0]["text"]


def test_a_deeply_nested_notes_line_does_not_stop_deid(tmp_path: Path) -> None:
    source = _extra_fields_cohort(tmp_path / "in")
    with (source / "notes.jsonl").open("a") as handle:
        handle.write("[" * 100_000 + "\n")
    (source / "ground_truth").mkdir()
    (source / "ground_truth" / "truth.jsonl").write_text('{"case_id": "c1"}\n' + "{" * 100_000 + "\n")
    (source / "ground_truth" / "defects.json").write_text("[" * 100_000)
    report = deidentify_cohort(source, tmp_path / "out", KEY_A).to_dict()
    assert report["notes"]["malformed"] == 1
    # the record is copied; the line beyond the JSON limits is skipped unparsed, and named
    assert report["ground_truth"]["truth_records"] == 1 and report["ground_truth"]["truth_lines_skipped"] == 1
    assert any("line 2: beyond the JSON limits" in w for w in report["ground_truth_warnings"])
    assert {
        "path": "ground_truth/defects.json",
        "reason": "not JSON within the limits, or not the defects schema: not copied",
    } in report["not_copied"]


def test_a_numeric_case_id_in_the_notes_is_pseudonymised_too(tmp_path: Path) -> None:
    """pandas writes a numeric id column to JSON as numbers; such an id (an MRN, say) must not leave as is."""
    source = _extra_fields_cohort(tmp_path / "in")
    cases = pd.read_csv(source / "cases.csv", dtype=str)
    cases["case_id"] = ["4711093", "4711094"]
    cases.to_csv(source / "cases.csv", index=False)
    observations = pd.read_csv(source / "observations.csv", dtype=str)
    observations["case_id"] = ["4711093", "4711094"]
    observations.to_csv(source / "observations.csv", index=False)
    (source / "notes.jsonl").write_text(
        "\ufeff"
        + json.dumps({"case_id": 4711093, "text": "Productive cough."})
        + '\n{"case_id": 4711094, "text": "a line that is not JSON",}\n'
    )
    out = tmp_path / "out"
    deidentify_cohort(source, out, KEY_A)
    written = "".join(p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())
    assert "4711093" not in written and "4711094" not in written
    first, second = (out / "notes.jsonl").read_text().splitlines()
    pseudonyms = pd.read_csv(out / "cases.csv", dtype=str)["case_id"]
    assert json.loads(first)["case_id"] == pseudonyms[0]
    assert f'"case_id": "{pseudonyms[1]}"' in second  # the malformed line keeps its form, not the id
