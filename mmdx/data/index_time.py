"""What may be known at a case's index time: nothing recorded after it, nothing older than its look-back window.

A case's ``index_time`` (optional column of the cases table, ISO 8601) is the moment its prediction is made.
A model trained on values, notes or images recorded *after* that moment learns from the future -- a lab
drawn once the diagnosis was made, the discharge summary naming it, the follow-up scan -- and looks better in
validation than it can ever be at the bedside. Validation therefore keeps, for a case with an index time,
only what was recorded at or before it:

* an observation or note after the index time is excluded under ``AFTER_INDEX_TIME``; one without a time
  under ``UNDATED_WITH_INDEX_TIME`` (it cannot be shown to precede the index time);
* an image is excluded under ``AFTER_INDEX_TIME`` when its DICOM header says it was acquired later
  (``AcquisitionDateTime``, else ``AcquisitionDate``/``AcquisitionTime``, else the series' and then the
  study's date and time; NIfTI files carry no acquisition time and are kept);
* ``cohort.yaml`` may set a look-back window per kind -- each feature kind of the catalogue (``vital``,
  ``lab``), ``note`` and ``image`` -- as an ISO 8601 duration (``lookback: {vital: P1D, lab: P7D}``);
  anything older than the index time minus its window is excluded under ``BEFORE_LOOKBACK_WINDOW``.

A time given as a date alone (``2024-03-01``) counts as known at the *end* of that day, so a value of the
index day never slips in because its hour was not written down; an ``index_time`` given as a bare date is
the *start* of that day, for the same reason. Times without a zone are UTC (DICOM times
too, unless the header has ``TimezoneOffsetFromUTC``). Cases without an index time are left as they are.

Exclusions are reported once per case and reason (with the affected rows or lines) and counted in the
validation summary under ``index_time``. The importers (:mod:`mmdx.importers`) apply the same rules while
they read a source, so a value after the index time does not even reach the cohort directory.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mmdx.data.catalogue import FeatureCatalogue
from mmdx.data.issues import Issue, IssueCode, Severity
from mmdx.errors import CohortError, did_you_mean

NOTE_KIND = "note"
IMAGE_KIND = "image"
INDEX_TIME_COLUMN = "index_time"
ENCOUNTER_COLUMN = "encounter_id"

_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")
_ONE_DAY = pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
#: at most this many row or line numbers are listed in one issue message
_LISTED = 10


def parse_time(text: object) -> pd.Timestamp | None:
    """An ISO 8601 date or date-time as a UTC timestamp (no zone = UTC); ``None`` when empty.

    Raises ``ValueError`` when ``text`` is not ISO 8601.
    """
    if text is None or (isinstance(text, float) and pd.isna(text)) or str(text).strip() == "":
        return None
    stamp = pd.to_datetime(str(text).strip(), utc=True, format="ISO8601")
    if pd.isna(stamp):
        raise ValueError(f"{text!r} is not an ISO 8601 date-time")
    return stamp


def known_at(text: object) -> pd.Timestamp | None:
    """When a value timed ``text`` is known for certain: the time itself, or the end of the day for a bare date."""
    stamp = parse_time(text)
    if stamp is not None and _DATE_ONLY.match(str(text)):
        return stamp + _ONE_DAY
    return stamp


def parse_duration(value: object, where: str) -> pd.Timedelta:
    """An ISO 8601 duration in days, hours, minutes or seconds (``P7D``, ``PT12H``, ``P1DT6H``).

    Years and months have no fixed length and are refused. Raises :class:`CohortError` naming ``where``.
    """
    text = str(value).strip()
    if not text.upper().startswith("P") or re.search(r"P[^T]*[YM]", text.upper()):
        raise CohortError(
            f"{where}: {value!r} is not an ISO 8601 duration in days/hours/minutes (e.g. P7D, PT12H, P1DT6H); "
            "years and months have no fixed length, write days instead"
        )
    try:
        duration = pd.Timedelta(text.upper())
    except ValueError:
        raise CohortError(f"{where}: {value!r} is not an ISO 8601 duration (e.g. P7D, PT12H)") from None
    if duration <= pd.Timedelta(0):
        raise CohortError(f"{where}: the look-back window must be positive, got {value!r}")
    return duration


def lookback_kinds(catalogue: FeatureCatalogue) -> list[str]:
    """The kinds a look-back window can be set for: the catalogue's feature kinds, ``note`` and ``image``."""
    return sorted({f.kind for f in catalogue}) + [NOTE_KIND, IMAGE_KIND]


