"""Reading a cohort directory: ``cohort.yaml``, the cases table, observations and notes.

This module only reads and parses; judging the content (reason codes, statuses) is ``mmdx.data.validation``.
Every path inside a cohort is relative to its root, and :func:`resolve_in_cohort` refuses one that escapes it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from mmdx.data import json_limits
from mmdx.data.issues import Issue, IssueCode, Severity
from mmdx.data.schemas import schema_errors
from mmdx.data.tabular import read_value
from mmdx.errors import CohortError

CASES_FILES = ("cases.csv", "cases.parquet")
OBSERVATIONS_FILES = ("observations.csv", "observations.parquet")
NOTES_FILE = "notes.jsonl"
COHORT_FILE = "cohort.yaml"
GROUND_TRUTH_DIR = "ground_truth"

CASE_COLUMNS = ("case_id", "patient_id", "label")
OBSERVATION_COLUMNS = ("case_id", "code", "value", "unit")

#: How a label may be written (compared after stripping and lower-casing): pandas writes 1.0/0.0 as soon as
#: one label of the column is empty, and True/False for a boolean column.
LABEL_SPELLINGS: dict[str, int] = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}


def parse_label(value: str | None) -> int | None:
    """A label cell as 0, 1 or None (empty: unlabelled); raises :class:`ValueError` for anything else."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        return LABEL_SPELLINGS[text.lower()]
    except KeyError:
        raise ValueError(f"label {text!r} is not 0, 1 (or 0.0, 1.0, true, false) or empty") from None


class PathEscapesCohort(ValueError):
    """A path inside the cohort resolves outside the cohort root."""


def resolve_in_cohort(root: Path, relative: str | Path) -> Path:
    """Absolute path of ``relative`` inside ``root``; raises :class:`PathEscapesCohort` if it leaves ``root``.

    Absolute paths, ``..`` components and symlinks that point outside the cohort are all refused. A path
    written on Windows (``images\\c1.nii.gz``) is read with ``/`` unless a file of that literal name exists.
    """
    root = root.resolve()
    text = str(relative)
    if "\\" in text and not (root / text).exists():
        text = text.replace("\\", "/")
    rel = Path(text)
    if rel.is_absolute():
        raise PathEscapesCohort(f"'{relative}' is an absolute path; cohort paths must be relative to {root}")
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise PathEscapesCohort(f"'{relative}' resolves to {target}, outside the cohort directory {root}")
    return target


@dataclass
class CohortFiles:
    """The raw content of a cohort directory, before validation.

    ``cases`` and ``observations`` hold every column as text (``None`` for empty cells) so that validation
    sees exactly what was written; ``note_lines`` keeps each raw notes.jsonl line with its 1-based number.
    """

    root: Path
    spec: dict
    cases: pd.DataFrame
    cases_file: str
    observations: pd.DataFrame | None = None
    observations_file: str | None = None
    note_lines: list[tuple[int, str]] = field(default_factory=list)
    #: files and notes lines that could not be read at all (a folder named notes.jsonl, a line that is not
    #: UTF-8 or exceeds the JSON limits); validation lists them with the other file issues
    read_issues: list[Issue] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.spec.get("name", self.root.name))


def _find_one(root: Path, names: tuple[str, ...], required: bool, issues: list[Issue]) -> Path | None:
    irregular = [root / n for n in names if (root / n).exists() and not (root / n).is_file()]
    for path in irregular:
        if required:
            raise CohortError(
                f"{path} is a {_kind(path)}, not a file; the cases table must be a regular CSV or Parquet file"
            )
        issues.append(_not_regular(path))
    found = [root / n for n in names if (root / n).is_file()]
    if len(found) > 1:
        raise CohortError(f"{root}: both {found[0].name} and {found[1].name} exist; keep exactly one")
    if not found and required:
        raise CohortError(
            f"{root}: no cases table; expected one of {', '.join(names)} (a cohort directory holds cohort.yaml and one cases table)"
        )
    return found[0] if found else None


def _kind(path: Path) -> str:
    return "folder" if path.is_dir() else "special file (not a regular file)"


def _not_regular(path: Path) -> Issue:
    return Issue(
        IssueCode.FILE_NOT_REGULAR,
        f"{path.name} is a {_kind(path)}, not a file, so it was not read; replace it with the file",
        path.name,
    )


def _cell(value: object) -> str | None:
    """A table cell as stripped text; empty cells and missing values become None."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as Python ``str`` or ``None`` (object dtype, so None is not turned back into NaN)."""
    return pd.DataFrame(
        {col: pd.Series([_cell(v) for v in frame[col]], dtype=object) for col in frame.columns},
        index=frame.index,
    )


