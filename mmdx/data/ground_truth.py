"""The ground truth of a synthetic cohort (``ground_truth/``), read against its published JSON Schemas.

``ground_truth/truth.jsonl`` holds one JSON object per line and case (``data_schemas/ground_truth.schema.json``:
the label, the lesion and its mask, the causal features, the planted note phrases with their character
spans, the exact Bayes log-odds terms); ``ground_truth/defects.json`` lists the broken inputs planted in the
cohort (``data_schemas/defects.schema.json``); ``ground_truth/masks/`` holds the lesion masks.

Cohorts that mmdx did not write may carry files of the same names in another layout. Every consumer
(explanation scores, de-identification, validation, the audit) reads them through this module: a line or
file that does not match its schema -- or that is not JSON within the limits of
:mod:`mmdx.data.json_limits` (a line nested 100,000 levels deep is refused before it is parsed) -- is skipped
with a ``GROUND_TRUTH_INVALID`` warning naming the file and line, and the rest is used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from mmdx.data.cohort import GROUND_TRUTH_DIR
from mmdx.data.issues import Issue, IssueCode, Severity
from mmdx.data.json_limits import JsonLimitExceeded, parse_json_line
from mmdx.data.schemas import schema_errors

TRUTH_FILE = f"{GROUND_TRUTH_DIR}/truth.jsonl"
DEFECTS_FILE = f"{GROUND_TRUTH_DIR}/defects.json"


@dataclass
class GroundTruth:
    """The usable records of ``truth.jsonl`` by case id, in file order, and the issues of skipped lines."""

    records: dict[str, dict] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """The issues as one-line messages (``file line N: ...``)."""
        return [
            f"{i.file} line {i.row}: {i.message}" if i.row else f"{i.file}: {i.message}" for i in self.issues
        ]


def _issue(message: str, file: str, row: int | None = None) -> Issue:
    return Issue(IssueCode.GROUND_TRUTH_INVALID, message, file=file, severity=Severity.WARNING, row=row)


def read_truth(cohort_dir: str | Path) -> GroundTruth | None:
    """The records of ``ground_truth/truth.jsonl`` that match the schema; ``None`` when there is no file.

    A line that is not JSON, does not match the schema or repeats a case id is skipped with an issue.
    """
    path = Path(cohort_dir) / TRUTH_FILE
    if not path.is_file():
        return None
    truth = GroundTruth()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        truth.issues.append(_issue(f"cannot be read ({exc}); no ground truth is used", TRUTH_FILE))
        return truth
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = parse_json_line(line)
        except json.JSONDecodeError as exc:
            truth.issues.append(_issue(f"not valid JSON ({exc.msg}); line skipped", TRUTH_FILE, number))
            continue
        except JsonLimitExceeded as exc:
            truth.issues.append(_issue(f"beyond the JSON limits ({exc}); line skipped", TRUTH_FILE, number))
            continue
        errors = schema_errors("ground_truth", record)
        if errors:
            shown = "; ".join(errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
            truth.issues.append(
                _issue(f"does not match the ground-truth schema ({shown}); line skipped", TRUTH_FILE, number)
            )
            continue
        case_id = record["case_id"]
        if case_id in truth.records:
            truth.issues.append(_issue(f"case {case_id} appears again; line skipped", TRUTH_FILE, number))
            continue
        truth.records[case_id] = record
    return truth


def read_defects(cohort_dir: str | Path) -> tuple[list[dict] | None, list[Issue]]:
    """The planted defects (``None`` when there is no file, or it does not match its schema) and issues."""
    path = Path(cohort_dir) / DEFECTS_FILE
    if not path.is_file():
        return None, []
    try:
        document = parse_json_line(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, JsonLimitExceeded) as exc:
        return None, [_issue(f"cannot be read as JSON ({exc}); the file is skipped", DEFECTS_FILE)]
    errors = schema_errors("defects", document)
    if errors:
        shown = "; ".join(errors[:3])
        return None, [
            _issue(f"does not match the defects schema ({shown}); the file is skipped", DEFECTS_FILE)
        ]
    return document, []


def check_ground_truth(cohort_dir: str | Path) -> list[Issue]:
    """Every ``GROUND_TRUTH_INVALID`` issue of a cohort's ``ground_truth/`` (``[]`` when it has none)."""
    truth = read_truth(cohort_dir)
    _, defect_issues = read_defects(cohort_dir)
    return (truth.issues if truth is not None else []) + defect_issues
