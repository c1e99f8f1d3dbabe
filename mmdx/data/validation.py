"""Cohort validation: every case, file and row is accounted for with a typed reason code.

Each case ends *accepted* (nothing to report), *warning* (usable, but something was dropped or flagged: an
unreadable image, an observation in an unknown unit, ...) or *rejected* (not used at all: a duplicate
case_id, an invalid label, a patient in two splits, a path escaping the cohort, or nothing usable left).
Problems that belong to no case (a malformed notes line, an observation for an unknown case) are listed under
``files``. Validation never raises for a bad case or file; only a cohort that is unusable as a whole (no
``cohort.yaml``, no cases table) raises :class:`~mmdx.errors.CohortError`.

The result, :class:`ValidatedCohort`, is also the only way cohort data enters training and prediction: the
dataset is built from what validation accepted.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from mmdx.data.catalogue import FeatureCatalogue
from mmdx.data.cohort import (
    CohortFiles,
    PathEscapesCohort,
    case_row_document,
    parse_label,
    parse_number,
    read_cohort,
    resolve_in_cohort,
)
from mmdx.data.ground_truth import check_ground_truth
from mmdx.data.index_time import enforce_index_time
from mmdx.data.issues import Issue, IssueCode, Severity
from mmdx.data.schemas import schema_errors
from mmdx.data.splits import DEFAULT_FRACTIONS, SPLITS, patient_level_split
from mmdx.data.tabular import harmonise_observations
from mmdx.data.text import parse_notes
from mmdx.errors import CohortError
from mmdx.keys import MODALITIES, Modality
from mmdx.owner_only import write_text_owner_only
from mmdx.workers import ignore_ctrl_c

#: issue codes that reject the whole case (others drop only the affected file, row or modality)
REJECTING = frozenset(
    {
        IssueCode.SCHEMA_VIOLATION,
        IssueCode.DUPLICATE_CASE_ID,
        IssueCode.LABEL_INVALID,
        IssueCode.PATIENT_IN_TWO_SPLITS,
        IssueCode.PATH_ESCAPES_COHORT,
        IssueCode.NO_USABLE_MODALITY,
        IssueCode.INDEX_TIME_INVALID,
    }
)

Progress = Callable[[int, int], None]


@dataclass
class CaseReport:
    case_id: str
    row: int
    status: str  # "accepted" | "warning" | "rejected"
    issues: list[Issue] = field(default_factory=list)
    modalities: dict[str, bool] = field(default_factory=dict)
    split: str | None = None

    def to_dict(self) -> dict:
        return {
            "case_id": self.case_id,
            "row": self.row,
            "status": self.status,
            "split": self.split,
            "modalities": self.modalities,
            "issues": [i.to_dict() for i in self.issues],
        }


@dataclass
class ValidationReport:
    cohort: dict
    cases: list[CaseReport]
    files: list[Issue]
    summary: dict
    usable: bool

    def to_dict(self) -> dict:
        return {
            "schema_version": 1,
            "cohort": self.cohort,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "usable": self.usable,
            "summary": self.summary,
            "cases": [c.to_dict() for c in self.cases],
            "files": [i.to_dict() for i in self.files],
        }

    def write(self, path: str | Path) -> None:
        """Write the report as JSON, readable by its owner only (it lists case IDs)."""
        write_text_owner_only(path, json.dumps(self.to_dict(), indent=1))


@dataclass
class ValidatedCohort:
    """What validation kept, ready for the dataset.

    ``cases``: one row per usable case with ``case_id, patient_id, label`` (float, NaN = unlabelled),
    ``split``, ``split_given`` (False when mmdx assigned the split), ``image_path`` (absolute path or None),
    the presence of each modality (``has_image``, ``has_tabular``, ``has_text``) and every other column of
    the cases table (demographics, site, ...).
    ``observations``: canonical observations of those cases (see ``mmdx.data.tabular``).
    ``notes``: the joined note text of each case that has one.
    """

    root: Path
    spec: dict
    catalogue: FeatureCatalogue
    cases: pd.DataFrame
    observations: pd.DataFrame
    notes: dict[str, str]
    report: ValidationReport
    #: case_id -> facts of its decoded image (``mmdx.data.plan.ImageFacts.to_dict``), for the image plan
    image_facts: dict[str, dict] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec.get("name", self.root.name))

    def split(self, name: str) -> pd.DataFrame:
        return self.cases[self.cases["split"] == name]

    def fingerprint(self) -> str:
        """SHA-256 over the cohort's files (paths, sizes, contents): changes when any input byte changes."""
        return fingerprint_directory(self.root)


