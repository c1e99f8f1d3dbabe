"""``mmdx import omop`` on a real PostgreSQL server loaded with the exported OMOP tables (``psql -f load.sql``)."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from mmdx.data.validation import validate_cohort
from mmdx.errors import MmdxError
from mmdx.importers.omop import import_omop
from mmdx.importers.output import ImportOptions
from tests.support.postgres import create_schema, drop_schema, find_postgres_bin

pytestmark = pytest.mark.postgres


def _psql() -> str:
    found = shutil.which("psql")
    if found:
        return found
    bin_dir = find_postgres_bin()
    if bin_dir and (bin_dir / "psql").is_file():
        return str(bin_dir / "psql")
    message = "psql not found: apt-get install postgresql-client (or postgresql)"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def load_export(url: str, folder: Path) -> None:
    """Load the exported tables the way a user would: psql running load.sql from its folder."""
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    done = subprocess.run(
        [_psql(), libpq, "-q", "-v", "ON_ERROR_STOP=1", "-f", "load.sql"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def omop_url(postgres_database_url: str, exported: Path) -> Iterator[str]:
    """A fresh schema holding the exported OMOP tables."""
    name = f"omop_{os.getpid()}_{abs(hash(os.urandom(4))) % 10**8}"
    url = create_schema(postgres_database_url, name)
    load_export(url, exported / "export" / "omop")
    try:
        yield url
    finally:
        drop_schema(postgres_database_url, name)


def test_round_trip_gives_the_same_cases_values_notes_labels_and_images(
    omop_url: str, exported: Path, original, same_cohort, tmp_path: Path
) -> None:
    out = tmp_path / "cohort"
    import_omop(omop_url, out, cases=exported / "export" / "cases.csv")
    cohort = validate_cohort(out)
    same_cohort(original, cohort)
    report = json.loads((out / "import_report.json").read_text())
    assert report["issues_by_code"] == {}
    assert "password" not in json.dumps(report) and omop_url.split("@")[0].split(":")[-1] not in json.dumps(
        report
    )
    # image_occurrence's local paths exist here: the images are copied, byte for byte
    cases = pd.read_csv(out / "cases.csv", dtype=str, keep_default_na=False).set_index("case_id")
    source = pd.read_csv(exported / "cases.csv", dtype=str, keep_default_na=False).set_index("case_id")
    copied = cases[cases["image"] != ""]
    assert len(copied) >= 0.8 * (source["image"] != "").sum()
    for case_id, rel in copied["image"].items():
        ours, theirs = out / rel, exported / source.loc[case_id, "image"]
        if theirs.is_dir():
            assert not filecmp.dircmp(ours, theirs).diff_files and sorted(
                p.name for p in ours.iterdir()
            ) == sorted(p.name for p in theirs.iterdir())
        else:
            assert filecmp.cmp(ours, theirs, shallow=False)
    assert cohort.report.summary["modality_presence"]["image"] == len(copied)


def test_unknown_concepts_units_without_ucum_and_later_rows_are_reported(
    omop_url: str, exported: Path, tmp_path: Path
) -> None:
    cases = pd.read_csv(exported / "export" / "cases.csv", dtype=str, keep_default_na=False)
    first = cases.iloc[0]
    engine = create_engine(omop_url)
    with engine.begin() as connection:
        heart_rate = connection.execute(
            text("SELECT concept_id FROM concept WHERE vocabulary_id = 'LOINC' AND concept_code = '8867-4'")
        ).scalar_one()
        rows = [
            (9_000_001, 0, "LOCAL-HR", 0, "2000-01-01 00:00:00"),  # concept 0
            (9_000_002, 123456789, "LOCAL-XYZ", 0, "2000-01-01 00:00:00"),  # no such concept
            (9_000_003, heart_rate, "8867-4", 0, "2000-01-01 00:00:00"),  # unit concept 0
            (9_000_004, heart_rate, "8867-4", -1, "2100-01-01 00:00:00"),  # after the index time
        ]
        unit = connection.execute(
            text("SELECT concept_id FROM concept WHERE vocabulary_id = 'UCUM' AND concept_code = '/min'")
        ).scalar_one()
        for mid, concept, source, unit_id, when in rows:
            connection.execute(
                text(
                    "INSERT INTO measurement (measurement_id, person_id, measurement_concept_id, measurement_date, "
                    "measurement_datetime, measurement_type_concept_id, value_as_number, unit_concept_id, "
                    "visit_occurrence_id, measurement_source_value, unit_source_value) VALUES "
                    "(:mid, :person, :concept, CAST(:when AS timestamp), CAST(:when AS timestamp), 32817, 77, :unit, "
                    ":visit, :source, 'bpm')"
                ),
                {
                    "mid": mid,
                    "person": int(first["patient_id"]),
                    "concept": concept,
                    "when": when,
                    "unit": unit if unit_id == -1 else unit_id,
                    "visit": int(first["encounter_id"]),
                    "source": source,
                },
            )
    engine.dispose()
    result = import_omop(omop_url, tmp_path / "out", cases=exported / "export" / "cases.csv")
    codes = result.report["issues_by_code"]
    assert codes == {"CONCEPT_UNKNOWN": 2, "UNIT_NOT_UCUM": 1}
    messages = " ".join(i["message"] for i in result.report["issues"])
    assert "LOCAL-HR" in messages and "LOCAL-XYZ" in messages and "'bpm'" in messages
    assert result.report["counts"]["AFTER_INDEX_TIME"] == 1
    obs = pd.read_parquet(tmp_path / "out" / "observations.parquet")
    assert not obs["source_id"].isin([f"measurement/{m}" for m, *_ in rows]).any()


def test_cases_from_a_query_over_the_users_tables(omop_url: str, exported: Path, tmp_path: Path) -> None:
    cases = pd.read_csv(exported / "export" / "cases.csv", dtype=str, keep_default_na=False).head(20)
    engine = create_engine(omop_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE my_labels (visit_occurrence_id integer, outcome integer)"))
        connection.execute(
            text("INSERT INTO my_labels VALUES (:v, :y)"),
            [{"v": int(v), "y": int(y)} for v, y in zip(cases["encounter_id"], cases["label"], strict=True)],
        )
    engine.dispose()
    query = (
        "SELECT 'case' || v.visit_occurrence_id AS case_id, v.person_id, v.visit_occurrence_id AS encounter_id, "
        "v.visit_end_datetime AS index_time, l.outcome AS label "
        "FROM visit_occurrence v JOIN my_labels l USING (visit_occurrence_id)"
    )
    result = import_omop(omop_url, tmp_path / "query", cases_query=query)
    by_csv = import_omop(omop_url, tmp_path / "csv", cases=_write(cases, tmp_path / "cases.csv"))
    assert result.report["cases"] == by_csv.report["cases"] == 20
    ours = pd.read_parquet(tmp_path / "query" / "observations.parquet")
    theirs = pd.read_parquet(tmp_path / "csv" / "observations.parquet")
    visit_of = dict(zip(cases["case_id"], cases["encounter_id"], strict=True))
    theirs["case_id"] = "case" + theirs["case_id"].map(visit_of)
    key = ["case_id", "source_id"]
    assert ours.sort_values(key).reset_index(drop=True).equals(theirs.sort_values(key).reset_index(drop=True))
    labels = pd.read_csv(tmp_path / "query" / "cases.csv", dtype=str).set_index("case_id")["label"]
    assert labels.to_dict() == {
        f"case{v}": y for v, y in zip(cases["encounter_id"], cases["label"], strict=True)
    }


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_an_interrupted_import_resumes_from_its_last_batch(
    omop_url: str, exported: Path, tmp_path: Path
) -> None:
    cases = exported / "export" / "cases.csv"
    options = ImportOptions(batch_size=300)
    calls = []

    def interrupt(done: int, total: int | None, unit: str) -> None:
        calls.append(unit)
        if len(calls) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_omop(omop_url, tmp_path / "out", cases=cases, options=options, progress=interrupt)
    result = import_omop(omop_url, tmp_path / "out", cases=cases, options=options)
    assert result.resumed_units >= 4
    full = import_omop(omop_url, tmp_path / "full", cases=cases, options=options)
    key = ["case_id", "source_id"]
    ours = pd.read_parquet(tmp_path / "out" / "observations.parquet").sort_values(key).reset_index(drop=True)
    theirs = (
        pd.read_parquet(tmp_path / "full" / "observations.parquet").sort_values(key).reset_index(drop=True)
    )
    assert ours.equals(theirs) and result.report["observations"] == full.report["observations"]


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    url = "postgresql://mmdx:secret-password@127.0.0.1:1/nothing"
    (tmp_path / "cases.csv").write_text("case_id,patient_id,label,index_time\nc1,1,1,2024-01-01T00:00:00Z\n")
    with pytest.raises(
        MmdxError, match="cannot connect to postgresql\\+psycopg://mmdx:\\*\\*\\*@127.0.0.1:1"
    ):
        import_omop(url, tmp_path / "out", cases=tmp_path / "cases.csv")
