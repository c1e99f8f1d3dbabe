"""``mmdx import dicomweb URL COHORT``: fetch the image series a cohort references from a PACS.

A cohort may name its images by reference instead of by path: an ``image`` cell
``dicomweb:<StudyInstanceUID>/<SeriesInstanceUID>`` says "this series, on the DICOMweb server". The import
lists each referenced series' instances with QIDO-RS, retrieves them with WADO-RS (``transfer-syntax=*``:
the stored bytes, not a transcoded copy) and writes them to::

    COHORT/images/dicomweb/<SeriesInstanceUID>/<SOPInstanceUID>.dcm
    COHORT/images/dicomweb/<SeriesInstanceUID>/.mmdx-dicomweb.json    written once the series is complete

Then the cases table is rewritten: ``image`` becomes the local folder (``images/dicomweb/<series>``), or the
file itself for a series of one instance (a 2D image, read as the single DICOM file it was), and the
reference moves to a column ``image_source``, so the table validates and trains like any other, and says
where each image came from. A series used by several cases is fetched once.

**Resumable.** Each instance is written under a hidden temporary name and renamed, so a file that exists is
complete. A series with its ``.mmdx-dicomweb.json`` is not asked for again; an interrupted one is listed
again and only its missing instances are fetched. Running the import twice is harmless.

**Bounded.** At most ``parallel`` requests are in flight (a thread pool, one HTTP session per thread).

**Nothing is dropped silently.** A malformed reference, a series the server does not have, an instance it
fails to deliver (or one of another series), an unreachable server or refused credentials each give the
case a typed issue (``DICOMWEB_REFERENCE_INVALID``, ``SERIES_NOT_FOUND``, ``DICOMWEB_RETRIEVE_FAILED``,
``PACS_UNREACHABLE``) in the result and in ``COHORT/dicomweb_import.json``; the case keeps its reference,
so a later run retries it, and ``mmdx validate`` reports its image as missing until then. Once the server
is unreachable or refuses the credentials, the remaining series are not tried (each would wait for the
same timeout) and get ``PACS_UNREACHABLE`` too.

UIDs from the cohort and from the server are checked to be DICOM UIDs (digits and dots) before they name a
file, so neither can write outside the cohort.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mmdx.data.issues import Issue, IssueCode
from mmdx.dicomweb.connection import (
    DicomwebError,
    DicomwebFailure,
    DicomwebSettings,
    add_connection_arguments,
    open_client,
    open_session,
    reporting_failures,
)
from mmdx.errors import CohortError, MmdxError
from mmdx.importers.registry import IMPORTERS, ImporterSpec

if TYPE_CHECKING:  # pandas is imported where a table is read: the command line lists every source
    import pandas as pd

log = logging.getLogger(__name__)

SCHEME = "dicomweb:"
IMAGE_FOLDER = Path("images") / "dicomweb"
COMPLETE_MARKER = ".mmdx-dicomweb.json"
REPORT = "dicomweb_import.json"
SOURCE_COLUMN = "image_source"
DEFAULT_PARALLEL = 4
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
#: Ask for the stored transfer syntax: what the PACS holds, byte for byte, rather than a transcoded copy.
_ORIGINAL_SYNTAX = (("application/dicom", "*"),)


@dataclass(frozen=True)
class SeriesReference:
    study: str
    series: str

    @property
    def folder(self) -> Path:
        """The series' folder, relative to the cohort."""
        return IMAGE_FOLDER / self.series

    def __str__(self) -> str:
        return f"{SCHEME}{self.study}/{self.series}"


def is_uid(value: str) -> bool:
    return len(value) <= 64 and bool(_UID.match(value))


def parse_reference(cell: str) -> SeriesReference:
    """``dicomweb:<StudyInstanceUID>/<SeriesInstanceUID>`` -> :class:`SeriesReference`; raises ``ValueError``
    saying what is wrong."""
    body = cell[len(SCHEME) :].strip()
    parts = body.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"'{cell}' is not {SCHEME}<StudyInstanceUID>/<SeriesInstanceUID>")
    for name, uid in zip(("StudyInstanceUID", "SeriesInstanceUID"), parts, strict=True):
        if not is_uid(uid):
            raise ValueError(f"'{cell}': {name} '{uid}' is not a DICOM UID (digits and dots, at most 64)")
    return SeriesReference(parts[0], parts[1])


