"""The user's case list, and which source records belong to which case.

A case list (``--cases CASES.csv``, or rows from a query or a MEDS label file) has ``case_id`` and
``patient_id`` (the source's own patient id), and optionally ``encounter_id`` (FHIR Encounter, OMOP
visit_occurrence), ``label``, ``split``, ``index_time`` (ISO 8601) and ``image``; every other column
(age, sex, site, ...) passes through to the cohort's cases table as the case's demographics.

A source record (a value, a note, an image) of patient P attaches to a case of P

* by its **encounter** when the case names one: the record's encounter must be the case's;
* else by **time**: it must lie inside the look-back window of its kind before the case's ``index_time``
  (with no window for its kind, anything before the index time).

Either way, for a case with an ``index_time`` nothing after it is attached, nor a record without a time
(the rules of :mod:`mmdx.data.index_time`, applied while reading so that the future never reaches the
cohort directory). A case with neither an encounter nor an index time is rejected (``CASE_NOT_LINKABLE``).
Records of listed patients that attach to no case are counted once each, under the first reason any of the
patient's cases gives (after the index time, undated, before the look-back window, another encounter), and
records of other patients are counted too: nothing is silently lost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmdx.data.cohort import read_table_file
from mmdx.data.index_time import ENCOUNTER_COLUMN, INDEX_TIME_COLUMN, parse_time
from mmdx.data.issues import Issue, IssueCode
from mmdx.errors import MmdxError

REQUIRED = ("case_id", "patient_id")

#: why a record of a listed patient was not attached to one of the patient's cases (import report keys)
NOT_ATTACHED_OTHER_ENCOUNTER = "other_encounter"
NOT_ATTACHED_AFTER_INDEX = str(IssueCode.AFTER_INDEX_TIME)
NOT_ATTACHED_BEFORE_WINDOW = str(IssueCode.BEFORE_LOOKBACK_WINDOW)
NOT_ATTACHED_UNDATED = str(IssueCode.UNDATED_WITH_INDEX_TIME)
NOT_ATTACHED_OTHER_PATIENT = "patient_not_in_case_list"


def known_times(times: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``(time, known)`` as UTC timestamps from ISO 8601 text (FHIR dateTime precision included).

    ``known`` is when the record is known for certain: the end of the day, month or year for a time given as
    a bare date (``2024-03-01``), month (``2024-03``) or year (``2024``). Unparseable text becomes NaT.
    """
    text = times.astype("string").str.strip()
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    known = parsed.copy()
    for pattern, period in ((r"\d{4}-\d{2}-\d{2}", "D"), (r"\d{4}-\d{2}", "M"), (r"\d{4}", "Y")):
        partial = text.str.fullmatch(pattern).fillna(False).astype(bool)
        if partial.any():
            start = parsed[partial].dt.tz_localize(None)
            end = start.dt.to_period(period).dt.end_time.dt.tz_localize("UTC")
            known[partial] = end
    return parsed, known


