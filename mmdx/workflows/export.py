"""The ``mmdx export`` workflow: a run's explained cases as DICOM objects, into a folder or a PACS.

For every case of ``RUN/explanations/index.json`` (or the ``cases`` asked for) whose image is DICOM, the
source headers are read from the cohort, the attribution map is checked against their grid, and the objects
of :mod:`mmdx.export.objects` are built and handed to the exporter. A case that cannot be exported (no image,
a NIfTI image, a cohort that changed since ``mmdx explain``) is skipped with its reason; a DICOMweb server
that is unreachable or refuses the credentials stops the export, since every further case would fail too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from mmdx import __version__
from mmdx.bundle import BundleIdentity, read_bundle_identity
from mmdx.dicomweb.connection import DicomwebError
from mmdx.errors import MmdxError, did_you_mean
from mmdx.explain.artifacts import ExplanationNotFound, ExplanationUnreadable
from mmdx.export.objects import ModelIdentity, ObjectKind, case_objects
from mmdx.export.registry import EXPORTERS, ExportDestination
from mmdx.export.source import SourceProblem, read_case_source
from mmdx.run import RunPaths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseExport:
    """One exported case: each object's kind, SOP Instance UID and where it went."""

    case_id: str
    objects: list[tuple[ObjectKind, str, str]]


@dataclass
class ExportResult:
    destination: str
    exported: list[CaseExport] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (case_id, reason)
    seconds: float = 0.0

    @property
    def n_objects(self) -> int:
        return sum(len(c.objects) for c in self.exported)


def model_identity(bundle: BundleIdentity, index: dict) -> ModelIdentity:
    """The model's name, version and bundle hash, and the explanation's."""
    return ModelIdentity(
        name=bundle.name,
        version=bundle.version,
        bundle_sha256=bundle.manifest_sha256,
        software_version=__version__,
        explanation_version=str(index.get("explanation_version", "unknown")),
        # the method that drew the image maps (runs explained before it was recorded: the primary method)
        explanation_method=str(index.get("image_method") or index.get("primary_method", "attribution")),
    )


def _cohort_images(cohort: Path) -> dict[str, str]:
    from mmdx.data.cohort import read_cohort

    cases = read_cohort(cohort).cases
    if "image" not in cases.columns:
        return {}
    return dict(zip(cases["case_id"].astype(str), cases["image"].fillna("").astype(str), strict=True))


def _selected(entries: list[dict], cases: Sequence[str] | None) -> list[dict]:
    if not cases:
        return entries
    by_id = {str(e["case_id"]): e for e in entries}
    for case_id in cases:
        if case_id not in by_id:
            raise MmdxError(
                f"case {case_id!r} has no explanation in this run{did_you_mean(case_id, by_id)}; "
                f"run 'mmdx explain RUN --cases {case_id}' first"
            )
    return [by_id[c] for c in dict.fromkeys(cases)]


def export_run(
    run_dir: str | Path,
    exporter: str,
    destination: ExportDestination,
    *,
    cases: Sequence[str] | None = None,
    cohort_dir: str | Path | None = None,
    segmentation: bool = False,
    overlay: bool = False,
    progress: bool = True,
) -> ExportResult:
    """Export a run's explained cases with the exporter called ``exporter`` (``dir`` or ``dicomweb``)."""
    began = time.perf_counter()
    run = RunPaths(Path(run_dir))
    run.require("bundle", "explanations")
    index = run.read_explanation_index()
    bundle = read_bundle_identity(run.bundle)
    identity = model_identity(bundle, index)
    cohort = Path(cohort_dir or (bundle.card.get("cohort") or {}).get("path", ""))
    if not cohort.is_dir():
        raise MmdxError(f"cohort {cohort} not found; pass --cohort DIR (the cohort the run was trained on)")
    images = _cohort_images(cohort)
    chosen = _selected(list(index.get("cases", [])), cases)
    spec = EXPORTERS.get(exporter)
    target = spec.open(destination)
    result = ExportResult(destination=target.describe())
    primary = str(index.get("primary_method", ""))
    try:
        for entry in tqdm(chosen, desc="exporting", unit="case", disable=None if progress else True):
            case_id = str(entry["case_id"])
            try:
                explanation = run.read_explanation_case(case_id).document
                attribution = (explanation.get("files") or {}).get("image_original_grid")
                if not attribution:
                    result.skipped.append((case_id, "no image attribution (the case has no usable image)"))
                    continue
                attribution_path = run.explanation_case_file(case_id, attribution)
            except (ExplanationNotFound, ExplanationUnreadable) as exc:
                result.skipped.append((case_id, str(exc)))
                continue
            try:
                source = read_case_source(cohort, images.get(case_id, ""), attribution_path)
            except SourceProblem as exc:
                result.skipped.append((case_id, str(exc)))
                continue
            objects = case_objects(source, explanation, identity, segmentation=segmentation, overlay=overlay)
            where = target.send(case_id, objects)
            result.exported.append(
                CaseExport(
                    case_id,
                    [(o.kind, o.sop_instance_uid, w) for o, w in zip(objects, where, strict=True)],
                )
            )
            log.debug("exported case %s (%s)", case_id, primary)
    except DicomwebError as exc:
        raise DicomwebError(
            exc.failure, f"{exc} ({len(result.exported)} case(s) had been exported before this one)"
        ) from None
    finally:
        target.close()
    result.seconds = time.perf_counter() - began
    return result
