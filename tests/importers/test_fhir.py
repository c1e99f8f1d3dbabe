"""``mmdx import fhir``: the round trip from a synthetic cohort, Bundles, bad resources, resuming."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mmdx.data.validation import validate_cohort
from mmdx.errors import MmdxError
from mmdx.importers.fhir import import_fhir
from mmdx.importers.output import ImportOptions


@pytest.fixture(scope="module")
def imported(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fhir") / "cohort"
    import_fhir(exported / "export" / "fhir", out, exported / "export" / "cases.csv")
    return out


def test_round_trip_gives_the_same_cases_values_notes_and_labels(
    imported: Path, original, same_cohort
) -> None:
    cohort = validate_cohort(imported, check_images=False)
    same_cohort(original, cohort)
    report = json.loads((imported / "import_report.json").read_text())
    assert report["issues_by_code"] == {}
    assert report["counts"]["observations_attached"] == len(original.observations)
    # DICOM series are referenced for mmdx import dicomweb; NIfTI images have no FHIR resource
    cases = pd.read_csv(imported / "cases.csv", dtype=str, keep_default_na=False)
    refs = cases.loc[cases["image"] != "", "image"]
    assert len(refs) and refs.str.match(r"^dicomweb:[0-9.]+/[0-9.]+$").all()
    assert report["dicomweb_endpoints"] == ["http://127.0.0.1:8042/dicom-web"]


def _bundle(resources: list[dict]) -> dict:
    """A transaction-style Bundle whose references are the entries' urn:uuid full URLs."""
    urls = {
        f"{r['resourceType']}/{r['id']}": f"urn:uuid:{i:08d}-0000-4000-8000-000000000000"
        for i, r in enumerate(resources)
    }
    text = json.dumps(resources)
    for ref, url in urls.items():
        text = text.replace(f'"reference":"{ref}"', f'"reference":"{url}"').replace(
            f'"reference": "{ref}"', f'"reference": "{url}"'
        )
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": urls[f"{r['resourceType']}/{r['id']}"], "resource": r} for r in json.loads(text)
        ],
    }


def test_a_bundle_with_urn_references_gives_what_ndjson_gives(
    exported: Path, imported: Path, tmp_path: Path
) -> None:
    fhir = exported / "export" / "fhir"
    resources = [
        json.loads(line) for f in sorted(fhir.glob("*.ndjson")) for line in f.read_text().splitlines()
    ]
    patient = "1"
    mine = [
        r
        for r in resources
        if (r["resourceType"] == "Patient" and r["id"] == patient)
        or (r.get("subject", {}).get("reference") == f"Patient/{patient}")
        or r["resourceType"] == "Encounter"
    ]
    src = tmp_path / "bundle"
    src.mkdir()
    (src / "bundle.json").write_text(json.dumps(_bundle(mine)))
    cases = pd.read_csv(exported / "export" / "cases.csv", dtype=str, keep_default_na=False)
    cases[cases["patient_id"] == patient].to_csv(tmp_path / "cases.csv", index=False)
    import_fhir(src, tmp_path / "out", tmp_path / "cases.csv")
    ours = pd.read_parquet(tmp_path / "out" / "observations.parquet").drop(columns="source_id")
    full = pd.read_parquet(imported / "observations.parquet").drop(columns="source_id")
    full = full[full["case_id"].isin(set(ours["case_id"]))]
    key = ["case_id", "code", "time", "value"]
    assert len(ours) > 0
    assert ours.sort_values(key).reset_index(drop=True).equals(full.sort_values(key).reset_index(drop=True))