@dataclass
class CaseList:
    """The cases to import. ``frame`` has one row per accepted case with every column of the list as text
    (``None`` when empty) plus ``_index`` (UTC timestamp or NaT); ``rejected`` lists the rows that cannot be
    imported, each with a typed issue."""

    frame: pd.DataFrame
    rejected: list[Issue] = field(default_factory=list)
    file: str = "cases"

    @classmethod
    def from_frame(cls, raw: pd.DataFrame, file: str) -> CaseList:
        """Check a case list given as a table (every cell text or empty)."""
        raw = raw.copy()
        raw.columns = [str(c).strip() for c in raw.columns]
        missing = [c for c in REQUIRED if c not in raw.columns]
        if missing:
            raise MmdxError(
                f"{file}: required column(s) {', '.join(missing)} missing; a case list needs case_id and "
                f"patient_id (the source's patient id), and optionally encounter_id, label, split, index_time, image"
            )
        for column in (ENCOUNTER_COLUMN, INDEX_TIME_COLUMN):
            if column not in raw.columns:
                raw[column] = None
        raw = pd.DataFrame(
            {
                column: pd.Series(
                    [
                        None if v is None or pd.isna(v) or str(v).strip() == "" else str(v).strip()
                        for v in raw[column]
                    ],
                    dtype=object,
                    index=raw.index,
                )
                for column in raw.columns
            }
        )
        rejected: list[Issue] = []
        keep = []
        seen: dict[str, int] = {}
        index_times = []
        for number, row in enumerate(raw.to_dict(orient="records"), start=1):
            case_id, patient = row.get("case_id"), row.get("patient_id")
            stamp = None
            problem: tuple[IssueCode, str] | None = None
            if case_id is None or patient is None:
                problem = (
                    IssueCode.SCHEMA_VIOLATION,
                    f"row {number}: case_id and patient_id must not be empty",
                )
            elif case_id in seen:
                problem = (
                    IssueCode.DUPLICATE_CASE_ID,
                    f"row {number}: case_id {case_id} already used on row {seen[case_id]}; this row is not imported",
                )
            else:
                try:
                    stamp = parse_time(row.get(INDEX_TIME_COLUMN))
                except ValueError:
                    problem = (
                        IssueCode.INDEX_TIME_INVALID,
                        f"row {number}: index_time {row.get(INDEX_TIME_COLUMN)!r} is not ISO 8601 "
                        "(e.g. 2024-03-01T08:30:00Z)",
                    )
                if problem is None and stamp is None and row.get(ENCOUNTER_COLUMN) is None:
                    problem = (
                        IssueCode.CASE_NOT_LINKABLE,
                        f"row {number}: case {case_id} has neither an encounter_id nor an index_time, so no "
                        "source record can be attached to it; give one of them",
                    )
            if problem is not None:
                rejected.append(Issue(problem[0], problem[1], file, row=number))
                continue
            seen[case_id] = number
            keep.append(number - 1)
            index_times.append(stamp)
        frame = raw.iloc[keep].reset_index(drop=True)
        frame["_index"] = pd.to_datetime(pd.Series(index_times, dtype=object), utc=True)
        return cls(frame=frame, rejected=rejected, file=file)

    @classmethod
    def read(cls, path: str | Path) -> CaseList:
        """Read ``CASES.csv`` (or ``.parquet``); raises :class:`MmdxError` naming the file when it cannot."""
        path = Path(path)
        if not path.is_file():
            raise MmdxError(f"case list not found: {path}")
        raw, _ = read_table_file(path, "the case list", MmdxError)
        return cls.from_frame(raw, path.name)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def patients(self) -> set[str]:
        return set(self.frame["patient_id"])

    def attach(
        self, events: pd.DataFrame, windows: dict[str, pd.Timedelta], not_attached: Counter
    ) -> pd.DataFrame:
        """The ``events`` (one row per source record) paired with the cases they belong to.

        ``events`` needs ``patient_id``, ``encounter_id`` (or None), ``known`` (UTC timestamp or NaT: when
        the record is known for certain) and ``kind`` (a feature kind, ``note`` or ``image``). Returns the
        event rows that attach, each with ``case_id`` (a record attaching to two cases of a patient appears
        twice). Reasons for records of listed patients that attach to no case are added to ``not_attached``.
        """
        if events.empty:
            return events.assign(case_id=pd.Series(dtype=object))
        events = events.reset_index(drop=True)
        events["_event"] = np.arange(len(events))
        cases = self.frame[["case_id", "patient_id", ENCOUNTER_COLUMN, "_index"]].rename(
            columns={ENCOUNTER_COLUMN: "_case_encounter"}
        )
        pairs = events.merge(cases, on="patient_id", how="inner")
        not_attached[NOT_ATTACHED_OTHER_PATIENT] += (
            len(events) - events["patient_id"].isin(self.patients).sum()
        )
        if pairs.empty:
            return pairs.drop(columns=["_event", "_case_encounter", "_index"])
        window = pd.to_timedelta(pairs["kind"].map(windows))
        by_encounter = pairs["_case_encounter"].notna()
        other_encounter = by_encounter & (pairs["encounter_id"].astype(object) != pairs["_case_encounter"])
        has_index = pairs["_index"].notna()
        undated = has_index & pairs["known"].isna()
        after = has_index & ~undated & (pairs["known"] > pairs["_index"])
        before = has_index & ~undated & window.notna() & (pairs["known"] < pairs["_index"] - window)
        # a record that attaches to no case counts once, under the first of these reasons any case gives
        reasons = [
            (~other_encounter & after, NOT_ATTACHED_AFTER_INDEX),
            (~other_encounter & undated, NOT_ATTACHED_UNDATED),
            (~other_encounter & before, NOT_ATTACHED_BEFORE_WINDOW),
            (other_encounter, NOT_ATTACHED_OTHER_ENCOUNTER),
        ]
        attached = ~(other_encounter | undated | after | before)
        rank = pd.Series(len(reasons), index=pairs.index)
        for position, (mask, _) in reversed(list(enumerate(reasons))):
            rank[mask] = position
        ever_attached = set(pairs.loc[attached, "_event"])
        missed = pd.DataFrame({"_event": pairs["_event"], "rank": rank})[~attached]
        missed = missed[~missed["_event"].isin(ever_attached)].groupby("_event")["rank"].min()
        not_attached.update(reasons[int(r)][1] for r in missed)
        return (
            pairs.loc[attached].drop(columns=["_event", "_case_encounter", "_index"]).reset_index(drop=True)
        )