#: field separators a spreadsheet or hospital export may use; the header line decides which one a file uses
CSV_DELIMITERS = (",", ";", "\t", "|")


def _csv_delimiter(header_line: str) -> str:
    """The separator of a CSV file from its header line: a comma wherever the header holds one, else the
    most frequent of ``;``, tab and ``|`` (a European spreadsheet export writes ``;``), else a comma (a
    one-column table)."""
    if "," in header_line:
        return ","
    counts = {d: header_line.count(d) for d in CSV_DELIMITERS[1:]}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _decode_error(path: Path, exc: UnicodeDecodeError) -> str:
    """Where a file stops being UTF-8, in a message a spreadsheet user can act on."""
    data = exc.object if isinstance(exc.object, bytes) else b""
    line = data[: exc.start].count(b"\n") + 1
    return (
        f"{path}: line {line} is not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8 "
        "(in a spreadsheet: 'CSV UTF-8') and try again"
    )


def read_csv_text(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """A CSV table as written: every cell a string (nothing turned into NaN), and the header as written
    (pandas renames a repeated column to ``name.1`` without a word).

    Reads UTF-8 with or without a byte-order mark, fields separated by commas, semicolons, tabs or bars
    (the header line decides). Raises ``UnicodeDecodeError``, ``OSError``, ``csv.Error`` or pandas'
    ``ParserError``; :func:`read_table_file` turns them into one message naming the file.
    """
    with open(path, encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
    delimiter = _csv_delimiter(first)
    header = [c.strip() for c in next(csv.reader([first], delimiter=delimiter), [])]
    frame = pd.read_csv(
        path, dtype=str, keep_default_na=False, na_values=[], encoding="utf-8-sig", sep=delimiter
    )
    return frame, header


def read_table_file(
    path: Path, what: str = "the table", error: type[Exception] = CohortError
) -> tuple[pd.DataFrame, list[str]]:
    """A CSV (:func:`read_csv_text`) or Parquet table and its header; ``error`` (a message naming the file
    and what to do) when it cannot be read."""
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            return frame, [str(c).strip() for c in frame.columns]
        return read_csv_text(path)
    except UnicodeDecodeError as exc:
        raise error(_decode_error(path, exc)) from None
    except (OSError, ValueError, pd.errors.ParserError, csv.Error) as exc:
        raise error(f"{path}: cannot read {what} ({exc}); check that it is valid CSV or Parquet") from None


def _read_table(path: Path) -> pd.DataFrame:
    frame, header = read_table_file(path)
    _refuse_duplicate_columns(path, header)
    frame.columns = header
    return _as_text(frame)


def _refuse_duplicate_columns(path: Path, header: list[str]) -> None:
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(header, start=1):
        positions.setdefault(name, []).append(i)
    repeated = {name: at for name, at in positions.items() if len(at) > 1}
    if repeated:
        listing = "; ".join(
            f"'{name}' {len(at)} times (columns {', '.join(map(str, at))})" for name, at in repeated.items()
        )
        raise CohortError(
            f"{path}: the header names a column more than once: {listing}; keep one column of each name"
        )


def load_cohort_spec(root: Path) -> dict:
    """Parse and schema-check ``cohort.yaml``; raises :class:`CohortError` naming each bad key."""
    path = root / COHORT_FILE
    if not root.is_dir():
        raise CohortError(f"cohort directory not found: {root}")
    if not path.is_file():
        raise CohortError(f"{path} is missing; a cohort needs cohort.yaml with name, version and task")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CohortError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(spec, dict):
        raise CohortError(f"{path} must hold a mapping (name, version, task), got {type(spec).__name__}")
    errors = schema_errors("cohort", spec)
    if errors:
        raise CohortError(f"{path} does not match the cohort schema: " + "; ".join(errors))
    return spec


def read_cohort(root: str | Path) -> CohortFiles:
    """Read a cohort directory's files. Raises :class:`CohortError` only when the cohort is unusable as a whole
    (no cohort.yaml, an invalid one, no cases table, or a cases table without its required columns)."""
    root = Path(root).resolve()
    spec = load_cohort_spec(root)
    read_issues: list[Issue] = []
    cases_path = _find_one(root, CASES_FILES, required=True, issues=read_issues)
    assert cases_path is not None
    cases = _read_table(cases_path)
    missing = [c for c in CASE_COLUMNS if c not in cases.columns]
    if missing:
        raise CohortError(
            f"{cases_path}: required column(s) {', '.join(missing)} missing; found {', '.join(cases.columns)}"
        )
    obs_path = _find_one(root, OBSERVATIONS_FILES, required=False, issues=read_issues)
    observations = None
    if obs_path is not None:
        observations = _read_table(obs_path)
        missing = [c for c in OBSERVATION_COLUMNS if c not in observations.columns]
        if missing:
            raise CohortError(
                f"{obs_path}: required column(s) {', '.join(missing)} missing; "
                f"found {', '.join(observations.columns)}"
            )
    note_lines: list[tuple[int, str]] = []
    notes_path = root / NOTES_FILE
    if notes_path.exists() and not notes_path.is_file():
        read_issues.append(_not_regular(notes_path))
    elif notes_path.is_file():
        note_lines = _read_note_lines(notes_path, read_issues)
    else:
        read_issues += _notes_in_other_layouts(root)
    return CohortFiles(
        root=root,
        spec=spec,
        cases=cases,
        cases_file=cases_path.name,
        observations=observations,
        observations_file=obs_path.name if obs_path else None,
        note_lines=note_lines,
        read_issues=read_issues,
    )


#: where a hospital export may put its notes instead of notes.jsonl
OTHER_NOTES_FILES = ("notes.csv", "notes.tsv", "notes.parquet", "notes.json", "notes.txt")


def _notes_in_other_layouts(root: Path) -> list[Issue]:
    """A notes file that mmdx would otherwise pass over in silence: the cohort then has no notes at all."""
    readers = {
        ".csv": "pd.read_csv('{name}', dtype=str)",
        ".tsv": "pd.read_csv('{name}', sep='\\t', dtype=str)",
        ".parquet": "pd.read_parquet('{name}')",
    }
    issues = []
    for name in OTHER_NOTES_FILES:
        if not (root / name).is_file():
            continue
        reader = readers.get(Path(name).suffix)
        hint = (
            f"; with pandas: {reader.format(name=name)}.to_json('{NOTES_FILE}', orient='records', lines=True)"
            if reader
            else ""
        )
        message = (
            f"{name} is not read: mmdx reads notes from {NOTES_FILE}, one JSON object per line with case_id "
            f"and text (note_type, time optional); convert it{hint}"
        )
        issues.append(Issue(IssueCode.FILE_NOT_READ, message, name, Severity.WARNING))
    return issues


def _read_note_lines(path: Path, issues: list[Issue]) -> list[tuple[int, str]]:
    """The readable lines of notes.jsonl; a line that is not UTF-8 or is too large becomes an issue."""
    lines = []
    for line in json_limits.read_json_lines(path):
        if line.text is not None:
            lines.append((line.number, line.text))
        elif line.problem == "encoding":
            issues.append(
                Issue(
                    IssueCode.NOTE_ENCODING_INVALID,
                    f"line {line.number}: not valid UTF-8 ({line.detail}); the line is not used. Re-save "
                    "notes.jsonl as UTF-8",
                    NOTES_FILE,
                    row=line.number,
                )
            )
        else:
            issues.append(
                Issue(
                    IssueCode.NOTE_LIMIT_EXCEEDED,
                    f"line {line.number}: {line.detail} (mmdx.data.json_limits.MAX_LINE_BYTES); not read",
                    NOTES_FILE,
                    row=line.number,
                )
            )
    return lines


def parse_number(value: str) -> float:
    """A number of the cases table as a spreadsheet may write it (``64``, ``70.5``, or with a decimal comma
    ``70,5``); raises :class:`ValueError` for anything else, an ambiguous ``1,000`` included."""
    try:
        return float(value)
    except ValueError:
        reading = read_value(str(value))
        if reading.kind == "decimal-comma" and reading.value is not None:
            return reading.value
        raise


def case_row_document(row: dict) -> dict:
    """A cases-table row as typed JSON for schema validation (label and age parsed where they are numbers)."""
    doc: dict = {}
    for key, value in row.items():
        if value is None:
            doc[key] = None
            continue
        if key == "label":
            try:
                doc[key] = parse_label(value)
            except ValueError:
                doc[key] = value
        elif key == "age":
            try:
                doc[key] = parse_number(value)
            except ValueError:
                doc[key] = value
        else:
            doc[key] = value
    return doc


__all__ = [
    "CohortFiles",
    "PathEscapesCohort",
    "case_row_document",
    "parse_number",
    "load_cohort_spec",
    "parse_label",
    "read_csv_text",
    "read_cohort",
    "read_table_file",
    "resolve_in_cohort",
    "schema_errors",
]
