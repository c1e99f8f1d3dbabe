"""What every importer shares: its options, its result, turning attached records into cohort rows, and
writing the final cohort directory (cases with their images, ``cohort.yaml``, the import report)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmdx.data.catalogue import FeatureCatalogue
from mmdx.data.index_time import IMAGE_KIND, NOTE_KIND, lookback_windows
from mmdx.data.issues import IssueCode
from mmdx.errors import CohortError, MmdxError
from mmdx.importers.caselist import CaseList
from mmdx.importers.staging import ImportStaging, UnitOutput, import_issue

#: ``progress(done, total, what)``: ``total`` is None when unknown
Progress = Callable[[int, int | None, str], None]
DICOMWEB_PREFIX = "dicomweb:"


@dataclass
class ImportOptions:
    """Options shared by the importers. ``lookback``: kind -> ISO 8601 duration (see :mod:`mmdx.data.index_time`);
    ``batch_size``: records per committed unit (what an interrupted import redoes at most)."""

    name: str | None = None
    positive: str = "positive"
    lookback: dict[str, str] = field(default_factory=dict)
    batch_size: int = 20000

    def identity(self) -> dict:
        return {"lookback": dict(sorted(self.lookback.items())), "batch_size": self.batch_size}


@dataclass
class ImportResult:
    """``out``: the cohort directory; ``report``: ``import_report.json``; ``resumed_units``: units an earlier,
    interrupted run had already committed."""

    out: Path
    report: dict
    resumed_units: int = 0


def lookback_of(options: ImportOptions, catalogue: FeatureCatalogue) -> dict[str, pd.Timedelta]:
    """The parsed look-back windows; a bad kind or duration raises :class:`MmdxError` naming the option."""
    try:
        return lookback_windows({"lookback": options.lookback}, catalogue)
    except CohortError as exc:
        raise MmdxError(str(exc).replace("cohort.yaml: lookback.", "--lookback ")) from None


def split_attached(attached: pd.DataFrame, output: UnitOutput) -> None:
    """Move attached records (rows of :meth:`CaseList.attach`) into ``output``: observations, notes, images.

    Observation rows carry ``code, value, unit, time, source_id``; notes ``text, note_type, time``; images
    ``image, time, source_id``.
    """
    if attached.empty:
        return
    is_note = attached["kind"] == NOTE_KIND
    is_image = attached["kind"] == IMAGE_KIND
    obs = attached[~is_note & ~is_image]
    if len(obs):
        output.observations = obs[["case_id", "code", "value", "unit", "time", "source_id"]].reset_index(
            drop=True
        )
        output.counts["observations_attached"] += len(obs)
    for row in attached[is_note].itertuples(index=False):
        output.notes.append(
            {"case_id": row.case_id, "text": row.text, "note_type": row.note_type, "time": row.time}
        )
    output.counts["notes_attached"] += int(is_note.sum())
    for row in attached[is_image].itertuples(index=False):
        output.images.append(
            {"case_id": row.case_id, "image": row.image, "acquired": row.time, "source_id": row.source_id}
        )


def _copy_image(source: Path, out: Path, case_id: str) -> str:
    """Copy a local image (file or DICOM folder) into ``out/images/<case_id>/``; returns the cohort-relative
    path. Resumable: a file already copied with the same size is kept."""
    target_dir = out / "images" / case_id
    target = target_dir / source.name
    if source.is_dir():
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            dest = target / file.relative_to(source)
            if not (dest.is_file() and dest.stat().st_size == file.stat().st_size):
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, dest)
    elif not (target.is_file() and target.stat().st_size == source.stat().st_size):
        target_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return str(target.relative_to(out))


def finish_import(
    staging: ImportStaging,
    caselist: CaseList,
    options: ImportOptions,
    source: dict,
    report: dict,
    cases_dir: Path | None = None,
    track_patients: bool = True,
) -> ImportResult:
    """Write the cohort directory: the cases table (with each case's image), ``cohort.yaml`` and the report.

    A case's image is the one the case list names (``dicomweb:`` references kept, local paths -- relative to
    ``cases_dir`` -- copied into ``images/``) or else the latest one the source attached to the case. A listed
    patient absent from the source gets ``PATIENT_NOT_FOUND`` (when ``track_patients``).
    """
    out = staging.out
    cases = caselist.frame.drop(columns=["_index"]).copy()
    issues = list(caselist.rejected)
    if "image" not in cases.columns:
        cases["image"] = None
    candidates: dict[str, tuple] = {}
    for record in staging.json_lines("images"):
        acquired = pd.Timestamp(record["acquired"]) if record.get("acquired") else None
        key = (acquired is not None, acquired or pd.Timestamp(0, tz="UTC"), record["image"])
        if record["case_id"] not in candidates or key > candidates[record["case_id"]][0]:
            candidates[record["case_id"]] = (key, record["image"])
    images = []
    for case_id, listed in zip(cases["case_id"], cases["image"], strict=True):
        image = listed if listed is not None else candidates.get(case_id, (None, None))[1]
        if image is not None and not image.startswith(DICOMWEB_PREFIX):
            path = Path(image)
            if not path.is_absolute() and listed is not None and cases_dir is not None:
                path = cases_dir / path
            if path.exists():
                image = _copy_image(path, out, case_id)
            else:
                issues.append(
                    import_issue(
                        IssueCode.IMAGE_NOT_FOUND,
                        f"case {case_id}: image {image} does not exist on this machine; the case has no image",
                        warning=True,
                    )
                )
                image = None
        images.append(image)
    cases["image"] = images
    if track_patients:
        seen = staging.patients_seen()
        for case_id, patient in zip(cases["case_id"], cases["patient_id"], strict=True):
            if patient not in seen:
                issues.append(
                    import_issue(
                        IssueCode.PATIENT_NOT_FOUND,
                        f"case {case_id}: patient {patient} has no record in the source; check the patient_id",
                        warning=True,
                    )
                )
    spec = {
        "name": options.name or out.name,
        "version": "1",
        "description": f"Imported by mmdx import {source['format']}.",
        "task": {"label": "label", "positive": options.positive, "type": "binary"},
    }
    if options.lookback:
        spec["lookback"] = dict(options.lookback)
    spec["source"] = source
    endpoints = sorted({r["address"] for r in staging.json_lines("facts") if r.get("address")})
    referenced = sum(1 for image in images if image and image.startswith(DICOMWEB_PREFIX))
    report = {**report, "dicomweb_images": referenced, "dicomweb_endpoints": endpoints}
    full = staging.finish(cases.replace({np.nan: None}), spec, report, issues)
    return ImportResult(out=out, report=full, resumed_units=staging.resumed_units)


def event_frame(rows: list[dict]) -> pd.DataFrame:
    """Records of one unit as a frame with the columns :meth:`CaseList.attach` and :func:`split_attached` need."""
    from mmdx.importers.caselist import known_times

    columns = [
        "patient_id",
        "encounter_id",
        "kind",
        "time",
        "code",
        "value",
        "unit",
        "text",
        "note_type",
        "image",
        "source_id",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    if frame.empty:
        frame["known"] = pd.Series(dtype="datetime64[ns, UTC]")
        return frame
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    _, frame["known"] = known_times(frame["time"])
    return frame
