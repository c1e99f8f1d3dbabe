"""The cohort-flow section: exclusions by reason code and split, and per-split counts, against pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmdx.audit.cohort_flow import UNASSIGNED, cohort_flow_section
from mmdx.audit.sections import SectionUnavailable
from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.data.validation import REJECTING, validate_cohort

from .frames import predictions_frame


def _case(case_id: str, status: str, split: str | None, *codes: str) -> dict:
    return {"case_id": case_id, "status": status, "split": split, "issues": [{"code": c} for c in codes]}


@pytest.fixture
def report() -> dict:
    cases = [
        _case("a", "accepted", "train"),
        _case("b", "rejected", "train", "DUPLICATE_CASE_ID"),
        # a non-rejecting issue first: the case stopped because of the rejecting one
        _case("c", "rejected", "test", "IMAGE_NOT_FOUND", "NO_USABLE_MODALITY"),
        _case("d", "rejected", None, "LABEL_INVALID", "SCHEMA_VIOLATION"),
        _case("e", "rejected", "test", "NO_USABLE_MODALITY"),
        _case("f", "warning", "val", "VALUE_IMPLAUSIBLE", "VALUE_IMPLAUSIBLE", "UNIT_UNKNOWN"),
        _case("g", "warning", "val", "UNIT_UNKNOWN"),
    ]
    return {
        "cohort": {"name": "toy", "version": "2"},
        "created": "2024-01-01T00:00:00+00:00",
        "summary": {
            "rows": 7,
            "accepted": 1,
            "warning": 2,
            "rejected": 4,
            "usable_cases": 3,
            "splits": {"train": {"cases": 160}, "val": {"cases": 60}, "test": {"cases": 240}},
        },
        "cases": cases,
        "files": [{"code": "UNKNOWN_CASE_ID"}, {"code": "UNKNOWN_CASE_ID"}, {"code": "NOTE_MALFORMED"}],
    }


def test_exclusions_are_counted_by_primary_reason_and_split(report: dict) -> None:
    section = cohort_flow_section(predictions_frame(), report, ["sex"])
    excluded = {row["code"]: row for row in section["excluded_by_reason"]}
    assert {code: row["cases"] for code, row in excluded.items()} == {
        "NO_USABLE_MODALITY": 2,
        "DUPLICATE_CASE_ID": 1,
        "LABEL_INVALID": 1,
    }
    assert excluded["NO_USABLE_MODALITY"]["by_split"] == {"test": 2}
    assert excluded["LABEL_INVALID"]["by_split"] == {UNASSIGNED: 1}
    assert sum(row["cases"] for row in section["excluded_by_reason"]) == section["rejected"] == 4
    assert excluded["DUPLICATE_CASE_ID"]["description"].startswith("the same case_id")
    # kept cases count once per code, however often the code occurs in the case
    assert {r["code"]: r["cases"] for r in section["issues_in_kept_cases"]} == {
        "UNIT_UNKNOWN": 2,
        "VALUE_IMPLAUSIBLE": 1,
    }
    assert {r["code"]: r["count"] for r in section["file_issues"]} == {
        "UNKNOWN_CASE_ID": 2,
        "NOTE_MALFORMED": 1,
    }


def test_per_split_counts_match_pandas(report: dict) -> None:
    frame = predictions_frame(seed=3)
    frame.loc[frame.index[:5], "label"] = np.nan  # unlabelled train cases
    section = cohort_flow_section(frame, report, ["sex", "site"])
    assert list(section["splits"]) == ["train", "val", "test"]
    for split, counts in section["splits"].items():
        part = frame[frame["split"] == split]
        labelled = part["label"].dropna()
        assert counts["predicted"] == len(part)
        assert counts["labelled"] == len(labelled) and counts["unlabelled"] == part["label"].isna().sum()
        assert counts["positive"] == (labelled == 1).sum() and counts["negative"] == (labelled == 0).sum()
        assert counts["prevalence"] == pytest.approx(labelled.mean())
        assert counts["modality_patterns"] == part["modalities"].value_counts().to_dict()
        assert counts["characteristics"]["site"] == part["site"].value_counts().sort_index().to_dict()
        assert counts["usable"] == report["summary"]["splits"][split]["cases"]
    assert section["predicted"] == len(frame) and section["labelled"] == frame["label"].notna().sum()
    assert section["modality_presence"]["image"] == frame["has_image"].sum()


def test_missing_subgroup_values_are_counted_not_dropped(report: dict) -> None:
    frame = predictions_frame()
    frame["sex"] = frame["sex"].astype(object)
    frame.loc[frame.index[:3], "sex"] = "nan"  # what astype(str) makes of a missing value
    train = cohort_flow_section(frame, report, ["sex"])["splits"]["train"]["characteristics"]["sex"]
    assert train["<missing>"] == 3 and sum(train.values()) == (frame["split"] == "train").sum()


def test_no_validation_report_makes_the_section_unavailable() -> None:
    with pytest.raises(SectionUnavailable, match="validation_report.json is missing"):
        cohort_flow_section(predictions_frame(), None, [])


def test_a_real_validation_report_is_accounted_for(tmp_path: Path) -> None:
    cohort = tmp_path / "defects"
    synthesize_cohort(cohort, SynthOptions(n_cases=40, seed=8, dims=2, size=16, defects=True))
    validated = validate_cohort(cohort)
    document = validated.report.to_dict()
    usable = validated.cases
    frame = predictions_frame({"train": 1})[:0]  # the columns, no rows
    frame = pd.DataFrame(
        {
            **{c: [None] * len(usable) for c in frame.columns},
            "case_id": usable["case_id"],
            "split": usable["split"],
            "label": usable["label"],
            "modalities": "image",
        }
    )
    section = cohort_flow_section(frame, document, [])
    assert section["rejected"] == document["summary"]["rejected"] > 0
    assert sum(row["cases"] for row in section["excluded_by_reason"]) == section["rejected"]
    assert {row["code"] for row in section["excluded_by_reason"]} <= {str(c) for c in REJECTING}
    assert section["rows_in"] == section["usable"] + section["rejected"]
    assert section["not_predicted"] == 0
