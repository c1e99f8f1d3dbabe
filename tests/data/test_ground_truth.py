"""The ground truth of synthetic cohorts: its schema, and every consumer skipping what does not conform."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mmdx.data.ground_truth import check_ground_truth, read_defects, read_truth
from mmdx.data.issues import IssueCode
from mmdx.data.schemas import schema_errors
from mmdx.data.validation import validate_cohort
from mmdx.deid.cohort import deidentify_cohort
from mmdx.deid.key import DeidKey
from mmdx.explain.truth import load_truth
from tests.support.foreign_truth import foreign_truth_cohort


@pytest.fixture(scope="module")
def foreign_truth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic cohort whose truth.jsonl mixes conforming lines with foreign and broken ones."""
    return foreign_truth_cohort(tmp_path_factory.mktemp("truth") / "cohort")


def test_synthetic_ground_truth_conforms(small_cohort_2d: Path, defect_cohort: Path) -> None:
    for cohort in (small_cohort_2d, defect_cohort):
        assert check_ground_truth(cohort) == []
    truth = read_truth(defect_cohort)
    assert truth is not None and len(truth.records) == 48 and not truth.issues
    defects, issues = read_defects(defect_cohort)
    assert defects and not issues and schema_errors("defects", defects) == []


def test_a_line_beyond_the_json_limits_is_skipped_unparsed(small_cohort_2d: Path, tmp_path: Path) -> None:
    cohort = tmp_path / "cohort"
    shutil.copytree(small_cohort_2d, cohort)
    with (cohort / "ground_truth" / "truth.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("[" * 100_000 + "\n")
    (cohort / "ground_truth" / "defects.json").write_text("{" * 100_000)
    truth = read_truth(cohort)
    assert truth is not None and len(truth.records) == 160
    (issue,) = truth.issues
    assert issue.row == 161 and "beyond the JSON limits" in issue.message
    defects, issues = read_defects(cohort)
    assert defects is None and "nested" in issues[0].message


def test_foreign_lines_are_skipped_naming_their_line(foreign_truth: Path) -> None:
    truth = read_truth(foreign_truth)
    assert truth is not None
    assert [(i.code, i.row) for i in truth.issues] == [
        (IssueCode.GROUND_TRUTH_INVALID, n) for n in (2, 4, 13)
    ]
    assert "planted_phrases.0" in truth.issues[0].message and "not valid JSON" in truth.issues[1].message
    assert "C00002" not in truth.records and "C00001" in truth.records and len(truth.records) == 10
    _, issues = read_defects(foreign_truth)
    assert [i.code for i in issues] == [IssueCode.GROUND_TRUTH_INVALID]


def test_validation_reports_them_and_the_cohort_stays_usable(foreign_truth: Path) -> None:
    report = validate_cohort(foreign_truth, check_images=False).report
    flagged = [i for i in report.files if i.code == IssueCode.GROUND_TRUTH_INVALID]
    assert len(flagged) == 4 and {i.row for i in flagged} == {2, 4, 13, None}
    assert report.usable and report.summary["issues_by_code"]["GROUND_TRUTH_INVALID"] == 4


def test_explanation_scores_skip_them_with_a_warning(foreign_truth: Path, caplog) -> None:
    warnings: list[str] = []
    records = load_truth(foreign_truth, warnings)
    assert records is not None and "C00002" not in records
    assert len(warnings) == 3 and warnings[0].startswith("ground_truth/truth.jsonl line 2:")
    assert "ground truth skipped" in caplog.text


def test_deidentification_skips_them_and_goes_on(foreign_truth: Path, tmp_path: Path) -> None:
    out = tmp_path / "deid"
    report = deidentify_cohort(foreign_truth, out, DeidKey(bytes(range(32))))
    written = (out / "ground_truth" / "truth.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(written) == 10  # the conforming records, re-spanned; the others are not copied
    assert not (out / "ground_truth" / "defects.json").exists()
    warnings = report.data["ground_truth_warnings"]
    assert len(warnings) == 4 and any("line 2" in w for w in warnings)
    assert any("ground truth not copied" in line for line in report.summary_lines())