@dataclass
class DicomwebImportResult:
    """What an import did. ``issues`` name the cases table row of each case that did not get its image."""

    server: str
    series_fetched: int = 0
    series_already_present: int = 0
    instances_fetched: int = 0
    cases_rewritten: int = 0
    issues: list[Issue] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "server": self.server,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "series_fetched": self.series_fetched,
            "series_already_present": self.series_already_present,
            "instances_fetched": self.instances_fetched,
            "cases_rewritten": self.cases_rewritten,
            "seconds": round(self.seconds, 3),
            "issues": [i.to_dict() for i in self.issues],
        }


class _SeriesProblem(Exception):
    def __init__(self, code: IssueCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _cases_path(cohort: Path) -> Path:
    from mmdx.data.cohort import CASES_FILES

    found = [cohort / name for name in CASES_FILES if (cohort / name).is_file()]
    if not found:
        raise CohortError(f"{cohort} has no cases.csv or cases.parquet; is it a cohort directory?")
    if len(found) > 1:
        raise CohortError(f"{cohort}: both {found[0].name} and {found[1].name} exist; keep exactly one")
    return found[0]


def _read_cases(path: Path) -> pd.DataFrame:
    from mmdx.data.cohort import read_table_file

    return read_table_file(path)[0]


def _write_cases(path: Path, cases: pd.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        cases.to_parquet(tmp, index=False)
    else:
        cases.to_csv(tmp, index=False, encoding="utf-8")
    os.replace(tmp, path)


def _local_image(cohort: Path, reference: SeriesReference) -> str | None:
    """The local image path (relative to the cohort) of a completely fetched series, else ``None``."""
    marker = cohort / reference.folder / COMPLETE_MARKER
    try:
        image = str(json.loads(marker.read_text(encoding="utf-8"))["image"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    expected = {reference.folder.as_posix()} | {
        f"{reference.folder.as_posix()}/{p.name}" for p in (cohort / reference.folder).glob("*.dcm")
    }
    return image if image in expected and (cohort / image).exists() else None


class _Fetcher:
    """Lists and retrieves instances with one DICOMweb client per worker thread."""

    def __init__(self, settings: DicomwebSettings) -> None:
        self.settings = settings
        self._local = threading.local()
        self._sessions: list = []
        self._lock = threading.Lock()

    def client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            session = open_session(self.settings)
            with self._lock:
                self._sessions.append(session)
            client = self._local.client = open_client(self.settings, session)
        return client

    def close(self) -> None:
        for session in self._sessions:
            session.close()

    def instances(self, reference: SeriesReference) -> list[str]:
        action = f"listing the instances of {reference}"
        try:
            with reporting_failures(self.settings, action):
                found = self.client().search_for_instances(
                    reference.study, reference.series, fields=["00080018"], get_remaining=True
                )
        except DicomwebError as exc:
            if exc.failure == DicomwebFailure.NOT_FOUND:
                raise _SeriesProblem(
                    IssueCode.SERIES_NOT_FOUND, f"{reference} is not on the server"
                ) from None
            raise
        uids = []
        for item in found:
            values = item.get("00080018", {}).get("Value") or []
            uid = str(values[0]) if values else ""
            if not is_uid(uid):
                raise _SeriesProblem(
                    IssueCode.DICOMWEB_RETRIEVE_FAILED,
                    f"the server listed an instance of {reference} with an invalid SOPInstanceUID {uid!r}",
                )
            uids.append(uid)
        if not uids:
            raise _SeriesProblem(
                IssueCode.SERIES_NOT_FOUND, f"{reference} is not on the server (no instance)"
            )
        return sorted(set(uids))

    def retrieve(self, cohort: Path, reference: SeriesReference, sop: str) -> None:
        target = cohort / reference.folder / f"{sop}.dcm"
        action = f"retrieving instance {sop} of {reference}"
        try:
            with reporting_failures(self.settings, action):
                dataset = self.client().retrieve_instance(
                    reference.study, reference.series, sop, media_types=_ORIGINAL_SYNTAX
                )
        except DicomwebError as exc:
            if exc.failure in (
                DicomwebFailure.UNREACHABLE,
                DicomwebFailure.AUTH_REFUSED,
                DicomwebFailure.TLS_FAILED,
            ):
                raise
            raise _SeriesProblem(IssueCode.DICOMWEB_RETRIEVE_FAILED, str(exc)) from None
        except Exception as exc:  # a multipart answer that does not parse as DICOM
            raise _SeriesProblem(
                IssueCode.DICOMWEB_RETRIEVE_FAILED, f"{action}: the answer is not a DICOM instance ({exc})"
            ) from None
        if (
            str(dataset.get("SeriesInstanceUID", "")) != reference.series
            or str(dataset.get("SOPInstanceUID", "")) != sop
        ):
            raise _SeriesProblem(
                IssueCode.DICOMWEB_RETRIEVE_FAILED,
                f"{action}: the server sent instance {dataset.get('SOPInstanceUID', '?')} of series "
                f"{dataset.get('SeriesInstanceUID', '?')}",
            )
        tmp = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
        dataset.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, target)


def _fetch_series(
    fetcher: _Fetcher, pool: ThreadPoolExecutor, cohort: Path, reference: SeriesReference, bar
) -> tuple[int, str]:
    """Fetch the missing instances of one series and mark it complete; returns how many were fetched and
    the local image path (the folder, or the file of a one-instance series)."""
    uids = fetcher.instances(reference)
    folder = cohort / reference.folder
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    missing = [uid for uid in uids if not (folder / f"{uid}.dcm").is_file()]
    bar.total = (bar.total or 0) + len(missing)
    bar.refresh()
    fetched = 0
    futures = [pool.submit(fetcher.retrieve, cohort, reference, uid) for uid in missing]
    first_error: BaseException | None = None
    for future in futures:
        try:
            future.result()
            fetched += 1
            bar.update(1)
        except BaseException as exc:  # wait for the others before reporting, so no write is left running
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    image = reference.folder.as_posix() + (f"/{uids[0]}.dcm" if len(uids) == 1 else "")
    marker = {
        "reference": str(reference),
        "image": image,
        "instances": len(uids),
        "fetched": datetime.now(UTC).isoformat(),
    }
    (folder / COMPLETE_MARKER).write_text(json.dumps(marker), encoding="utf-8")
    return fetched, image


def _references(cases: pd.DataFrame, file: str) -> tuple[dict[SeriesReference, list[int]], list[Issue]]:
    """Each referenced series with the table rows (0-based) that need it, and issues for malformed cells."""
    wanted: dict[SeriesReference, list[int]] = {}
    issues = []
    sources = cases[SOURCE_COLUMN] if SOURCE_COLUMN in cases.columns else None
    for row, image in enumerate(cases["image"].fillna("").astype(str)):
        cell = image.strip()
        if not cell.startswith(SCHEME):
            source = "" if sources is None else str(sources.iloc[row] or "")
            if not source.startswith(SCHEME):
                continue
            cell = source  # imported before: check that its files are still complete
        try:
            reference = parse_reference(cell)
        except ValueError as exc:
            issues.append(
                Issue(
                    IssueCode.DICOMWEB_REFERENCE_INVALID,
                    f"case {cases['case_id'].iloc[row]}: {exc}",
                    file,
                    row=row + 1,
                )
            )
            continue
        wanted.setdefault(reference, []).append(row)
    return wanted, issues


def import_dicomweb(
    settings: DicomwebSettings,
    cohort_dir: str | Path,
    *,
    parallel: int = DEFAULT_PARALLEL,
    progress: bool = True,
) -> DicomwebImportResult:
    """Fetch every series the cohort references from the server of ``settings`` into ``COHORT/images/`` and
    rewrite the cases table to the local folders (see the module's description)."""
    from tqdm import tqdm

    if parallel < 1:
        raise MmdxError(f"--parallel must be at least 1, got {parallel}")
    began = time.perf_counter()
    cohort = Path(cohort_dir)
    if not cohort.is_dir():
        raise CohortError(f"cohort directory not found: {cohort}")
    path = _cases_path(cohort)
    cases = _read_cases(path)
    if "image" not in cases.columns or "case_id" not in cases.columns:
        raise CohortError(f"{path} has no 'image' or 'case_id' column: nothing references a DICOMweb series")
    result = DicomwebImportResult(server=settings.describe())
    wanted, result.issues = _references(cases, path.name)
    done: dict[SeriesReference, str] = {}  # reference -> local image path
    fetcher = _Fetcher(settings)
    unreachable: DicomwebError | None = None
    try:
        with (
            ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="dicomweb") as pool,
            tqdm(total=0, desc="fetching", unit="instance", disable=None if progress else True) as bar,
        ):
            for reference, rows in wanted.items():
                local = _local_image(cohort, reference)
                if local is not None:
                    done[reference] = local
                    result.series_already_present += 1
                    continue
                if unreachable is not None:
                    problem = _SeriesProblem(IssueCode.PACS_UNREACHABLE, f"not tried: {unreachable}")
                else:
                    try:
                        fetched, done[reference] = _fetch_series(fetcher, pool, cohort, reference, bar)
                        result.instances_fetched += fetched
                        result.series_fetched += 1
                        continue
                    except _SeriesProblem as exc:
                        problem = exc
                    except DicomwebError as exc:
                        unreachable = exc
                        problem = _SeriesProblem(IssueCode.PACS_UNREACHABLE, str(exc))
                for row in rows:
                    result.issues.append(
                        Issue(
                            problem.code,
                            f"case {cases['case_id'].iloc[row]}: {problem}",
                            path.name,
                            row=row + 1,
                        )
                    )
    finally:
        fetcher.close()
        _rewrite(cases, path, wanted, done, result)
        result.seconds = time.perf_counter() - began
        _write_report(cohort, result)
    return result


def _rewrite(
    cases: pd.DataFrame,
    path: Path,
    wanted: dict[SeriesReference, list[int]],
    done: dict[SeriesReference, str],
    result: DicomwebImportResult,
) -> None:
    """Point the rows of complete series at their folders, keeping the reference in ``image_source``;
    rows of series that failed keep (or get back) the reference, so that a later run retries them."""
    if not wanted:
        return
    cases = cases.copy()
    if SOURCE_COLUMN not in cases.columns:
        position = list(cases.columns).index("image") + 1
        cases.insert(position, SOURCE_COLUMN, "")
    changed = False
    for reference, rows in wanted.items():
        local = done.get(reference, str(reference))
        for row in rows:
            if cases.at[cases.index[row], "image"] != local:
                cases.at[cases.index[row], "image"] = local
                changed = True
                result.cases_rewritten += int(reference in done)
            if cases.at[cases.index[row], SOURCE_COLUMN] != str(reference):
                cases.at[cases.index[row], SOURCE_COLUMN] = str(reference)
                changed = True
    if changed:
        _write_cases(path, cases)


def _write_report(cohort: Path, result: DicomwebImportResult) -> None:
    path = cohort / REPORT
    tmp = path.with_name(f".{REPORT}.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=1), encoding="utf-8")
    os.replace(tmp, path)


HELP = """\
Fetch the image series a cohort references into its images/ folder. A cases-table image cell
'dicomweb:<StudyInstanceUID>/<SeriesInstanceUID>' names a series on the DICOMweb server at URL: its instances
are listed with QIDO-RS and retrieved with WADO-RS (as stored, no transcoding) into
COHORT/images/dicomweb/<SeriesInstanceUID>/, at most --parallel requests at a time. The image cell then points
at that folder (at the file, for a one-instance series) and the reference moves to the column image_source.
The import resumes where it stopped: complete series are not fetched again, interrupted ones only for their
missing instances. A malformed reference, a series the server lacks, a failed retrieval or an unreachable
server is reported per case with a typed reason code (also in COHORT/dicomweb_import.json); such a case keeps
its reference for the next run.
Exit status: 0 every referenced series is present, 1 some case did not get its image, 2 bad arguments.
"""

#: how many issues the command line prints; the report holds them all
PRINTED_ISSUES = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url", metavar="URL", help="DICOMweb service root, e.g. https://pacs.example.org/dicom-web"
    )
    parser.add_argument(
        "cohort", metavar="COHORT", help="cohort directory whose image column holds dicomweb: references"
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=DEFAULT_PARALLEL,
        metavar="N",
        help=f"requests in flight at most (default {DEFAULT_PARALLEL})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_connection_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mmdx.dicomweb.connection import settings_from_arguments

    settings = settings_from_arguments(args.url, args)
    result = import_dicomweb(settings, args.cohort, parallel=args.parallel, progress=not args.quiet)
    print(
        f"{result.server}: fetched {result.series_fetched} series ({result.instances_fetched} instances), "
        f"{result.series_already_present} already present; {result.cases_rewritten} case(s) now point at "
        f"their local images ({result.seconds:.1f} s)"
    )
    if not result.issues:
        return 0
    print(f"{len(result.issues)} case(s) without their image (details in {Path(args.cohort) / REPORT}):")
    for issue in result.issues[:PRINTED_ISSUES]:
        print(f"  {issue.code}: {issue.message} (row {issue.row})")
    if len(result.issues) > PRINTED_ISSUES:
        print(f"  ... and {len(result.issues) - PRINTED_ISSUES} more")
    return 1


IMPORTERS.register(
    ImporterSpec(
        name="dicomweb",
        help="fetch the image series a cohort references (dicomweb:<study>/<series>) from a PACS",
        description=HELP,
        add_arguments=add_arguments,
        run=run,
    )
)
