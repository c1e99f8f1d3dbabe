"""``mmdx synth --export``: the exported FHIR, MEDS and OMOP files follow their standards."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.data.synth.export import OMOP_TABLES, export_cohort, omop_ddl


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    synthesize_cohort(out, SynthOptions(n_cases=24, seed=3, dims=2, size=16, workers=1))
    export_cohort(out, ["fhir", "meds", "omop"])
    return out / "export"


def test_every_fhir_resource_passes_the_r4_model(exported: Path) -> None:
    from fhir.resources.R4B import get_fhir_model_class

    kinds = set()
    for path in sorted((exported / "fhir").glob("*.ndjson")):
        for line in path.read_text().splitlines():
            resource = json.loads(line)
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
            kinds.add(resource["resourceType"])
    assert kinds >= {"Patient", "Encounter", "Observation", "DocumentReference", "DiagnosticReport"}


def test_meds_files_pass_the_meds_schemas(exported: Path) -> None:
    import meds

    root = exported / "meds"
    data = pq.read_table(root / "data" / "0.parquet")
    meds.DataSchema.validate(data)
    meds.CodeMetadataSchema.validate(pq.read_table(root / meds.code_metadata_filepath))
    meds.SubjectSplitSchema.validate(pq.read_table(root / meds.subject_splits_filepath))
    labels = pq.read_table(exported / "meds_labels.parquet")
    meds.LabelSchema.validate(labels)
    frame = data.to_pandas()
    # each subject's events are contiguous and sorted by time, static events first
    for _, events in frame.groupby("subject_id", sort=False):
        times = events["time"]
        assert times.isna().cummin().iloc[: times.isna().sum()].all()
        assert times.dropna().is_monotonic_increasing
    assert frame["subject_id"].is_monotonic_increasing
    dataset = json.loads((root / meds.dataset_metadata_filepath).read_text())
    assert dataset["code_modifier_columns"] == ["unit"]


def test_omop_csv_headers_match_the_ddl(exported: Path) -> None:
    ddl = omop_ddl()
    for table, columns in OMOP_TABLES.items():
        assert f"CREATE TABLE IF NOT EXISTS {table} (" in ddl
        with (exported / "omop" / f"{table}.csv").open() as fh:
            assert next(csv.reader(fh)) == [name for name, _ in columns]
    load = (exported / "omop" / "load.sql").read_text()
    assert load.count("\\copy") == len(OMOP_TABLES)


def test_the_case_list_names_ids_every_source_shares(exported: Path) -> None:
    rows = list(csv.DictReader((exported / "cases.csv").open()))
    patients = {
        json.loads(line)["id"] for line in (exported / "fhir" / "Patient.ndjson").read_text().splitlines()
    }
    persons = {row["person_id"] for row in csv.DictReader((exported / "omop" / "person.csv").open())}
    subjects = {str(s) for s in pq.read_table(exported / "meds_labels.parquet")["subject_id"].to_pylist()}
    assert {r["patient_id"] for r in rows} == patients == persons
    assert subjects <= patients
    assert all(r["index_time"].endswith("Z") for r in rows if r["index_time"])