def _observation(rid: str, **changes) -> dict:
    resource = {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-01T10:00:00Z",
        "valueQuantity": {"value": 80, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
    }
    resource.update(changes)
    return resource


def _document(rid: str, content_type: str, data: str | None = None, url: str | None = None) -> dict:
    attachment = {"contentType": content_type}
    if data is not None:
        attachment["data"] = base64.b64encode(data.encode()).decode()
    if url is not None:
        attachment["url"] = url
    return {
        "resourceType": "DocumentReference",
        "id": rid,
        "status": "current",
        "subject": {"reference": "Patient/p1"},
        "date": "2024-03-01T09:00:00Z",
        "content": [{"attachment": attachment}],
    }


BAD_INPUT = [
    ("invalid_time", _observation("o-bad", effectiveDateTime="yesterday"), "SOURCE_RECORD_INVALID"),
    ("not_json", "{not json", "SOURCE_RECORD_INVALID"),
    (
        "no_loinc",
        _observation("o-local", code={"coding": [{"system": "urn:local", "code": "HR"}]}),
        "CONCEPT_UNKNOWN",
    ),
    (
        "no_ucum",
        _observation("o-unit", valueQuantity={"value": 80, "unit": "beats per minute"}),
        "UNIT_NOT_UCUM",
    ),
    ("pdf", _document("d-pdf", "application/pdf", data="%PDF-1.4"), "ATTACHMENT_NOT_TEXT"),
    ("external", _document("d-url", "text/plain", url="https://example.org/note.txt"), "ATTACHMENT_NOT_TEXT"),
    ("no_subject", {**_observation("o-nosubject"), "subject": None}, "SOURCE_RECORD_INVALID"),
]


@pytest.mark.parametrize(("name", "bad", "code"), BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_resources_are_typed_issues_and_the_rest_is_imported(
    tmp_path: Path, name: str, bad: object, code: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    good = [
        {"resourceType": "Patient", "id": "p1"},
        _observation("o-good"),
        _document("d-good", "text/plain; charset=utf-8", data="Febrile overnight."),
    ]
    lines = [json.dumps(r) for r in good] + [bad if isinstance(bad, str) else json.dumps(bad)]
    (src / "export.ndjson").write_text("\n".join(lines) + "\n")
    (tmp_path / "cases.csv").write_text("case_id,patient_id,label,index_time\nc1,p1,1,2024-03-02T00:00:00Z\n")
    result = import_fhir(src, tmp_path / "out", tmp_path / "cases.csv")
    assert result.report["issues_by_code"] == {code: 1}
    issue = result.report["issues"][0]
    assert "export.ndjson line 4" in issue["message"]
    cohort = validate_cohort(tmp_path / "out", check_images=False)
    assert cohort.observations["value"].tolist() == [80.0]
    assert cohort.notes == {"c1": "Febrile overnight."}


def test_case_list_rules(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    resources = [
        {"resourceType": "Patient", "id": "p1"},
        _observation("o-enc1", encounter={"reference": "Encounter/e1"}),
        _observation(
            "o-enc2", encounter={"reference": "Encounter/e2"}, effectiveDateTime="2024-03-01T11:00:00Z"
        ),
        _observation("o-later", effectiveDateTime="2024-03-05T10:00:00Z"),
        _observation("o-old", effectiveDateTime="2024-01-01T10:00:00Z"),
    ]
    (src / "Observation.ndjson").write_text("\n".join(json.dumps(r) for r in resources) + "\n")
    (tmp_path / "cases.csv").write_text(
        "case_id,patient_id,encounter_id,label,index_time,age\n"
        "by_encounter,p1,e1,1,,70\n"
        "by_window,p1,,0,2024-03-02T00:00:00Z,71\n"
        "by_encounter_before_index,p1,e2,1,2024-03-01T10:30:00Z,70\n"
        "unlinkable,p1,,1,,70\n"
        "ghost,p9,,1,2024-03-02T00:00:00Z,40\n"
    )
    result = import_fhir(
        src, tmp_path / "out", tmp_path / "cases.csv", ImportOptions(lookback={"vital": "P7D"})
    )
    obs = pd.read_parquet(tmp_path / "out" / "observations.parquet")
    attached = {(c, s) for c, s in zip(obs["case_id"], obs["source_id"], strict=True)}
    assert attached == {
        ("by_encounter", "Observation/o-enc1"),
        ("by_window", "Observation/o-enc1"),
        ("by_window", "Observation/o-enc2"),
    }
    codes = result.report["issues_by_code"]
    assert codes == {"CASE_NOT_LINKABLE": 1, "PATIENT_NOT_FOUND": 1}
    counts = result.report["counts"]
    # o-later is after the index times (and in no listed encounter); o-old before the 7-day vital window
    assert counts["AFTER_INDEX_TIME"] == 1 and counts["BEFORE_LOOKBACK_WINDOW"] == 1
    assert counts["patient_not_in_case_list"] == 0 and "other_encounter" not in counts
    cases = pd.read_csv(tmp_path / "out" / "cases.csv", dtype=str, keep_default_na=False)
    assert cases["case_id"].tolist() == ["by_encounter", "by_window", "by_encounter_before_index", "ghost"]
    assert cases["age"].tolist() == ["70", "71", "70", "40"]
    spec = (tmp_path / "out" / "cohort.yaml").read_text()
    assert "lookback:\n  vital: P7D" in spec


def test_an_interrupted_import_resumes_and_gives_the_same_cohort(
    exported: Path, imported: Path, tmp_path: Path
) -> None:
    src, cases = exported / "export" / "fhir", exported / "export" / "cases.csv"
    options = ImportOptions(batch_size=500)
    calls = []

    def interrupt(done: int, total: int | None, unit: str) -> None:
        calls.append(unit)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_fhir(src, tmp_path / "out", cases, options, progress=interrupt)
    assert not (tmp_path / "out" / "cohort.yaml").exists()
    with pytest.raises(MmdxError, match="unfinished import of other input"):
        import_fhir(src, tmp_path / "out", cases, ImportOptions(batch_size=400))
    result = import_fhir(src, tmp_path / "out", cases, options)
    assert result.resumed_units == 3
    for name in ("observations.parquet",):
        ours = (
            pd.read_parquet(tmp_path / "out" / name)
            .sort_values(["case_id", "source_id", "code"])
            .reset_index(drop=True)
        )
        full = (
            pd.read_parquet(imported / name)
            .sort_values(["case_id", "source_id", "code"])
            .reset_index(drop=True)
        )
        assert ours.equals(full)
    assert sorted((tmp_path / "out" / "notes.jsonl").read_text().splitlines()) == sorted(
        (imported / "notes.jsonl").read_text().splitlines()
    )
    assert not (tmp_path / "out" / ".mmdx_import").exists()
    with pytest.raises(MmdxError, match="not empty"):
        import_fhir(src, tmp_path / "out", cases, options)


def test_a_missing_source_and_a_case_list_without_its_columns_are_named(tmp_path: Path) -> None:
    with pytest.raises(MmdxError, match="FHIR source folder not found"):
        import_fhir(tmp_path / "nowhere", tmp_path / "out", tmp_path / "x.csv")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.ndjson").write_text("{}\n")
    (tmp_path / "cases.csv").write_text("case,patient\n1,2\n")
    with pytest.raises(MmdxError, match="required column\\(s\\) case_id, patient_id missing"):
        import_fhir(tmp_path / "src", tmp_path / "out", tmp_path / "cases.csv")


def test_images_named_by_the_case_list_are_copied_or_kept_as_references(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    src = tmp_path / "src"
    src.mkdir()
    (src / "Observation.ndjson").write_text(json.dumps(_observation("o1")) + "\n")
    (tmp_path / "img").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "img" / "ct.dcm")
    (tmp_path / "cases.csv").write_text(
        "case_id,patient_id,label,index_time,image\n"
        "local,p1,1,2024-03-02T00:00:00Z,img/ct.dcm\n"
        "remote,p1,0,2024-03-02T00:00:00Z,dicomweb:1.2.3/4.5.6\n"
        "lost,p1,0,2024-03-02T00:00:00Z,img/missing.dcm\n"
    )
    result = import_fhir(src, tmp_path / "out", tmp_path / "cases.csv")
    cases = pd.read_csv(tmp_path / "out" / "cases.csv", dtype=str, keep_default_na=False).set_index("case_id")
    assert cases.loc["local", "image"] == "images/local/ct.dcm"
    assert (tmp_path / "out" / "images" / "local" / "ct.dcm").read_bytes() == (
        tmp_path / "img" / "ct.dcm"
    ).read_bytes()
    assert cases.loc["remote", "image"] == "dicomweb:1.2.3/4.5.6"
    assert cases.loc["lost", "image"] == ""
    assert result.report["issues_by_code"] == {"IMAGE_NOT_FOUND": 1}
    assert result.report["dicomweb_images"] == 1
