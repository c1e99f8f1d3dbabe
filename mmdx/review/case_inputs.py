"""One case's inputs read from the cohort directory: image path, lesion mask, note text, vital signs and labs.

The dashboard reads the cohort one case at a time, through the same functions validation uses (path
resolution inside the cohort, note parsing and joining, unit harmonisation), so the note text is exactly the
text that explanation token offsets index into, and the values are in the units the model saw. Nothing is
kept between requests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmdx.data.catalogue import Feature, FeatureCatalogue
from mmdx.data.cohort import GROUND_TRUTH_DIR, NOTES_FILE, PathEscapesCohort, read_cohort, resolve_in_cohort
from mmdx.data.json_limits import JsonLimitExceeded, parse_json_line
from mmdx.data.tabular import aggregate_latest, harmonise_observations
from mmdx.data.text import note_case_id, parse_notes
from mmdx.errors import CohortError, MmdxError

MASKS_DIR = f"{GROUND_TRUTH_DIR}/masks"


@dataclass
class CaseInputs:
    """What the cohort holds about one case.

    Attributes:
        image_path: absolute path of the image file or DICOM folder, ``None`` without an image.
        mask_path: the ground-truth lesion mask (synthetic cohorts), ``None`` when there is none.
        note_text: the case's notes joined in time order (as the model read them), ``None`` without notes.
        values: latest canonical value of each catalogue feature the case has (``key -> value``, in the
            feature's canonical unit), plus numeric case columns (``age``); NaN never appears.
        catalogue: the cohort's feature catalogue (display names, units, reference ranges).
        problems: what could not be read, in words for the reviewer.
        notes_problem: why ``note_text`` is ``None`` when notes.jsonl has lines that could not be read or
            notes of the case that could not be used (to show when the case is known to have notes).
    """

    image_path: Path | None
    mask_path: Path | None
    note_text: str | None
    values: dict[str, float]
    catalogue: FeatureCatalogue
    problems: list[str] = field(default_factory=list)
    notes_problem: str | None = None

    def feature(self, key: str) -> Feature | None:
        try:
            return self.catalogue[key]
        except ValueError:  # ObservationError: not a catalogue feature (e.g. a case-table column)
            return None


def _catalogue(root: Path, spec: dict) -> FeatureCatalogue:
    relative = spec.get("feature_catalogue")
    if not relative:
        return FeatureCatalogue.load()
    try:
        return FeatureCatalogue.load(resolve_in_cohort(root, relative))
    except PathEscapesCohort as exc:
        raise CohortError(f"cohort.yaml: feature_catalogue: {exc}") from None


@dataclass
class _NotesIndex:
    """notes.jsonl lines by their parsed case_id (raw text would miss ids that JSON escapes, e.g. non-ASCII
    characters and quotes written by ``json.dumps``), and the numbers of lines that name no case."""

    by_case: dict[str, list[tuple[int, str]]]
    unreadable: list[int]

    @classmethod
    def build(cls, lines: list[tuple[int, str]], unread: list[int]) -> _NotesIndex:
        by_case: dict[str, list[tuple[int, str]]] = {}
        unreadable = list(unread)
        for number, raw in lines:
            try:
                document = parse_json_line(raw)
            except (JsonLimitExceeded, json.JSONDecodeError):
                unreadable.append(number)
                continue
            case_id = note_case_id(document)
            if case_id is not None:
                by_case.setdefault(case_id, []).append((number, raw))
            else:
                unreadable.append(number)
        return cls(by_case, sorted(unreadable))


def _notes_problem(index: _NotesIndex, issues: list, case_id: str) -> str | None:
    if issues:
        reasons = "; ".join(issue.message for issue in issues[:3])
        return f"The notes of this case in {NOTES_FILE} could not be used: {reasons}."
    if index.unreadable and case_id not in index.by_case:
        shown = ", ".join(map(str, index.unreadable[:10])) + (" ..." if len(index.unreadable) > 10 else "")
        return (
            f"No note of this case could be read; {len(index.unreadable)} line(s) of {NOTES_FILE} could not "
            f"be read (line{'s' if len(index.unreadable) > 1 else ''} {shown}): see the run's validation report."
        )
    return None


class CohortCaseReader:
    """A cohort's files read once, served one case at a time (for tools that read many cases)."""

    def __init__(self, cohort_dir: str | Path, numeric_columns: tuple[str, ...] = ()) -> None:
        self.files = read_cohort(cohort_dir)
        self.catalogue = _catalogue(self.files.root, self.files.spec)
        self.numeric_columns = tuple(numeric_columns)
        self._notes: _NotesIndex | None = None

    def _notes_index(self) -> _NotesIndex:
        if self._notes is None:
            unread = [i.row for i in self.files.read_issues if i.file == NOTES_FILE and i.row is not None]
            self._notes = _NotesIndex.build(self.files.note_lines, unread)
        return self._notes

    def case(self, case_id: str, with_values: bool = True) -> CaseInputs:
        """Read one case. Raises :class:`MmdxError` when the case is not in the cohort; a problem with one
        part of the case is reported in ``problems`` instead. ``with_values=False`` skips the harmonisation
        of the case's observations (``values`` then holds the numeric case columns only)."""
        files = self.files
        rows = files.cases[files.cases["case_id"] == case_id]
        if rows.empty:
            raise MmdxError(
                f"case {case_id!r} is not in the cohort {files.root}; the run was evaluated on another cohort "
                "(start the dashboard with --cohort DIR)"
            )
        row = rows.iloc[0].to_dict()
        problems: list[str] = []

        image_path = None
        if row.get("image"):
            try:
                image_path = resolve_in_cohort(files.root, row["image"])
            except PathEscapesCohort as exc:
                problems.append(f"image not shown: {exc}")

        mask_path = None
        try:
            candidate = resolve_in_cohort(files.root, f"{MASKS_DIR}/{case_id}.nii.gz")
        except PathEscapesCohort:
            candidate = None  # a case id that would escape the cohort has no mask file
        if candidate is not None and candidate.is_file() and candidate.parent == files.root / MASKS_DIR:
            mask_path = candidate

        index = self._notes_index()
        notes = parse_notes(index.by_case.get(case_id, []), {case_id}, NOTES_FILE)
        note_text = notes.joined(case_id)
        notes_problem = (
            None
            if note_text is not None
            else _notes_problem(index, notes.case_issues.get(case_id, []), case_id)
        )

        values: dict[str, float] = {}
        if with_values and files.observations is not None:
            observations = files.observations[files.observations["case_id"] == case_id]
            harmonised = harmonise_observations(
                observations, self.catalogue, {case_id}, files.observations_file or ""
            )
            latest = aggregate_latest(harmonised.table, [case_id], self.catalogue.keys)
            for key, value in latest.iloc[0].items():
                if np.isfinite(value):
                    values[str(key)] = float(value)
            dropped = len(harmonised.case_issues.get(case_id, []))
            if dropped:
                problems.append(
                    f"{dropped} observation(s) of this case were not used (unknown unit or code, implausible "
                    "or non-numeric value); see the run's validation report"
                )
        for column in self.numeric_columns:
            try:
                number = float(row.get(column))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
            if np.isfinite(number):
                values[column] = number
        return CaseInputs(image_path, mask_path, note_text, values, self.catalogue, problems, notes_problem)


def read_case_inputs(
    cohort_dir: str | Path, case_id: str, numeric_columns: tuple[str, ...] = ()
) -> CaseInputs:
    """Read one case from a cohort directory; see :meth:`CohortCaseReader.case`. Raises
    :class:`MmdxError` (a :class:`~mmdx.errors.CohortError`) when the cohort as a whole is unusable."""
    return CohortCaseReader(cohort_dir, numeric_columns).case(case_id)