def fingerprint_directory(root: Path, exclude: Iterable[str] = (".mmdx_cache",)) -> str:
    digest = hashlib.sha256()
    excluded = set(exclude)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if excluded.intersection(rel.parts):
            continue
        digest.update(str(rel).encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _check_image_job(args: tuple[str, str, int | None]) -> tuple[list[Issue], dict | None]:
    from mmdx.data.plan import inspect_image

    path, root, dims = args
    return inspect_image(Path(path), root=Path(root), dims=dims)


def validate_cohort(
    root: str | Path,
    check_images: bool = True,
    workers: int = 1,
    progress: Progress | None = None,
    split_seed: int | None = None,
) -> ValidatedCohort:
    """Validate a cohort directory and return what can be used plus the full report."""
    files = read_cohort(root)
    spec = files.spec
    catalogue = _load_catalogue(files)
    dims = (spec.get("image") or {}).get("dims")
    reports: list[CaseReport] = []
    file_issues: list[Issue] = list(files.read_issues)

    # 1. the cases table, row by row
    rows = files.cases.to_dict(orient="records")
    first_row_of: dict[str, int] = {}
    for i, row in enumerate(rows, start=1):
        case_id = row.get("case_id") or f"(row {i})"
        report = CaseReport(case_id=str(case_id), row=i, status="accepted", split=row.get("split"))
        reports.append(report)
        label_issue = _label_issue(row.get("label"), i, files.cases_file)
        if label_issue is not None:
            report.issues.append(label_issue)
        doc = case_row_document(row)
        if "label" in doc and doc["label"] not in (0, 1, None):
            doc["label"] = None  # already reported as LABEL_INVALID
        for error in schema_errors("case", doc):
            report.issues.append(
                Issue(IssueCode.SCHEMA_VIOLATION, f"row {i}: {error}", files.cases_file, row=i)
            )
        if row.get("case_id") is None:
            continue
        if case_id in first_row_of:
            report.issues.append(
                Issue(
                    IssueCode.DUPLICATE_CASE_ID,
                    f"row {i}: case_id {case_id} already used on row {first_row_of[case_id]}; this row is ignored",
                    files.cases_file,
                    row=i,
                )
            )
        else:
            first_row_of[case_id] = i

    primary = {r.case_id: r for r in reports if first_row_of.get(r.case_id) == r.row}
    primary_rows = {r.case_id: rows[r.row - 1] for r in primary.values()}

    # 2. splits: one patient, one split; missing splits are made at patient level
    _check_splits(files, primary, primary_rows)
    split_assigned = _assign_missing_splits(spec, primary, primary_rows, split_seed)

    # 3. images
    image_paths: dict[str, Path] = {}
    image_jobs: list[tuple[str, str, int | None]] = []
    for case_id, row in primary_rows.items():
        rel = row.get("image")
        if not rel:
            continue
        try:
            path = resolve_in_cohort(files.root, rel)
        except PathEscapesCohort as exc:
            primary[case_id].issues.append(Issue(IssueCode.PATH_ESCAPES_COHORT, str(exc), rel))
            continue
        image_paths[case_id] = path
        image_jobs.append((str(path), str(files.root), dims))
    image_issues: dict[str, list[Issue]] = {}
    image_facts: dict[str, dict] = {}
    if check_images and image_jobs:
        ids = list(image_paths)
        results: Iterable[tuple[list[Issue], dict | None]]
        if workers > 1 and len(image_jobs) > 4:
            pool = ProcessPoolExecutor(max_workers=workers, initializer=ignore_ctrl_c)
            results = pool.map(_check_image_job, image_jobs, chunksize=4)
        else:
            pool = None
            results = map(_check_image_job, image_jobs)
        try:
            for done, (case_id, (issues, facts)) in enumerate(zip(ids, results, strict=True), start=1):
                image_issues[case_id] = issues
                if facts is not None:
                    image_facts[case_id] = facts
                if progress:
                    progress(done, len(image_jobs))
        finally:
            if pool is not None:
                pool.shutdown()
    for case_id, issues in image_issues.items():
        primary[case_id].issues.extend(issues)
        if any(i.severity == Severity.ERROR for i in issues):
            image_paths.pop(case_id)

    # 4. observations and notes
    known = set(primary)
    observations = pd.DataFrame(columns=["case_id", "feature", "value", "time", "row"])
    n_obs_rows = 0
    if files.observations is not None:
        harmonised = harmonise_observations(
            files.observations, catalogue, known, files.observations_file or ""
        )
        observations = harmonised.table
        n_obs_rows = harmonised.n_rows
        for case_id, issues in harmonised.case_issues.items():
            primary[case_id].issues.extend(issues)
        file_issues.extend(harmonised.unattached)
    file_issues.extend(check_ground_truth(files.root))
    notes = parse_notes(files.note_lines, known, "notes.jsonl")
    for case_id, issues in notes.case_issues.items():
        primary[case_id].issues.extend(issues)
    file_issues.extend(notes.unattached)
    # 4b. nothing recorded after a case's index time, nor older than its look-back window
    observations, index_time_summary = enforce_index_time(
        files, catalogue, primary, primary_rows, observations, notes, image_paths
    )

    # 5. modalities and status of every case
    with_obs = set(observations["case_id"]) if not observations.empty else set()
    for report in reports:
        if report.case_id in primary and primary[report.case_id] is report:
            report.modalities = {
                Modality.IMAGE.value: report.case_id in image_paths,
                Modality.TABULAR.value: report.case_id in with_obs,
                Modality.TEXT.value: notes.joined(report.case_id) is not None,
            }
            if not any(report.modalities.values()) and not _rejected(report):
                report.issues.append(
                    Issue(
                        IssueCode.NO_USABLE_MODALITY,
                        "no usable image, observation or note remains for this case",
                        files.cases_file,
                        row=report.row,
                    )
                )
        report.status = "rejected" if _rejected(report) else ("warning" if report.issues else "accepted")

    usable_ids = [r.case_id for r in primary.values() if r.status != "rejected"]
    usable = set(usable_ids)
    cases = _cases_frame(usable_ids, primary, primary_rows, image_paths)
    observations = observations[observations["case_id"].isin(set(usable_ids))].reset_index(drop=True)
    joined = {cid: text for cid in usable_ids if (text := notes.joined(cid)) is not None}

    summary = _summary(
        reports, file_issues, cases, n_obs_rows, len(observations), notes.n_lines, split_assigned
    )
    summary["index_time"] = index_time_summary
    report = ValidationReport(
        cohort={"name": files.name, "path": str(files.root), "version": str(spec.get("version"))},
        cases=reports,
        files=file_issues,
        summary=summary,
        usable=len(cases) > 0,
    )
    return ValidatedCohort(
        root=files.root,
        spec=spec,
        catalogue=catalogue,
        cases=cases,
        observations=observations,
        notes=joined,
        report=report,
        image_facts={c: f for c, f in image_facts.items() if c in usable and c in image_paths},
    )


def _label_issue(label: str | None, row: int, file: str) -> Issue | None:
    try:
        parse_label(label)
    except ValueError as exc:
        return Issue(IssueCode.LABEL_INVALID, f"row {row}: {exc}", file, row=row)
    return None


def _label_or_none(label: str | None) -> float | None:
    try:
        value = parse_label(label)
    except ValueError:
        return None
    return None if value is None else float(value)


def attach_issues(
    cohort: ValidatedCohort, issues: dict[str, list[Issue]], drop_images: Iterable[str] = ()
) -> None:
    """Record issues found after validation (e.g. by the image plan) in ``cohort``'s report, and drop the
    image of each case in ``drop_images``. A case left with no usable modality is rejected and leaves
    ``cohort.cases``. Statuses and the summary are updated."""
    dropped = set(drop_images)
    if not issues and not dropped:
        return
    by_case = {r.case_id: r for r in cohort.report.cases if r.status != "rejected"}
    rejected: set[str] = set()
    for case_id, found in issues.items():
        report = by_case.get(case_id)
        if report is not None:
            report.issues.extend(found)
    cases = cohort.cases
    for case_id in dropped:
        report = by_case.get(case_id)
        if report is None:
            continue
        report.modalities[Modality.IMAGE.value] = False
        if not any(report.modalities.values()):
            report.issues.append(
                Issue(
                    IssueCode.NO_USABLE_MODALITY, "no usable image, observation or note remains for this case"
                )
            )
            rejected.add(case_id)
    if dropped:
        mask = cases["case_id"].isin(dropped)
        cases.loc[mask, "has_image"] = False
        cases.loc[mask, "image_path"] = None
        for case_id in dropped:
            cohort.image_facts.pop(case_id, None)
    for report in by_case.values():
        report.status = "rejected" if _rejected(report) else ("warning" if report.issues else "accepted")
    if rejected:
        cohort.cases = cases[~cases["case_id"].isin(rejected)].reset_index(drop=True)
        cohort.observations = cohort.observations[~cohort.observations["case_id"].isin(rejected)]
        cohort.notes = {c: t for c, t in cohort.notes.items() if c not in rejected}
    old = cohort.report.summary
    # recounted; what only validation itself knows (the index-time exclusions) is kept as it was
    cohort.report.summary = old | _summary(
        cohort.report.cases,
        cohort.report.files,
        cohort.cases,
        old["observation_rows"],
        old["observation_rows_used"] if not rejected else len(cohort.observations),
        old["note_lines"],
        old["splits_assigned_by_mmdx"],
    )
    cohort.report.usable = len(cohort.cases) > 0


def _rejected(report: CaseReport) -> bool:
    return any(i.code in REJECTING for i in report.issues)


def _load_catalogue(files: CohortFiles) -> FeatureCatalogue:
    rel = files.spec.get("feature_catalogue")
    if not rel:
        return FeatureCatalogue.load()
    try:
        return FeatureCatalogue.load(resolve_in_cohort(files.root, rel))
    except PathEscapesCohort as exc:
        raise CohortError(f"cohort.yaml: feature_catalogue: {exc}") from None


def _check_splits(files: CohortFiles, primary: dict[str, CaseReport], rows: dict[str, dict]) -> None:
    splits_of: dict[str, set[str]] = {}
    for case_id, row in rows.items():
        split = row.get("split")
        if split is not None and split in SPLITS and not _rejected(primary[case_id]):
            splits_of.setdefault(row.get("patient_id") or "", set()).add(split)
    for case_id, row in rows.items():
        seen = splits_of.get(row.get("patient_id") or "", set())
        if len(seen) > 1:
            primary[case_id].issues.append(
                Issue(
                    IssueCode.PATIENT_IN_TWO_SPLITS,
                    f"patient {row.get('patient_id')} has cases in {', '.join(sorted(seen))}; "
                    "assign all of a patient's cases to one split",
                    files.cases_file,
                    row=primary[case_id].row,
                )
            )


def _assign_missing_splits(
    spec: dict, primary: dict[str, CaseReport], rows: dict[str, dict], seed: int | None
) -> int:
    """Give cases without a split the split of their patient, or a new patient-level split. Returns how many."""
    patient_split = {}
    for row in rows.values():
        if row.get("split") in SPLITS:
            patient_split.setdefault(row.get("patient_id"), row["split"])
    todo = [cid for cid, row in rows.items() if row.get("split") not in SPLITS]
    if not todo:
        return 0
    fresh = [cid for cid in todo if rows[cid].get("patient_id") not in patient_split]
    if fresh:
        fractions = spec.get("split_fractions", DEFAULT_FRACTIONS)
        labels = [_label_or_none(rows[c].get("label")) for c in fresh]
        seed = seed if seed is not None else int(spec.get("split_seed", 0))
        for cid, split in zip(
            fresh,
            patient_level_split([rows[c].get("patient_id") for c in fresh], labels, fractions, seed),
            strict=True,
        ):
            patient_split[rows[cid].get("patient_id")] = split
    for cid in todo:
        primary[cid].split = patient_split[rows[cid].get("patient_id")]
    return len(todo)


def _cases_frame(
    ids: list[str], primary: dict[str, CaseReport], rows: dict[str, dict], images: dict[str, Path]
) -> pd.DataFrame:
    records = []
    for case_id in ids:
        row = dict(rows[case_id])
        label = _label_or_none(row.get("label"))
        row["label"] = label if label is not None else float("nan")
        row["split_given"] = row.get("split") in SPLITS  # False: assigned by mmdx
        report = primary[case_id]
        row["split"] = report.split
        row["image_path"] = str(images[case_id]) if case_id in images else None
        for modality in MODALITIES:
            row[f"has_{modality.value}"] = bool(report.modalities.get(modality.value))
        if row.get("age") is not None:
            try:
                row["age"] = parse_number(row["age"])
            except ValueError:
                row["age"] = float("nan")
        records.append(row)
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        frame = pd.DataFrame(columns=["case_id", "patient_id", "label", "split", "image_path"])
    return frame.reset_index(drop=True)


def _summary(
    reports: list[CaseReport],
    file_issues: list[Issue],
    cases: pd.DataFrame,
    obs_rows: int,
    obs_used: int,
    note_lines: int,
    split_assigned: int,
) -> dict:
    statuses = Counter(r.status for r in reports)
    codes: Counter[str] = Counter()
    for report in reports:
        codes.update(str(i.code) for i in report.issues)
    codes.update(str(i.code) for i in file_issues)
    per_split = {}
    for split in SPLITS:
        part = cases[cases["split"] == split] if not cases.empty else cases
        per_split[split] = {
            "cases": int(len(part)),
            "positive": int((part["label"] == 1).sum()) if len(part) else 0,
            "unlabelled": int(part["label"].isna().sum()) if len(part) else 0,
        }
    presence = {}
    if not cases.empty:
        for modality in MODALITIES:
            presence[modality.value] = int(cases[f"has_{modality.value}"].sum())
        pattern = cases[[f"has_{m.value}" for m in MODALITIES]].apply(
            lambda r: "+".join(m.value for m, v in zip(MODALITIES, r, strict=True) if v) or "none", axis=1
        )
        patterns = {str(k): int(v) for k, v in pattern.value_counts().items()}
    else:
        patterns = {}
    return {
        "rows": len(reports),
        "accepted": statuses.get("accepted", 0),
        "warning": statuses.get("warning", 0),
        "rejected": statuses.get("rejected", 0),
        "usable_cases": int(len(cases)),
        "issues_by_code": dict(sorted(codes.items())),
        "observation_rows": obs_rows,
        "observation_rows_used": obs_used,
        "note_lines": note_lines,
        "splits": per_split,
        "splits_assigned_by_mmdx": split_assigned,
        "modality_presence": presence,
        "modality_patterns": patterns,
    }
