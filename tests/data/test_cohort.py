"""Reading a cohort directory defensively: label spellings, duplicate headers, folders where files belong,
notes lines that are not UTF-8 or exceed the JSON limits."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mmdx.data.cohort import PathEscapesCohort, parse_label, read_cohort, resolve_in_cohort
from mmdx.data.issues import IssueCode
from mmdx.data.validation import validate_cohort
from mmdx.errors import CohortError

SPEC = {"name": "tiny", "version": 1, "task": {"label": "pneumonia", "positive": "present", "type": "binary"}}


def write_cohort(root: Path, cases: str, notes: bytes | None = None, observations: str | None = None) -> Path:
    """A cohort of notes and observations only (no images): cases.csv as given, verbatim."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cohort.yaml").write_text(yaml.safe_dump(SPEC))
    (root / "cases.csv").write_text(cases)
    if notes is not None:
        (root / "notes.jsonl").write_bytes(notes)
    if observations is not None:
        (root / "observations.csv").write_text(observations)
    return root


def note_lines(*docs: dict) -> bytes:
    return b"".join(json.dumps(d).encode() + b"\n" for d in docs)


@pytest.mark.parametrize(
    ("written", "label"),
    [
        ("1", 1),
        ("0", 0),
        ("1.0", 1),
        ("0.0", 0),
        ("true", 1),
        ("False", 0),
        ("TRUE", 1),
        (" 1.0 ", 1),
        (None, None),
    ],
)
def test_label_spellings(written: str | None, label: int | None) -> None:
    assert parse_label(written) == label


@pytest.mark.parametrize("written", ["2", "0.5", "yes", "-1", "1e0", "positive", "nan"])
def test_other_labels_are_invalid(written: str) -> None:
    with pytest.raises(ValueError, match=repr(written.strip())):
        parse_label(written)


def test_labels_written_by_pandas_with_an_empty_label_validate(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "case_id": [f"c{i}" for i in range(6)],
            "patient_id": [f"p{i}" for i in range(6)],
            "label": [1, 0, None, 1, 0, 1],  # one empty label makes pandas write floats: 1.0, 0.0, ""
            "split": ["train", "train", "test", "val", "test", "train"],
        }
    )
    root = tmp_path / "floats"
    write_cohort(
        root, frame.to_csv(index=False), note_lines(*({"case_id": f"c{i}", "text": "x"} for i in range(6)))
    )
    assert "1.0" in (root / "cases.csv").read_text()
    cohort = validate_cohort(root, check_images=False)
    codes = {str(i.code) for c in cohort.report.cases for i in c.issues}
    assert IssueCode.LABEL_INVALID not in codes
    labels = dict(zip(cohort.cases["case_id"], cohort.cases["label"], strict=True))
    assert labels["c0"] == 1.0 and labels["c1"] == 0.0 and pd.isna(labels["c2"])
    assert cohort.report.summary["splits"]["train"]["positive"] == 2


def test_boolean_labels_and_invalid_ones_side_by_side(tmp_path: Path) -> None:
    cases = "case_id,patient_id,label\na,p1,True\nb,p2,false\nc,p3,2\nd,p4,1.5\n"
    notes = note_lines(*({"case_id": c, "text": "note"} for c in "abcd"))
    cohort = validate_cohort(write_cohort(tmp_path / "bools", cases, notes), check_images=False)
    status = {c.case_id: c.status for c in cohort.report.cases}
    assert status == {"a": "accepted", "b": "accepted", "c": "rejected", "d": "rejected"}
    assert sorted(cohort.cases["label"]) == [0.0, 1.0]


def test_a_duplicated_header_is_refused_naming_the_column(tmp_path: Path) -> None:
    root = write_cohort(tmp_path / "dup", "case_id,patient_id,label,label\na,p1,1,0\n", note_lines())
    with pytest.raises(CohortError, match="'label'.*(twice|2 times)"):
        read_cohort(root)