def lookback_windows(spec: dict, catalogue: FeatureCatalogue) -> dict[str, pd.Timedelta]:
    """``cohort.yaml``'s ``lookback`` mapping, parsed: kind -> window. Unknown kinds raise :class:`CohortError`."""
    raw = spec.get("lookback") or {}
    kinds = lookback_kinds(catalogue)
    windows = {}
    for kind, value in raw.items():
        if kind not in kinds:
            raise CohortError(
                f"cohort.yaml: lookback.{kind}: unknown kind{did_you_mean(kind, kinds)}; "
                f"kinds are {', '.join(kinds)}"
            )
        windows[kind] = parse_duration(value, f"cohort.yaml: lookback.{kind}")
    return windows


def case_index_times(
    rows: dict[str, dict], file: str, row_numbers: dict[str, int]
) -> tuple[dict[str, pd.Timestamp], dict[str, Issue]]:
    """Parse the ``index_time`` of each case row; returns the times and an ``INDEX_TIME_INVALID`` issue per bad one."""
    times: dict[str, pd.Timestamp] = {}
    invalid: dict[str, Issue] = {}
    for case_id, row in rows.items():
        text = row.get(INDEX_TIME_COLUMN)
        try:
            stamp = parse_time(text)
        except ValueError:
            number = row_numbers.get(case_id)
            invalid[case_id] = Issue(
                IssueCode.INDEX_TIME_INVALID,
                f"row {number}: index_time {text!r} is not ISO 8601 (e.g. 2024-03-01T08:30:00Z); "
                "the case cannot be kept without knowing what precedes it",
                file,
                row=number,
            )
            continue
        if stamp is not None:
            times[case_id] = stamp
    return times, invalid


@dataclass
class IndexTimeExclusions:
    """What the index times and look-back windows removed, for the report.

    ``counts[modality][code]`` counts excluded observation rows, note lines and images by reason code.
    """

    cases_with_index_time: int = 0
    lookback: dict[str, str] = field(default_factory=dict)
    counts: dict[str, Counter] = field(
        default_factory=lambda: {"observations": Counter(), "notes": Counter(), "images": Counter()}
    )

    def summary(self) -> dict:
        return {
            "cases_with_index_time": self.cases_with_index_time,
            "lookback": dict(self.lookback),
            "excluded": {what: dict(sorted(c.items())) for what, c in self.counts.items()},
        }


def _listed(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_LISTED])
    return shown + (f" and {len(numbers) - _LISTED} more" if len(numbers) > _LISTED else "")


def restrict_observations(
    table: pd.DataFrame,
    raw_times: pd.Series | None,
    index_times: dict[str, pd.Timestamp],
    windows: dict[str, pd.Timedelta],
    catalogue: FeatureCatalogue,
    file: str,
    exclusions: IndexTimeExclusions,
) -> tuple[pd.DataFrame, dict[str, list[Issue]]]:
    """Drop harmonised observation rows that a case's index time or look-back window excludes.

    ``table``: the harmonised observations (``case_id, feature, value, time, row``); ``raw_times``: the
    file's ``time`` column indexed by 1-based row number (to recognise bare dates), or ``None``.
    Returns the kept rows and one issue per case and reason.
    """
    if table.empty or not index_times:
        return table, {}
    index = pd.to_datetime(table["case_id"].map(index_times), utc=True)
    has_index = index.notna()
    when = pd.to_datetime(table["time"], utc=True)
    if raw_times is not None:
        raw = table["row"].map(raw_times)
        date_only = raw.astype("string").str.match(_DATE_ONLY.pattern).fillna(False).astype(bool)
        when = when.where(~date_only, when + _ONE_DAY)
    kind = table["feature"].map({f.key: f.kind for f in catalogue})
    window = pd.to_timedelta(kind.map(windows))
    undated = has_index & when.isna()
    after = has_index & ~undated & (when > index)
    before = has_index & ~undated & ~after & window.notna() & (when < index - window)
    issues: dict[str, list[Issue]] = {}
    for code, mask, what in (
        (IssueCode.UNDATED_WITH_INDEX_TIME, undated, "without a time"),
        (IssueCode.AFTER_INDEX_TIME, after, "recorded after the index time"),
        (IssueCode.BEFORE_LOOKBACK_WINDOW, before, "older than their look-back window"),
    ):
        if not mask.any():
            continue
        exclusions.counts["observations"][str(code)] += int(mask.sum())
        for case_id, rows in table.loc[mask].groupby("case_id", sort=False)["row"]:
            numbers = sorted(int(r) for r in rows)
            issues.setdefault(str(case_id), []).append(
                Issue(
                    code,
                    f"{len(numbers)} observation row(s) {what} excluded (index time "
                    f"{index_times[case_id].isoformat()}; rows {_listed(numbers)})",
                    file,
                    Severity.WARNING,
                    row=numbers[0],
                )
            )
    keep = ~(undated | after | before)
    return table.loc[keep].reset_index(drop=True), issues


