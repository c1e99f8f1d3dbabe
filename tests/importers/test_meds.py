"""``mmdx import meds``: the round trip from a synthetic cohort, splits, demographics and bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmdx.data.validation import validate_cohort
from mmdx.errors import MmdxError
from mmdx.importers.meds import import_meds
from mmdx.importers.output import ImportOptions

#: the synthetic records of a case lie within 71 hours before its exported index time
WINDOW = {"vital": "P3D", "lab": "P3D", "note": "P3D"}


@pytest.fixture(scope="module")
def imported(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("meds") / "cohort"
    export = exported / "export"
    import_meds(export / "meds", out, export / "meds_labels.parquet", ImportOptions(lookback=WINDOW))
    return out


def _case_map(exported: Path, imported: Path) -> tuple[dict[str, str], list[str]]:
    """Imported case id -> original case id (matched by patient and index time), and the original cases
    whose patient has no other case within three days (so the look-back window separates its admissions)."""
    listed = pd.read_csv(exported / "export" / "cases.csv", dtype=str, keep_default_na=False)
    cases = pd.read_csv(imported / "cases.csv", dtype=str, keep_default_na=False)
    by_key = {
        (p, t): c
        for c, p, t in zip(listed["case_id"], listed["patient_id"], listed["index_time"], strict=True)
    }
    mapping = {
        c: by_key[(p, t)]
        for c, p, t in zip(cases["case_id"], cases["patient_id"], cases["index_time"], strict=True)
    }
    times = pd.to_datetime(listed["index_time"], utc=True)
    alone = []
    for i, row in listed.iterrows():
        others = times[(listed["patient_id"] == row["patient_id"]) & (listed.index != i)]
        if ((others - times[i]).abs() > pd.Timedelta(days=3)).all():
            alone.append(row["case_id"])
    return mapping, alone


def test_round_trip_gives_the_same_cases_values_notes_and_labels(
    exported: Path, imported: Path, original, same_cohort
) -> None:
    cohort = validate_cohort(imported, check_images=False)
    mapping, alone = _case_map(exported, imported)
    with_records = set(original.observations["case_id"]) | set(original.notes)
    compared = sorted(set(alone) & with_records)
    assert len(compared) >= 40
    same_cohort(original, cohort, case_map=mapping, cases=compared)
    report = json.loads((imported / "import_report.json").read_text())
    assert report["issues_by_code"] == {}
    # demographics come from the static events and the birth event
    cases = pd.read_csv(imported / "cases.csv", dtype=str, keep_default_na=False).set_index("case_id")
    want = original.cases.set_index("case_id")
    for case_id, source in mapping.items():
        assert cases.loc[case_id, "sex"] == want.loc[source, "sex"]
        assert cases.loc[case_id, "site"] == want.loc[source, "site"]
        # MEDS knows a birth date: a readmission months later may be a year older than the synthetic cohort's
        # age, which stays fixed per patient
        assert 0 <= want.loc[source, "age"] - float(cases.loc[case_id, "age"]) <= 1


def _copy(exported: Path, tmp_path: Path) -> Path:
    root = tmp_path / "meds"
    shutil.copytree(exported / "export" / "meds", root)
    return root


def test_a_data_file_with_the_wrong_schema_is_reported_and_the_others_imported(
    exported: Path, tmp_path: Path
) -> None:
    root = _copy(exported, tmp_path)
    pq.write_table(
        pa.table({"patient": ["1"], "when": ["2024-01-01"], "code": ["LOINC/8867-4"]}),
        root / "data" / "broken.parquet",
    )
    result = import_meds(root, tmp_path / "out", exported / "export" / "meds_labels.parquet")
    assert result.report["issues_by_code"] == {"SOURCE_SCHEMA_INVALID": 1}
    message = result.report["issues"][0]["message"]
    assert "data/broken.parquet" in message and "subject_id" in message
    assert result.report["observations"] > 0


def test_splits_map_to_ours_and_an_unknown_split_is_reported(exported: Path, tmp_path: Path) -> None:
    root = _copy(exported, tmp_path)
    splits = pq.read_table(root / "metadata" / "subject_splits.parquet").to_pandas()
    assert set(splits["split"]) == {"train", "tuning", "held_out"}
    odd = splits["subject_id"].iloc[0]
    splits.loc[0, "split"] = "holdout_2"
    pq.write_table(
        pa.table(
            {"subject_id": splits["subject_id"].astype("int64"), "split": splits["split"].astype(str)},
            schema=pa.schema([("subject_id", pa.int64()), ("split", pa.string())]),
        ),
        root / "metadata" / "subject_splits.parquet",
    )
    result = import_meds(root, tmp_path / "out", exported / "export" / "meds_labels.parquet")
    assert result.report["issues_by_code"] == {"SPLIT_UNKNOWN": 1}
    cases = pd.read_csv(tmp_path / "out" / "cases.csv", dtype=str, keep_default_na=False)
    assert set(cases["split"]) == {"train", "val", "test", ""}
    assert set(cases.loc[cases["split"] == "", "patient_id"]) == {str(odd)}
    want = {"train": "train", "tuning": "val", "held_out": "test"}
    by_subject = dict(zip(splits["subject_id"].astype(str), splits["split"].map(want), strict=True))
    assigned = cases[cases["split"] != ""]
    assert (assigned["split"] == assigned["patient_id"].map(by_subject)).all()


def test_values_without_a_unit_are_unit_not_ucum(exported: Path, tmp_path: Path) -> None:
    root = _copy(exported, tmp_path)
    data = pq.read_table(root / "data" / "0.parquet")
    pq.write_table(data.drop(["unit"]), root / "data" / "0.parquet")
    result = import_meds(root, tmp_path / "out", exported / "export" / "meds_labels.parquet")
    assert set(result.report["issues_by_code"]) == {"UNIT_NOT_UCUM"}
    assert result.report["observations"] == 0 and result.report["notes"] > 0


def test_a_label_file_with_the_wrong_schema_stops_with_a_clear_message(
    exported: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"subject_id": ["a"], "prediction_time": ["2024-01-01"]}), labels)
    with pytest.raises(MmdxError, match="not a MEDS label file"):
        import_meds(exported / "export" / "meds", tmp_path / "out", labels, ImportOptions())
