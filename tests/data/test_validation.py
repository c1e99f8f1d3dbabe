"""Validation accounts for every case, row and file, each problem with its own reason code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mmdx.data.issues import DESCRIPTIONS, IssueCode
from mmdx.data.validation import validate_cohort
from mmdx.errors import CohortError


@pytest.fixture(scope="module")
def validated(defect_cohort: Path):
    return validate_cohort(defect_cohort, workers=2)


def test_every_planted_defect_reported_with_its_own_code(defect_cohort: Path, validated) -> None:
    planted = json.loads((defect_cohort / "ground_truth" / "defects.json").read_text())
    assert len({d["code"] for d in planted}) >= 10
    report = validated.report
    for defect in planted:
        if defect["case_id"] is None:
            codes = {str(i.code) for i in report.files}
        else:
            codes = {str(i.code) for c in report.cases if c.case_id == defect["case_id"] for i in c.issues}
        assert defect["code"] in codes, defect


def test_every_row_accounted_for(defect_cohort: Path, validated) -> None:
    rows = pd.read_csv(defect_cohort / "cases.csv", dtype=str)
    report = validated.report
    assert len(report.cases) == len(rows)
    s = report.summary
    assert s["accepted"] + s["warning"] + s["rejected"] == len(rows)
    assert s["usable_cases"] == len(validated.cases) == s["accepted"] + s["warning"]
    obs = pd.read_csv(defect_cohort / "observations.csv", dtype=str)
    dropped = sum(1 for c in report.cases for i in c.issues if i.file == "observations.csv") + sum(
        1 for i in report.files if i.file == "observations.csv"
    )
    used_by_rejected = s["observation_rows"] - s["observation_rows_used"] - dropped
    assert s["observation_rows"] == len(obs)
    assert used_by_rejected >= 0  # rows of rejected cases are the only other rows not used


def test_statuses_follow_the_issues(validated) -> None:
    by_id: dict = {}
    for case in validated.report.cases:
        by_id.setdefault(case.case_id, case)  # the first row of a duplicated case_id is the one kept
    for case in validated.report.cases:
        codes = {i.code for i in case.issues}
        if codes & {IssueCode.DUPLICATE_CASE_ID, IssueCode.LABEL_INVALID, IssueCode.PATH_ESCAPES_COHORT}:
            assert case.status == "rejected"
        elif {IssueCode.DICOM_TRUNCATED, IssueCode.IMAGE_NOT_FOUND} & codes:
            assert case.status == "warning" and case.modalities["image"] is False
    usable = set(validated.cases["case_id"])
    assert all(by_id[c].status != "rejected" for c in usable)


def test_no_patient_in_two_splits_among_usable_cases(validated) -> None:
    assert (validated.cases.groupby("patient_id")["split"].nunique() == 1).all()


def test_missing_split_column_gets_patient_level_split(defect_cohort: Path, tmp_path: Path) -> None:
    root = tmp_path / "nosplit"
    shutil.copytree(defect_cohort, root, symlinks=True)
    cases = pd.read_csv(root / "cases.csv", dtype=str, keep_default_na=False).drop(columns=["split"])
    cases.to_csv(root / "cases.csv", index=False)
    result = validate_cohort(root, check_images=False)
    assert result.report.summary["splits_assigned_by_mmdx"] > 0
    assert set(result.cases["split"]) == {"train", "val", "test"}
    assert (result.cases.groupby("patient_id")["split"].nunique() == 1).all()
    assert not any(i.code == IssueCode.PATIENT_IN_TWO_SPLITS for c in result.report.cases for i in c.issues)


def test_symlink_escaping_cohort_is_rejected(defect_cohort: Path, tmp_path: Path) -> None:
    root = tmp_path / "link"
    shutil.copytree(defect_cohort, root)
    outside = tmp_path / "secret.nii.gz"
    outside.write_bytes(b"not an image")
    (root / "images" / "sneaky.nii.gz").symlink_to(outside)
    cases = pd.read_csv(root / "cases.csv", dtype=str, keep_default_na=False)
    cases.loc[0, "image"] = "images/sneaky.nii.gz"
    cases.to_csv(root / "cases.csv", index=False)
    report = validate_cohort(root, check_images=False).report
    first = next(c for c in report.cases if c.case_id == cases.loc[0, "case_id"])
    assert first.status == "rejected"
    assert IssueCode.PATH_ESCAPES_COHORT in {i.code for i in first.issues}


def test_unlabelled_cases_are_usable_for_prediction(defect_cohort: Path, tmp_path: Path) -> None:
    root = tmp_path / "unlabelled"
    shutil.copytree(defect_cohort, root)
    cases = pd.read_csv(root / "cases.csv", dtype=str, keep_default_na=False)
    cases["label"] = ""
    cases.to_csv(root / "cases.csv", index=False)
    result = validate_cohort(root, check_images=False)
    assert len(result.cases) > 0 and result.cases["label"].isna().all()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda root: (root / "cohort.yaml").unlink(), "cohort.yaml is missing"),
        (
            lambda root: (root / "cohort.yaml").write_text("name: x\nversion: 1\ntask: {label: label}\n"),
            "task",
        ),
        (lambda root: (root / "cohort.yaml").write_text("name: [unclosed"), "not valid YAML"),
        (lambda root: (root / "cases.csv").unlink(), "no cases table"),
        (lambda root: (root / "cases.csv").write_text("id,label\n1,0\n"), "case_id"),
    ],
)
def test_unusable_cohort_raises_a_clear_error(
    defect_cohort: Path, tmp_path: Path, mutate, message: str
) -> None:
    root = tmp_path / "broken"
    shutil.copytree(defect_cohort, root)
    mutate(root)
    with pytest.raises(CohortError, match=message):
        validate_cohort(root, check_images=False)


def test_unknown_key_in_cohort_yaml_named(defect_cohort: Path, tmp_path: Path) -> None:
    root = tmp_path / "typo"
    shutil.copytree(defect_cohort, root)
    spec = yaml.safe_load((root / "cohort.yaml").read_text())
    spec["subgroup"] = spec.pop("subgroups")
    (root / "cohort.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(CohortError, match="subgroup"):
        validate_cohort(root, check_images=False)


def test_every_code_is_described() -> None:
    assert set(DESCRIPTIONS) == set(IssueCode)