def restrict_notes(
    by_case: dict,
    raw_times: dict[int, object],
    index_times: dict[str, pd.Timestamp],
    windows: dict[str, pd.Timedelta],
    file: str,
    exclusions: IndexTimeExclusions,
) -> dict[str, list[Issue]]:
    """Remove, in place, the notes of ``by_case`` (case_id -> list of ``Note``) that the index time excludes.

    ``raw_times`` maps a notes.jsonl line number to its raw ``time`` value (to recognise bare dates).
    Returns one issue per case and reason.
    """
    window = windows.get(NOTE_KIND)
    issues: dict[str, list[Issue]] = {}
    for case_id, notes in list(by_case.items()):
        index = index_times.get(case_id)
        if index is None:
            continue
        excluded: dict[IssueCode, list[int]] = {}
        kept = []
        for note in notes:
            when = known_at(raw_times.get(note.line)) if note.time is not None else None
            if when is None:
                code = IssueCode.UNDATED_WITH_INDEX_TIME
            elif when > index:
                code = IssueCode.AFTER_INDEX_TIME
            elif window is not None and when < index - window:
                code = IssueCode.BEFORE_LOOKBACK_WINDOW
            else:
                kept.append(note)
                continue
            excluded.setdefault(code, []).append(note.line)
        if kept:
            by_case[case_id] = kept
        else:
            del by_case[case_id]
        for code, lines in excluded.items():
            exclusions.counts["notes"][str(code)] += len(lines)
            what = {
                IssueCode.UNDATED_WITH_INDEX_TIME: "without a time",
                IssueCode.AFTER_INDEX_TIME: "written after the index time",
                IssueCode.BEFORE_LOOKBACK_WINDOW: "older than the note look-back window",
            }[code]
            issues.setdefault(case_id, []).append(
                Issue(
                    code,
                    f"{len(lines)} note(s) {what} excluded (index time "
                    f"{index.isoformat()}; lines {_listed(sorted(lines))})",
                    file,
                    Severity.WARNING,
                    row=min(lines),
                )
            )
    return issues


def _dicom_moment(date: str | None, time: str | None, offset: str | None) -> pd.Timestamp | None:
    date = (date or "").strip()
    if not re.fullmatch(r"\d{8}", date):
        return None
    time = (time or "").strip()
    digits = re.match(r"(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?", time)
    if digits:
        hh, mm, ss, frac = digits.groups()
        clock = f"{hh}:{mm or '00'}:{ss or '00'}{frac or ''}"
        stamp = pd.Timestamp(f"{date[:4]}-{date[4:6]}-{date[6:]}T{clock}")
    else:
        stamp = pd.Timestamp(f"{date[:4]}-{date[4:6]}-{date[6:]}") + _ONE_DAY
    zone = re.fullmatch(r"([+-])(\d{2})(\d{2})", (offset or "").strip())
    if zone:
        sign = 1 if zone.group(1) == "+" else -1
        stamp = stamp - sign * pd.Timedelta(hours=int(zone.group(2)), minutes=int(zone.group(3)))
    return stamp.tz_localize("UTC")


