"""The model audit report: one document computed from a run directory, written as JSON and as HTML.

:func:`build_report` is the one place where the report's content is computed. It reads the run
(the run directory: the bundle, ``predictions.parquet``, ``validation_report.json``, ``explanations/``), optionally
the review store and a second run, and returns a plain, strict-JSON dict that validates against
``data_schemas/audit_report.schema.json``. :func:`write_report` validates it again, writes it as
``audit_report.json`` and renders the same document as ``audit_report.html`` (and, when Chromium is
installed, ``audit_report.pdf``): the HTML shows nothing the JSON does not hold.

Sections, in reading order: provenance, model card (with limitations and the TRIPOD+AI map), cohort flow,
discrimination, operating point, calibration, subgroups, robustness, explanations, clinician review and the
comparison with a second run. Each computed section is registered (:data:`mmdx.audit.sections.AUDIT_SECTIONS`)
by the module that computes it; the model card is computed last, from the others. Each is ``{"status": "ok", ...}`` or ``{"status": "not_available", "reason":
...}``; a run that lacks what the whole report needs (its bundle or predictions) is an error naming the file.

Typical use::

    document = build_report("runs/demo", options=AuditOptions(n_resamples=1000))
    files = write_report(document, "runs/demo/audit")
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from data_schemas import schema_path
from mmdx import __version__

# the modules that register the report's sections, imported so that AUDIT_SECTIONS is complete
from mmdx.audit import (  # noqa: F401
    clinician_review,
    cohort_flow,
    explanations,
    external,
    performance,
    provenance,
    robustness,
    subgroups,
)
from mmdx.audit.clinician_review import ReviewAccess
from mmdx.audit.html import print_pdf, render_html
from mmdx.audit.model_card import branch_rows, limitations, model_card_section
from mmdx.audit.robustness import (
    DEFAULT_MISSINGNESS_LEVELS,
    DEFAULT_NOISE_LEVELS,
    check_levels,
)
from mmdx.audit.sections import (
    AUDIT_SECTIONS,
    DEFAULT_MIN_REVIEW_GROUP,
    REPORT_SCHEMA,
    AuditInputs,
    Section,
    SectionStatus,
    build_section,
)
from mmdx.audit.tripod import tripod_map
from mmdx.bundle import Bundle, load_bundle
from mmdx.data.splits import SPLITS
from mmdx.errors import MmdxError
from mmdx.metrics import json_ready
from mmdx.run import RunPaths

log = logging.getLogger(__name__)

REPORT_SCHEMA_VERSION = 1
HTML_NAME = "audit_report.html"
JSON_NAME = "audit_report.json"
PDF_NAME = "audit_report.pdf"


@dataclass(frozen=True)
class AuditOptions:
    """Settings of a report; every one is stated in the report.

    ``n_resamples``: bootstrap replicates of every interval (seeded by ``seed``); ``alpha``: 1 - confidence
    level; ``split``: the evaluation split; ``min_group_size`` / ``min_group_events``: subgroups with fewer
    cases, or fewer positives or negatives, are flagged too small to judge; ``min_review_group_size``: the
    same for verdict counts in the review section; ``reliability_bins``: bins of the reliability diagrams;
    ``robustness``: re-run the model on degraded inputs (needs the cohort); ``noise_levels``: image noise
    standard deviations (intensity range 1); ``missingness_levels``: fractions of tabular values removed;
    ``batch_size``, ``workers`` (cohort validation and image decoding) and ``threads`` (torch intra-op threads; None: torch's
    default) for the re-runs.
    """

    n_resamples: int = 1000
    seed: int = 0
    alpha: float = 0.05
    split: str = "test"
    min_group_size: int = 30
    min_group_events: int = 5
    min_review_group_size: int = DEFAULT_MIN_REVIEW_GROUP
    reliability_bins: int = 10
    robustness: bool = True
    noise_levels: tuple[float, ...] = DEFAULT_NOISE_LEVELS
    missingness_levels: tuple[float, ...] = DEFAULT_MISSINGNESS_LEVELS
    batch_size: int = 64
    workers: int = 2
    threads: int | None = None
    #: the external evaluation (``RUN/external/SITE``) of the "External validation" section; None: the only one
    external: str | None = None

    def checked(self) -> AuditOptions:
        """``self`` if every setting is valid; otherwise raise :class:`MmdxError` naming the bad one."""
        for name, minimum in (
            ("n_resamples", 1),
            ("min_group_size", 0),
            ("min_group_events", 0),
            ("min_review_group_size", 0),
            ("reliability_bins", 1),
            ("batch_size", 1),
            ("workers", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise MmdxError(f"{name} must be an integer >= {minimum}; received {value!r}")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise MmdxError(f"threads must be a positive integer or None; received {self.threads!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise MmdxError(f"seed must be a non-negative integer; received {self.seed!r}")
        if not isinstance(self.alpha, int | float) or not 0.0 < float(self.alpha) < 1.0:
            raise MmdxError(f"alpha must be in (0, 1), e.g. 0.05 for 95% intervals; received {self.alpha!r}")
        check_levels(self.noise_levels, "image noise")
        check_levels(self.missingness_levels, "tabular missingness")
        if self.external is not None:
            from mmdx.training.recalibration import check_site

            try:
                check_site(self.external)
            except ValueError as exc:
                raise MmdxError(f"external: {exc}") from None
        if self.split not in SPLITS:
            raise MmdxError(f"split must be one of {', '.join(SPLITS)}; received {self.split!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "noise_levels": list(self.noise_levels),
            "missingness_levels": list(self.missingness_levels),
        }


@dataclass(frozen=True)
class AuditFiles:
    """What :func:`write_report` wrote; ``pdf`` is None when no PDF was made, and ``pdf_message`` says why."""

    html: Path
    json: Path
    pdf: Path | None = None
    pdf_message: str | None = None


def _run_id(root: Path) -> str:
    from mmdx.review.context import run_id_of  # the review store files a run's verdicts under this id

    return run_id_of(root)


def validate_report(document: dict[str, Any]) -> None:
    """Check a report document against ``data_schemas/audit_report.schema.json``; raise :class:`MmdxError`
    listing (up to ten of) the violations with their paths."""
    import jsonschema

    schema = json.loads(schema_path(REPORT_SCHEMA).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"  {'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:300]}"
            for e in errors[:10]
        ]
        raise MmdxError(
            f"the audit report does not match {REPORT_SCHEMA} ({len(errors)} violation(s)):\n"
            + "\n".join(lines)
        )


def build_report(
    run_dir: str | Path,
    *,
    options: AuditOptions | None = None,
    review: ReviewAccess | None = None,
    compare: str | Path | None = None,
    cohort_dir: str | Path | None = None,
    progress: bool = False,
    created: datetime | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Compute the audit report of a run as a strict-JSON dict, validated against the report schema.

    Args:
        run_dir: the run directory; its ``bundle/`` and ``predictions.parquet`` are required.
        options: see :class:`AuditOptions`.
        review: the review store and a signed-in auditor (None: the section says no store was given).
        compare: a second run directory, evaluated on the same cohort, for the comparison section.
        cohort_dir: where the cohort is now (default: the path recorded at training); used to re-run the
            model (robustness) and to fingerprint the cohort.
        progress: show progress bars (stderr) for the slow parts.
        created: the report's timestamp (default: now, UTC).
        timings: when given, filled with the seconds each section took (``loading`` for reading the run).

    Raises:
        MmdxError: the run lacks its bundle or predictions, or an option is invalid.
    """
    options = (options or AuditOptions()).checked()
    created = created or datetime.now(UTC)
    timings = {} if timings is None else timings
    started = time.perf_counter()
    run = RunPaths(Path(run_dir).expanduser().resolve())
    run.require("bundle", "predictions")
    frame = run.read_predictions()
    bundle = load_bundle(run.bundle)
    card = bundle.card
    run_id = _run_id(run.root)
    attributes = [str(a) for a in (card.get("cohort") or {}).get("subgroups") or []]
    validation_report = run.read_validation_report()
    metrics = run.read_metrics() or {}
    predicted_by = metrics.get("model_version")
    if predicted_by is not None and predicted_by != bundle.version:
        # metrics.json and predictions.parquet are written together by 'mmdx evaluate'
        raise MmdxError(
            f"{run.predictions} was written by model version {predicted_by}, but the run's bundle is "
            f"{bundle.version} (retrained since): run 'mmdx evaluate RUN' again"
        )
    bayes_auroc = metrics.get("bayes_auroc")
    other: tuple[pd.DataFrame, Bundle, str] | None = None
    if compare is not None:
        other_run = RunPaths(Path(compare).expanduser().resolve())
        other_run.require("bundle", "predictions")
        other = (other_run.read_predictions(), load_bundle(other_run.bundle), other_run.root.name)

    timings["loading"] = time.perf_counter() - started
    inputs = AuditInputs(
        run=run,
        run_id=run_id,
        bundle=bundle,
        frame=frame,
        options=options,
        attributes=attributes,
        validation_report=validation_report,
        bayes_auroc=bayes_auroc,
        review=review,
        other=other,
        cohort_dir=cohort_dir,
        created=created,
        progress=progress,
    )
    steps = [AUDIT_SECTIONS.get(section) for section in Section if section is not Section.MODEL_CARD]
    sections: dict[str, dict[str, Any]] = {}
    with tqdm(total=len(steps) + 1, desc="audit", unit="section", disable=not progress, leave=False) as bar:
        for spec in steps:
            bar.set_postfix_str(spec.label.format(n_resamples=options.n_resamples))
            started = time.perf_counter()
            sections[spec.name.value] = json_ready(build_section(lambda spec=spec: spec.build(inputs)))
            timings[spec.name.value] = time.perf_counter() - started
            bar.update(1)
        bar.set_postfix_str("model card")
        started = time.perf_counter()
        statuses = {name: content["status"] for name, content in sections.items()}
        statuses[Section.MODEL_CARD.value] = SectionStatus.OK.value
        sections[Section.MODEL_CARD.value] = json_ready(
            build_section(
                lambda: {
                    **model_card_section(bundle),
                    "branches": branch_rows(sections),
                    "limitations": limitations(bundle, sections, synthetic=bayes_auroc is not None),
                    "tripod_ai": tripod_map(statuses),
                }
            )
        )
        timings[Section.MODEL_CARD.value] = time.perf_counter() - started
        bar.update(1)
    cohort = card.get("cohort") or {}
    document = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "kind": "mmdx model audit report",
        "created": created.isoformat(timespec="seconds"),
        "mmdx_version": __version__,
        "run": {
            "name": run_id,
            "directory": str(run.root),
            "model_version": bundle.version,
            "cohort": cohort.get("name"),
            "positive": (card.get("task") or {}).get("positive"),
            "compared_with": None if other is None else other[2],
        },
        "settings": options.to_dict(),
        "sections": {section.value: sections[section.value] for section in Section},
    }
    document = json_ready(document)
    validate_report(document)
    return document