def test_a_duplicated_observation_header_is_refused(tmp_path: Path) -> None:
    observations = "case_id,code,value,unit,unit\na,8867-4,80,/min,/min\n"
    root = write_cohort(tmp_path / "dupobs", "case_id,patient_id,label\na,p1,1\n", None, observations)
    with pytest.raises(CohortError, match="observations.csv.*'unit'"):
        read_cohort(root)


@pytest.mark.parametrize(("separator", "bom"), [(";", True), ("\t", False), ("|", True), (",", True)])
def test_spreadsheet_exports_are_read_whatever_the_separator(
    tmp_path: Path, separator: str, bom: bool
) -> None:
    """A European spreadsheet writes ';' and decimal commas, often behind a UTF-8 byte-order mark."""
    decimal = "," if separator != "," else "."
    rows = [
        ["case_id", "patient_id", "label", "age"],
        ["a", "p1", "1", "64"],
        ["b", "p2", "0", f"70{decimal}5"],
    ]
    cases = "\r\n".join(separator.join(r) for r in rows) + "\r\n"
    observations = "\n".join(
        separator.join(r)
        for r in [["case_id", "code", "value", "unit"], ["a", "8867-4", f"88{decimal}5", "/min"]]
    )
    notes = note_lines({"case_id": "a", "text": "cough"}, {"case_id": "b", "text": "no cough"})
    root = write_cohort(tmp_path / "sheet", ("\ufeff" if bom else "") + cases, notes, observations)
    cohort = read_cohort(root)
    assert list(cohort.cases.columns) == ["case_id", "patient_id", "label", "age"]
    assert list(cohort.cases["age"]) == ["64", f"70{decimal}5"]
    validated = validate_cohort(root, check_images=False)
    assert all(c.status != "rejected" for c in validated.report.cases)
    assert list(validated.cases["age"]) == [64.0, 70.5]
    assert validated.report.summary["modality_presence"]["tabular"] == 1
    assert validated.report.summary["observation_rows_used"] == 1


def test_a_table_that_is_not_utf8_names_the_line_and_the_fix(tmp_path: Path) -> None:
    root = write_cohort(tmp_path / "latin1", "case_id,patient_id,label\n")
    (root / "cases.csv").write_bytes("case_id,patient_id,label\na,p1,1\nb,Müller,0\n".encode("cp1252"))
    with pytest.raises(CohortError, match=r"cases.csv: line 3 is not UTF-8.*CSV UTF-8"):
        read_cohort(root)


def test_a_folder_named_like_a_cohort_file(tmp_path: Path) -> None:
    root = write_cohort(tmp_path / "dirs", "case_id,patient_id,label\na,p1,1\n", None)
    (root / "notes.jsonl").mkdir()
    (root / "observations.csv").mkdir()
    cohort = validate_cohort(root, check_images=False)
    problems = {(str(i.code), i.file) for i in cohort.report.files}
    assert (IssueCode.FILE_NOT_REGULAR, "notes.jsonl") in problems
    assert (IssueCode.FILE_NOT_REGULAR, "observations.csv") in problems
    (root / "cases.csv").unlink()
    (root / "cases.csv").mkdir()
    with pytest.raises(CohortError, match="cases.csv.*folder"):
        read_cohort(root)


def test_a_notes_line_that_is_not_utf8_is_reported_not_replaced(tmp_path: Path) -> None:
    good = {"case_id": "a", "text": "Patient comfortable."}
    bad = b'{"case_id": "b", "text": "caf\xe9 \xff"}\n'
    root = write_cohort(
        tmp_path / "utf8",
        "case_id,patient_id,label\na,p1,1\nb,p2,0\n",
        note_lines(good) + bad + note_lines(good),
    )
    cohort = validate_cohort(root, check_images=False)
    issues = [i for i in cohort.report.files if i.code == IssueCode.NOTE_ENCODING_INVALID]
    assert [(i.file, i.row) for i in issues] == [("notes.jsonl", 2)]
    assert "\ufffd" not in "".join(cohort.notes.values())
    assert cohort.notes["a"] == "Patient comfortable.\n\nPatient comfortable."
    assert "b" not in cohort.notes


