"""Which source records attach to which case of the case list."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from mmdx.importers.caselist import CaseList, known_times

CASES = pd.DataFrame(
    {
        "case_id": ["enc", "window", "enc_indexed", "none", "dup", "bad_time", "enc"],
        "patient_id": ["p1", "p1", "p1", "p1", "p2", "p2", "p3"],
        "encounter_id": ["e1", None, "e2", None, None, None, None],
        "index_time": [
            None,
            "2024-03-02T00:00:00Z",
            "2024-03-01T12:00:00Z",
            None,
            "2024-01-01",
            "soon",
            "2024-01-01",
        ],
        "label": ["1", "0", "1", "1", "0", "0", "1"],
    }
)


@pytest.fixture
def caselist() -> CaseList:
    return CaseList.from_frame(CASES, "cases.csv")


def test_rows_that_cannot_be_cases_are_rejected_with_their_code(caselist: CaseList) -> None:
    assert caselist.frame["case_id"].tolist() == ["enc", "window", "enc_indexed", "dup"]
    assert [(str(i.code), i.row) for i in caselist.rejected] == [
        ("CASE_NOT_LINKABLE", 4),
        ("INDEX_TIME_INVALID", 6),
        ("DUPLICATE_CASE_ID", 7),
    ]


def _event(patient: str, encounter: str | None, time: str | None, kind: str = "vital") -> dict:
    return {"patient_id": patient, "encounter_id": encounter, "time": time, "kind": kind}


@pytest.mark.parametrize(
    ("event", "cases", "reason"),
    [
        (_event("p1", "e1", "2030-01-01T00:00:00Z"), {"enc"}, None),  # by encounter, no index time: any time
        (_event("p1", None, "2024-03-01T20:00:00Z"), {"window"}, None),
        (_event("p1", "e2", "2024-03-01T11:00:00Z"), {"window", "enc_indexed"}, None),
        (_event("p1", "e2", "2024-03-01T13:00:00Z"), {"window"}, None),  # after enc_indexed's index time
        (_event("p1", None, "2024-03-01"), {"window"}, None),  # end of that day is before 2024-03-02
        (_event("p1", None, "2024-03-02"), set(), "AFTER_INDEX_TIME"),  # the index day itself: not certain
        (_event("p1", None, None), set(), "UNDATED_WITH_INDEX_TIME"),
        (_event("p1", None, "2024-02-20T00:00:00Z"), set(), "BEFORE_LOOKBACK_WINDOW"),  # 7-day vital window
        (_event("p1", None, "2024-02-20T00:00:00Z", kind="lab"), {"window"}, None),  # no lab window
        (_event("p1", "e9", "2030-01-01T00:00:00Z"), set(), "AFTER_INDEX_TIME"),
        (_event("p2", None, "2023-12-31T10:00:00Z"), {"dup"}, None),
        (_event("p7", None, "2024-01-01T00:00:00Z"), set(), "patient_not_in_case_list"),
    ],
)
def test_attach(caselist: CaseList, event: dict, cases: set[str], reason: str | None) -> None:
    events = pd.DataFrame([event])
    _, events["known"] = known_times(events["time"])
    counts: Counter = Counter()
    attached = caselist.attach(events, {"vital": pd.Timedelta(days=7)}, counts)
    assert set(attached["case_id"]) == cases
    assert +counts == (Counter({reason: 1}) if reason else Counter())


@pytest.mark.parametrize(
    ("text", "known"),
    [
        ("2024", "2024-12-31T23:59:59.999999+00:00"),
        ("2024-02", "2024-02-29T23:59:59.999999+00:00"),
        ("2024-02-03", "2024-02-03T23:59:59.999999+00:00"),
        ("2024-02-03T10:00:00+01:00", "2024-02-03T09:00:00+00:00"),
        ("not a time", None),
    ],
)
def test_known_times(text: str, known: str | None) -> None:
    _, value = known_times(pd.Series([text]))
    assert (None if pd.isna(value[0]) else value[0].isoformat()) == known