def write_report(document: dict[str, Any], out_dir: str | Path, *, pdf: bool = False) -> AuditFiles:
    """Validate ``document`` and write ``audit_report.json`` and ``audit_report.html`` (and
    ``audit_report.pdf`` when ``pdf`` and Chromium is installed) to ``out_dir`` (created owner-only: the
    report describes patient-derived data)."""
    validate_report(document)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    json_path, html_path = out / JSON_NAME, out / HTML_NAME
    _write_atomic(json_path, json.dumps(document, indent=1, allow_nan=False, ensure_ascii=False) + "\n")
    _write_atomic(html_path, render_html(document))
    if not pdf:
        return AuditFiles(html_path, json_path)
    try:
        pdf_path = print_pdf(html_path, out / PDF_NAME)
    except MmdxError as exc:
        log.warning("%s", exc)
        return AuditFiles(html_path, json_path, None, str(exc))
    return AuditFiles(html_path, json_path, pdf_path)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def audit_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    pdf: bool = False,
    **kwargs: Any,
) -> tuple[dict[str, Any], AuditFiles]:
    """:func:`build_report` then :func:`write_report` to ``out_dir`` (default ``RUN/audit``)."""
    document = build_report(run_dir, **kwargs)
    target = Path(out_dir) if out_dir is not None else RunPaths(Path(run_dir).expanduser().resolve()).audit
    return document, write_report(document, target, pdf=pdf)