def dicom_acquired(path: Path) -> pd.Timestamp | None:
    """When a DICOM image (a file, or the first DICOM file of a series folder) was acquired, in UTC.

    ``None`` when the path is not DICOM or its header has no usable date. A date without a time counts as the
    end of that day.
    """
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        try:
            ds = dcmread(file, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError):
            continue
        offset = ds.get("TimezoneOffsetFromUTC")
        stamp_text = str(ds.get("AcquisitionDateTime") or "").strip()
        if len(stamp_text) >= 8:
            zone = re.search(r"[+-]\d{4}$", stamp_text)
            body = stamp_text[: zone.start()] if zone else stamp_text
            moment = _dicom_moment(body[:8], body[8:] or None, zone.group(0) if zone else offset)
            if moment is not None:
                return moment
        for date_tag, time_tag in (
            ("AcquisitionDate", "AcquisitionTime"),
            ("SeriesDate", "SeriesTime"),
            ("StudyDate", "StudyTime"),
        ):
            moment = _dicom_moment(ds.get(date_tag), ds.get(time_tag), offset)
            if moment is not None:
                return moment
        return None
    return None


def restrict_images(
    image_paths: dict[str, Path],
    image_files: dict[str, str],
    index_times: dict[str, pd.Timestamp],
    windows: dict[str, pd.Timedelta],
    exclusions: IndexTimeExclusions,
) -> dict[str, list[Issue]]:
    """Drop, in place, the images of ``image_paths`` acquired after their case's index time (or before its
    image look-back window). ``image_files`` gives the path as written in the cases table, for messages."""
    window = windows.get(IMAGE_KIND)
    issues: dict[str, list[Issue]] = {}
    for case_id in [c for c in image_paths if c in index_times]:
        acquired = dicom_acquired(image_paths[case_id])
        if acquired is None:
            continue
        index = index_times[case_id]
        if acquired > index:
            code, what = IssueCode.AFTER_INDEX_TIME, "after"
        elif window is not None and acquired < index - window:
            code, what = IssueCode.BEFORE_LOOKBACK_WINDOW, "longer before than the image look-back window of"
        else:
            continue
        del image_paths[case_id]
        exclusions.counts["images"][str(code)] += 1
        issues.setdefault(case_id, []).append(
            Issue(
                code,
                f"image acquired {acquired.isoformat()}, {what} the index time {index.isoformat()}; excluded",
                image_files.get(case_id),
                Severity.WARNING,
            )
        )
    return issues


def enforce_index_time(
    files,
    catalogue: FeatureCatalogue,
    reports: dict,
    rows: dict[str, dict],
    observations: pd.DataFrame,
    notes,
    image_paths: dict[str, Path],
) -> tuple[pd.DataFrame, dict]:
    """Apply index times and look-back windows to what validation kept so far (one call from validation).

    ``files``: the :class:`~mmdx.data.cohort.CohortFiles`; ``reports``/``rows``: the case reports and raw rows
    of the first row of each case_id; ``notes``: the :class:`~mmdx.data.text.ParsedNotes` (changed in place);
    ``image_paths``: case_id -> usable image (changed in place). Returns the kept observations and the
    ``index_time`` part of the validation summary. Issues are appended to the case reports.
    """
    import json

    windows = lookback_windows(files.spec, catalogue)
    exclusions = IndexTimeExclusions(
        lookback={k: str(v) for k, v in (files.spec.get("lookback") or {}).items()}
    )
    index_times, invalid = case_index_times(rows, files.cases_file, {c: r.row for c, r in reports.items()})
    for case_id, issue in invalid.items():
        reports[case_id].issues.append(issue)
    exclusions.cases_with_index_time = len(index_times)
    if not index_times:
        return observations, exclusions.summary()

    raw_obs_times = None
    if files.observations is not None and "time" in files.observations.columns:
        raw_obs_times = pd.Series(
            files.observations["time"].to_numpy(), index=range(1, len(files.observations) + 1)
        )
    kept, obs_issues = restrict_observations(
        observations,
        raw_obs_times,
        index_times,
        windows,
        catalogue,
        files.observations_file or "",
        exclusions,
    )
    note_lines = {n.line for cid in index_times for n in notes.by_case.get(cid, []) if n.time is not None}
    raw_note_times: dict[int, object] = {}
    for number, raw in files.note_lines:
        if number in note_lines:
            raw_note_times[number] = json.loads(raw).get("time")
    note_issues = restrict_notes(
        notes.by_case, raw_note_times, index_times, windows, "notes.jsonl", exclusions
    )
    image_files = {cid: rows[cid].get("image") for cid in image_paths}
    image_issues = restrict_images(image_paths, image_files, index_times, windows, exclusions)
    for found in (obs_issues, note_issues, image_issues):
        for case_id, issues in found.items():
            reports[case_id].issues.extend(issues)
    return kept, exclusions.summary()
