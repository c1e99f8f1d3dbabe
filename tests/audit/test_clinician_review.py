"""The clinician-review section: counts and rates recomputed by hand, export recorded, comments scrubbed."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from mmdx.audit.clinician_review import ReviewAccess, clinician_review_section, read_verdicts
from mmdx.audit.sections import SectionUnavailable
from mmdx.store import AuditAction, ExplanationKind, Operator, ReviewStore, Role, Verdict, VerdictRecord
from mmdx.store.passwords import MIN_BCRYPT_ROUNDS

from .frames import predictions_frame

VERSION = "abcdef0123456789"
PASSWORD = "a long enough password"
_ids = itertools.count(1)


def _verdict(
    case_id: str, user: str, verdict: Verdict, comment: str = "", version: str = VERSION, **kw
) -> VerdictRecord:
    return VerdictRecord(
        id=next(_ids),
        run_id="run",
        case_id=case_id,
        user=user,
        created_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        verdict=verdict,
        diagnosis=kw.get("diagnosis", ""),
        confidence=kw.get("confidence", 4),
        comment=comment,
        helpful_explanations=tuple(kw.get("helpful", ())),
        model_version=version,
        explanation_version="e1",
        supersedes=None,
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return predictions_frame(seed=5)


@pytest.fixture(scope="module")
def verdicts(frame: pd.DataFrame) -> list[VerdictRecord]:
    ids = frame.loc[frame["split"] == "test", "case_id"].tolist()
    out = [_verdict(c, "dr.b", Verdict.AGREE, helpful=[ExplanationKind.IMAGE]) for c in ids[:12]]
    out += [_verdict(c, "dr.b", Verdict.DISAGREE, confidence=2) for c in ids[12:16]]
    out += [_verdict(ids[16], "dr.b", Verdict.UNSURE, "Called Mr Smith on 0161 496 0000 about " + ids[16])]
    out += [_verdict(c, "dr.a", Verdict.AGREE, helpful=[ExplanationKind.SHAPLEY]) for c in ids[:3]]
    out += [_verdict(ids[3], "dr.a", Verdict.DISAGREE, "lesion missed", diagnosis="lobar pneumonia")]
    out += [_verdict(ids[20], "dr.a", Verdict.AGREE, version="0000000000000000")]  # another model
    out += [_verdict("not-a-case", "dr.a", Verdict.AGREE)]
    return out


@pytest.fixture(scope="module")
def section(frame: pd.DataFrame, verdicts: list[VerdictRecord]) -> dict:
    return clinician_review_section(
        verdicts,
        frame,
        VERSION,
        ["sex", "site"],
        run_id="run",
        store_label="sqlite:///x",
        alpha=0.05,
        min_n=5,
    )


def test_counts_and_agreement(section: dict) -> None:
    assert section["verdict_counts"] == {"agree": 15, "disagree": 5, "unsure": 1}
    assert section["n_verdicts"] == 21 and section["n_cases_reviewed"] == 17 and section["n_reviewers"] == 2
    assert section["excluded_other_model_versions"] == 1 and section["excluded_unknown_cases"] == 1
    agreement = section["agreement"]
    assert agreement["estimate"] == pytest.approx(15 / 20) and agreement["n"] == 20
    assert agreement["low"] < 0.75 < agreement["high"]
    assert section["unsure_share"] == pytest.approx(1 / 21)
    assert section["multiple_reviewers"] == {"cases": 4, "unanimous": 3}
    assert section["helpful_explanations"] == {"image": 12, "shapley": 3}
    assert section["confidence"]["counts"]["2"] == 4


def test_breakdowns_match_a_recount(
    frame: pd.DataFrame, verdicts: list[VerdictRecord], section: dict
) -> None:
    cases = frame.set_index("case_id")
    kept = [v for v in verdicts if v.model_version == VERSION and v.case_id in cases.index]
    outcome = {
        "model right": [
            v for v in kept if cases.loc[v.case_id, "label"] == cases.loc[v.case_id, "predicted"]
        ],
        "model wrong": [
            v for v in kept if cases.loc[v.case_id, "label"] != cases.loc[v.case_id, "predicted"]
        ],
    }
    rows = {row["group"]: row for row in section["by_model_outcome"]}
    for name, group in outcome.items():
        if group:
            disagree = sum(v.verdict is Verdict.DISAGREE for v in group)
            assert rows[name]["n_verdicts"] == len(group) and rows[name]["disagree"] == disagree
            assert rows[name]["disagree_rate"]["estimate"] == pytest.approx(disagree / len(group))
    by_sex = next(b for b in section["by_subgroup"] if b["attribute"] == "sex")["groups"]
    for row in by_sex:
        group = [v for v in kept if cases.loc[v.case_id, "sex"] == row["group"]]
        assert row["n_verdicts"] == len(group)
        assert row["too_small"] == (len(group) < 5)
    assert {b["attribute"] for b in section["by_subgroup"]} == {"sex", "site", "modality_pattern"}


def test_comments_are_pseudonymous_and_scrubbed(frame: pd.DataFrame, section: dict) -> None:
    comments = section["comments"]
    assert len(comments) == 2
    assert {c["reviewer"] for c in comments} <= {"R1", "R2"}
    text = " ".join(c["comment"] + c["diagnosis"] for c in comments)
    assert "Smith" not in text and "0161" not in text and "[NAME]" in text and "[PHONE]" in text
    unsure = next(c for c in comments if c["verdict"] == "unsure")
    assert unsure["case_id"] in unsure["comment"]  # the run's pseudonymous case ids are kept
    assert "dr.a" not in str(section) and "dr.b" not in str(section)
    assert section["comments_scrubbed_spans"] == 2
    lesion = next(c for c in comments if c["verdict"] == "disagree")
    assert lesion["comment"] == "lesion missed" and lesion["diagnosis"] == "lobar pneumonia"


def test_no_verdict_for_this_model_is_unavailable(frame: pd.DataFrame) -> None:
    other = [_verdict(frame["case_id"].iloc[0], "dr.a", Verdict.AGREE, version="1111111111111111")]
    with pytest.raises(SectionUnavailable, match="1 verdict\\(s\\) concern other model versions"):
        clinician_review_section(other, frame, VERSION, [], run_id="run", store_label="s")


def test_without_a_store_or_an_account_the_reason_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(SectionUnavailable, match=r"no review store given \(--store URL\)"):
        read_verdicts(None, "run")
    with ReviewStore(f"sqlite:///{tmp_path / 'r.sqlite'}") as store:
        with pytest.raises(SectionUnavailable, match="--user NAME"):
            read_verdicts(ReviewAccess(store), "run")


def test_reading_verdicts_records_an_export_and_refuses_clinicians(tmp_path: Path) -> None:
    with ReviewStore(f"sqlite:///{tmp_path / 'r.sqlite'}", bcrypt_rounds=MIN_BCRYPT_ROUNDS) as store:
        for name, role in (("clin", Role.CLINICIAN), ("aud", Role.AUDITOR)):
            store.add_user(name, role, PASSWORD, actor=Operator("tests"))
        clinician = store.authenticate("clin", PASSWORD)
        auditor = store.authenticate("aud", PASSWORD)
        store.submit_verdict(clinician, "run", "c1", Verdict.DISAGREE, "", 3, "first", [], VERSION, "e")
        store.submit_verdict(clinician, "run", "c1", Verdict.AGREE, "", 4, "second look", [], VERSION, "e")
        store.submit_verdict(clinician, "other-run", "c1", Verdict.AGREE, "", 4, "", [], VERSION, "e")
        with pytest.raises(SectionUnavailable, match="auditor or admin"):
            read_verdicts(ReviewAccess(store, clinician), "run")
        records = read_verdicts(ReviewAccess(store, auditor), "run")
        assert [(r.case_id, r.verdict, r.comment) for r in records] == [("c1", Verdict.AGREE, "second look")]
        exports = store.audit_events(auditor, action=AuditAction.EXPORT)
        assert len(exports) == 1 and exports[0].user == "aud" and exports[0].run_id == "run"
        assert exports[0].detail["what"] == "audit_report"


@pytest.mark.parametrize(
    ("comment", "names"),
    [
        ("MRN 12345678 John Smith", ["John", "Smith", "12345678"]),
        ("Wife: Mary Brown disagreed with discharge.", ["Mary", "Brown"]),
        ("Discussed with consultant Imre Szabó, who agreed.", ["Imre", "Szabó"]),
    ],
)
def test_names_in_comments_are_scrubbed_before_the_report(
    frame: pd.DataFrame, comment: str, names: list
) -> None:
    case_id = frame.loc[frame["split"] == "test", "case_id"].iloc[0]
    section = clinician_review_section(
        [_verdict(case_id, "dr.c", Verdict.DISAGREE, comment)],
        frame,
        VERSION,
        [],
        run_id="run",
        store_label="sqlite:///x",
        alpha=0.05,
        min_n=5,
    )
    (shown,) = section["comments"]
    assert not any(name in shown["comment"] for name in names), shown["comment"]
    assert "[NAME]" in shown["comment"]