def test_a_notes_line_beyond_the_size_limit_is_skipped_without_reading_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmdx.data import json_limits

    monkeypatch.setattr(json_limits, "MAX_LINE_BYTES", 1000)
    huge = json.dumps({"case_id": "a", "text": "x" * 5000}).encode() + b"\n"
    root = write_cohort(
        tmp_path / "big",
        "case_id,patient_id,label\na,p1,1\n",
        huge + note_lines({"case_id": "a", "text": "ok"}),
    )
    cohort = validate_cohort(root, check_images=False)
    issues = [i for i in cohort.report.files if i.code == IssueCode.NOTE_LIMIT_EXCEEDED]
    assert [i.row for i in issues] == [1] and "bytes" in issues[0].message
    assert cohort.notes["a"] == "ok"


@pytest.mark.parametrize("name", ["notes.csv", "notes.tsv", "notes.parquet", "notes.txt"])
def test_notes_in_another_layout_are_named_not_passed_over(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without notes.jsonl a notes table would leave the cohort without notes and without a word."""
    root = write_cohort(
        tmp_path / "table", "case_id,patient_id,label\na,p1,1\n", None, "case_id,code,value,unit\n"
    )
    notes = pd.DataFrame({"case_id": ["a"], "text": ["productive cough"]})
    if name.endswith(".parquet"):
        notes.to_parquet(root / name)
    else:
        notes.to_csv(root / name, index=False, sep="\t" if name.endswith(".tsv") else ",")
    cohort = validate_cohort(root, check_images=False)
    (issue,) = [i for i in cohort.report.files if i.code == IssueCode.FILE_NOT_READ]
    assert issue.file == name and "notes.jsonl" in issue.message
    if not name.endswith(".txt"):  # the hint converts the file into notes mmdx reads
        monkeypatch.chdir(root)
        eval(issue.message.split("with pandas: ")[1], {"pd": pd})
        again = validate_cohort(root, check_images=False)
        assert not [i for i in again.report.files if i.code == IssueCode.FILE_NOT_READ]
        assert again.report.summary["modality_presence"]["text"] == 1


def test_a_path_written_on_windows_is_read_and_still_kept_inside(tmp_path: Path) -> None:
    root = tmp_path / "win"
    (root / "images").mkdir(parents=True)
    (root / "images" / "c1.nii.gz").write_bytes(b"x")
    assert resolve_in_cohort(root, "images\\c1.nii.gz") == (root / "images" / "c1.nii.gz").resolve()
    literal = root / "odd\\name.nii"  # a POSIX file name may hold a backslash: it wins where it exists
    literal.write_bytes(b"x")
    assert resolve_in_cohort(root, "odd\\name.nii") == literal.resolve()
    with pytest.raises(PathEscapesCohort, match="outside"):
        resolve_in_cohort(root, "..\\..\\etc\\passwd")
    with pytest.raises(PathEscapesCohort, match="absolute"):
        resolve_in_cohort(root, "\\\\server\\share\\c1.nii.gz")


def test_notes_written_by_pandas_or_a_windows_editor_are_read(tmp_path: Path) -> None:
    """A byte-order mark before the first line, and case ids that pandas wrote as JSON numbers."""
    lines = [json.dumps({"case_id": 17, "text": "cough"}), json.dumps({"case_id": "18", "text": "fever"})]
    notes = ("\ufeff" + "\n".join(lines) + "\n").encode("utf-8")
    root = write_cohort(tmp_path / "pandas", "case_id,patient_id,label\n17,p1,1\n18,p2,0\n", notes)
    cohort = validate_cohort(root, check_images=False)
    assert not [i for c in cohort.report.cases for i in c.issues] and not cohort.report.files
    assert cohort.report.summary["modality_presence"]["text"] == 2
    (root / "notes.jsonl").write_text(json.dumps({"case_id": True, "text": "x"}) + "\n")
    (issue,) = validate_cohort(root, check_images=False).report.files
    assert issue.code == IssueCode.NOTE_MALFORMED and "case_id" in issue.message
