"""``mmdx import fhir SRC_DIR OUT --cases CASES.csv``: FHIR R4 bulk-data NDJSON and Bundles into a cohort.

``SRC_DIR`` holds ``.ndjson`` files (one resource per line, as a FHIR bulk-data export writes them) and/or
``.json`` files (a Bundle, or a single resource). Every resource of a type mmdx reads is checked against the
FHIR R4 model of the ``fhir.resources`` library (its R4B models, which read R4 data); one that fails is
reported under ``SOURCE_RECORD_INVALID`` with its file, line and the model's message, and the rest goes on.

* ``Patient``: the case list's ``patient_id`` is the Patient's ``id``; a listed patient never seen is
  reported (``PATIENT_NOT_FOUND``).
* ``Observation`` (and each ``component`` of one, e.g. a blood-pressure panel): the LOINC coding of ``code``
  names the catalogue feature; ``valueQuantity`` must carry a UCUM code (``system``
  ``http://unitsofmeasure.org``; otherwise ``UNIT_NOT_UCUM``); the time is ``effectiveDateTime``,
  ``effectiveInstant`` or the end (else start) of ``effectivePeriod``. Observations of LOINC codes outside
  the catalogue are counted, not imported; one without any LOINC coding is ``CONCEPT_UNKNOWN``.
  ``entered-in-error`` and ``cancelled`` ones are skipped and counted.
* ``DocumentReference`` (``date``; ``context.encounter``) and ``DiagnosticReport`` (``issued``, else
  ``effective[x]``: when the report became known): inline ``text/*`` attachments -- ``content.attachment``
  and ``presentedForm`` -- become notes; other attachments are ``ATTACHMENT_NOT_TEXT``.
* ``ImagingStudy``: each series becomes a candidate image ``dicomweb:<StudyInstanceUID>/<SeriesInstanceUID>``
  (acquired at the series', else the study's ``started``); the latest one before the index time becomes the
  case's ``image`` unless the case list names one. ``mmdx import dicomweb`` fetches it; the WADO-RS
  endpoints (``Endpoint.address``) are listed in ``import_report.json``.

References are ``Patient/<id>`` and ``Encounter/<id>`` (relative or absolute URLs) or, inside a Bundle,
``urn:uuid:`` full URLs of its entries. NDJSON files are read line by line in units of ``--batch-size``
lines, so memory does not grow with the file, and a resumed import skips the units already committed.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING

from mmdx.importers.registry import IMPORTERS, ImporterSpec, add_cohort_arguments, parse_lookback

if TYPE_CHECKING:
    from mmdx.data.catalogue import FeatureCatalogue
    from mmdx.importers.output import ImportOptions, ImportResult, Progress
    from mmdx.importers.staging import UnitOutput

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
DICOM_UID = "urn:dicom:uid"
READ_TYPES = ("Patient", "Observation", "DocumentReference", "DiagnosticReport", "ImagingStudy", "Endpoint")
SKIPPED_STATUS = {"entered-in-error", "cancelled"}


def _model(resource_type: str):
    try:
        from fhir.resources.R4B import get_fhir_model_class
    except ImportError:  # pragma: no cover - the package is a dependency of mmdx
        from mmdx.errors import MmdxError

        raise MmdxError(
            "reading FHIR needs the Python package 'fhir.resources'; install it with pip install fhir.resources"
        ) from None
    return get_fhir_model_class(resource_type)


def _reference_id(reference: object, kind: str, full_urls: dict[str, str]) -> str | None:
    """The id of a ``kind`` resource named by a FHIR reference (relative, absolute or a Bundle's urn:uuid)."""
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str):
        return None
    ref = full_urls.get(ref, ref)
    parts = ref.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == kind:
        return parts[-1]
    return None


def _effective(resource: dict, *names: str) -> str | None:
    """The first present time among ``names``; ``effectivePeriod`` gives its end, else its start."""
    for name in names:
        if name.endswith("Period"):
            period = resource.get(name) or {}
            value = period.get("end") or period.get("start")
        else:
            value = resource.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _loinc(concept: object) -> str | None:
    for coding in (concept or {}).get("coding") or []:
        if coding.get("system") == LOINC and coding.get("code"):
            return str(coding["code"]).strip()
    return None


def _codes(concept: object) -> str:
    codings = (concept or {}).get("coding") or []
    shown = [f"{c.get('system', '?')}|{c.get('code', '?')}" for c in codings[:3]]
    return ", ".join(shown) or repr((concept or {}).get("text", "no coding"))


def _attachment_text(attachment: dict) -> tuple[str | None, str | None]:
    """``(text, None)`` for an inline text attachment, else ``(None, why)``."""
    content_type = str(attachment.get("contentType") or "")
    if "data" not in attachment:
        where = attachment.get("url")
        return None, f"attachment is not inline ({'url ' + where if where else 'no data'})"
    if not content_type.startswith("text/"):
        return None, f"attachment of type {content_type or 'unknown'} is not text"
    charset = "utf-8"
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip('"')
    try:
        return base64.b64decode(attachment["data"]).decode(charset), None
    except (ValueError, LookupError, UnicodeDecodeError) as exc:
        return None, f"attachment data cannot be decoded as {charset} text ({exc})"


class _ResourceReader:
    """Turns validated resources into event rows (see :func:`mmdx.importers.output.event_frame`)."""

    def __init__(self, catalogue: FeatureCatalogue) -> None:
        self.loinc_kind = {f.loinc: f.kind for f in catalogue}

    def read(
        self, resource: dict, where: str, full_urls: dict[str, str], output: UnitOutput, rows: list
    ) -> None:
        from pydantic import ValidationError

        from mmdx.data.issues import IssueCode
        from mmdx.importers.staging import import_issue

        kind = resource.get("resourceType")
        output.counts[f"resources_{kind}"] += 1
        if kind not in READ_TYPES:
            return
        name = f"{kind}/{resource.get('id', '?')}"
        try:
            _model(kind).model_validate(resource)
        except ValidationError as exc:
            first = exc.errors()[0]
            location = ".".join(str(p) for p in first.get("loc", ()))
            output.issues.append(
                import_issue(
                    IssueCode.SOURCE_RECORD_INVALID,
                    f"{where}: {name} fails the FHIR R4 model ({exc.error_count()} error(s); first at "
                    f"{location or 'the resource'}: {first.get('msg')}); resource skipped",
                )
            )
            return
        if kind == "Patient":
            if resource.get("id"):
                output.patients_seen.add(str(resource["id"]))
            return
        if kind == "Endpoint":
            output.facts.append({"endpoint": resource.get("id"), "address": resource.get("address")})
            return
        if resource.get("status") in SKIPPED_STATUS:
            output.counts[f"skipped_{resource.get('status')}"] += 1
            return
        patient = _reference_id(resource.get("subject"), "Patient", full_urls)
        if patient is None:
            output.issues.append(
                import_issue(
                    IssueCode.SOURCE_RECORD_INVALID,
                    f"{where}: {name} has no subject reference to a Patient; resource skipped",
                )
            )
            return
        output.patients_seen.add(patient)
        if kind == "Observation":
            self._observation(resource, name, where, patient, full_urls, output, rows)
        elif kind in ("DocumentReference", "DiagnosticReport"):
            self._document(resource, kind, name, where, patient, full_urls, output, rows)
        elif kind == "ImagingStudy":
            self._imaging_study(resource, name, patient, full_urls, rows)

    def _observation(self, resource, name, where, patient, full_urls, output, rows) -> None:
        from mmdx.data.issues import IssueCode
        from mmdx.importers.staging import import_issue

        encounter = _reference_id(resource.get("encounter"), "Encounter", full_urls)
        time = _effective(resource, "effectiveDateTime", "effectiveInstant", "effectivePeriod")
        parts = [(resource.get("code"), resource, name)]
        for i, component in enumerate(resource.get("component") or []):
            parts.append((component.get("code"), component, f"{name} component {i + 1}"))
        for concept, holder, label in parts:
            if holder is resource and "valueQuantity" not in holder and len(parts) > 1:
                continue  # a panel: its values are in the components
            loinc = _loinc(concept)
            if loinc is None:
                output.issues.append(
                    import_issue(
                        IssueCode.CONCEPT_UNKNOWN,
                        f"{where}: {label} has no LOINC coding ({_codes(concept)}); value skipped",
                        warning=True,
                    )
                )
                continue
            if loinc not in self.loinc_kind:
                output.counts["observations_not_in_catalogue"] += 1
                continue
            quantity = holder.get("valueQuantity")
            if not isinstance(quantity, dict) or quantity.get("value") is None:
                output.issues.append(
                    import_issue(
                        IssueCode.SOURCE_RECORD_INVALID,
                        f"{where}: {label} (LOINC {loinc}) has no valueQuantity with a value; value skipped",
                        warning=True,
                    )
                )
                continue
            if quantity.get("system") != UCUM or not quantity.get("code"):
                output.issues.append(
                    import_issue(
                        IssueCode.UNIT_NOT_UCUM,
                        f"{where}: {label} (LOINC {loinc}) gives its unit as {quantity.get('unit')!r} "
                        f"without a UCUM code (system {quantity.get('system')!r}); value skipped",
                        warning=True,
                    )
                )
                continue
            rows.append(
                {
                    "patient_id": patient,
                    "encounter_id": encounter,
                    "kind": self.loinc_kind[loinc],
                    "time": time,
                    "code": loinc,
                    "value": quantity["value"],
                    "unit": str(quantity["code"]),
                    "source_id": name,
                }
            )

    def _document(self, resource, kind, name, where, patient, full_urls, output, rows) -> None:
        from mmdx.data.issues import IssueCode
        from mmdx.importers.staging import import_issue

        if kind == "DocumentReference":
            encounters = (resource.get("context") or {}).get("encounter") or []
            encounter = _reference_id(encounters[0], "Encounter", full_urls) if encounters else None
            time = _effective(resource, "date")
            attachments = [c.get("attachment") or {} for c in resource.get("content") or []]
            concept = resource.get("type") or {}
        else:
            encounter = _reference_id(resource.get("encounter"), "Encounter", full_urls)
            time = _effective(resource, "issued", "effectiveDateTime", "effectivePeriod")
            attachments = list(resource.get("presentedForm") or [])
            concept = resource.get("code") or {}
        codings = concept.get("coding") or [{}]
        note_type = concept.get("text") or codings[0].get("display") or kind
        texts = []
        for attachment in attachments:
            text, why = _attachment_text(attachment)
            if text is None:
                output.issues.append(
                    import_issue(
                        IssueCode.ATTACHMENT_NOT_TEXT, f"{where}: {name}: {why}; not imported", warning=True
                    )
                )
            elif text.strip():
                texts.append(text)
        if not texts and kind == "DiagnosticReport" and resource.get("conclusion"):
            texts.append(str(resource["conclusion"]))
        for text in texts:
            rows.append(
                {
                    "patient_id": patient,
                    "encounter_id": encounter,
                    "kind": "note",
                    "time": time,
                    "text": text,
                    "note_type": note_type,
                    "source_id": name,
                }
            )

    def _imaging_study(self, resource, name, patient, full_urls, rows) -> None:
        encounter = _reference_id(resource.get("encounter"), "Encounter", full_urls)
        study_uid = None
        for identifier in resource.get("identifier") or []:
            if identifier.get("system") == DICOM_UID and identifier.get("value"):
                study_uid = str(identifier["value"]).removeprefix("urn:oid:")
        for series in resource.get("series") or []:
            if not study_uid or not series.get("uid"):
                continue
            rows.append(
                {
                    "patient_id": patient,
                    "encounter_id": encounter,
                    "kind": "image",
                    "time": series.get("started") or resource.get("started"),
                    "image": f"dicomweb:{study_uid}/{series['uid']}",
                    "source_id": name,
                }
            )


def _units(src: Path, batch_size: int):
    """``(unit name, file, kind, payload)`` for every unit of the source folder, in a fixed order.

    NDJSON files give blocks of ``batch_size`` lines (payload: list of ``(line number, text)``); a ``.json``
    file is one unit (payload: None, read when the unit is processed).
    """
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix in (".ndjson", ".json"))
    for path in files:
        rel = str(path.relative_to(src))
        if path.suffix == ".json":
            yield rel, path, "json", None
            continue
        block: list[tuple[int, str]] = []
        start = 1
        with path.open(encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    block.append((number, line))
                if number - start + 1 >= batch_size:
                    yield f"{rel}#{start}", path, "ndjson", block
                    block, start = [], number + 1
        if block:
            yield f"{rel}#{start}", path, "ndjson", block


def _source_files(src: Path) -> list[list]:
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix in (".ndjson", ".json"))
    return [[str(p.relative_to(src)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _read_ndjson_block(
    reader: _ResourceReader, rel: str, block: list[tuple[int, str]], output: UnitOutput, rows: list[dict]
) -> None:
    """Read one unit of an NDJSON file: a resource per line; a line that is not a JSON object is an issue."""
    from mmdx.data.issues import IssueCode
    from mmdx.importers.staging import import_issue

    for number, line in block:
        where = f"{rel} line {number}"
        try:
            resource = json.loads(line)
        except json.JSONDecodeError as exc:
            output.issues.append(
                import_issue(IssueCode.SOURCE_RECORD_INVALID, f"{where}: not valid JSON ({exc.msg})")
            )
            continue
        if not isinstance(resource, dict):
            output.issues.append(import_issue(IssueCode.SOURCE_RECORD_INVALID, f"{where}: not a JSON object"))
            continue
        reader.read(resource, where, {}, output, rows)


def _read_json_file(
    reader: _ResourceReader, path: Path, rel: str, output: UnitOutput, rows: list[dict]
) -> None:
    """Read a ``.json`` file: a Bundle (its entries, whose ``urn:uuid:`` full URLs resolve references between
    them) or a single resource."""
    from mmdx.data.issues import IssueCode
    from mmdx.importers.staging import import_issue

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        output.issues.append(
            import_issue(IssueCode.SOURCE_RECORD_INVALID, f"{rel}: not valid JSON ({exc}); file skipped")
        )
        return
    if not isinstance(document, dict):
        return
    if document.get("resourceType") != "Bundle":
        reader.read(document, rel, {}, output, rows)
        return
    entries = [e for e in document.get("entry") or [] if isinstance(e, dict)]
    full_urls = {}
    for entry in entries:
        res = entry.get("resource") or {}
        if entry.get("fullUrl") and res.get("resourceType") and res.get("id"):
            full_urls[entry["fullUrl"]] = f"{res['resourceType']}/{res['id']}"
    for i, entry in enumerate(entries, start=1):
        resource = entry.get("resource")
        if isinstance(resource, dict):
            reader.read(resource, f"{rel} entry {i}", full_urls, output, rows)


def _checked_source(src: Path) -> list[list]:
    """The source folder's files (name, size, mtime) for the import's identity; raises when there are none."""
    from mmdx.errors import MmdxError

    if not src.is_dir():
        raise MmdxError(f"FHIR source folder not found: {src}")
    files = _source_files(src)
    if not files:
        raise MmdxError(
            f"{src} holds no .ndjson or .json file; point at a FHIR bulk-data export or Bundle folder"
        )
    return files


def import_fhir(
    src: str | Path,
    out: str | Path,
    cases: str | Path,
    options: ImportOptions | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import a folder of FHIR R4 NDJSON / Bundle files into the cohort directory ``out``."""
    from mmdx.data.catalogue import FeatureCatalogue
    from mmdx.importers.caselist import CaseList
    from mmdx.importers.output import ImportOptions, event_frame, finish_import, lookback_of, split_attached
    from mmdx.importers.staging import ImportStaging, UnitOutput, fingerprint_file

    options = options or ImportOptions()
    src = Path(src)
    files = _checked_source(src)
    catalogue = FeatureCatalogue.load()
    windows = lookback_of(options, catalogue)
    caselist = CaseList.read(cases)
    identity = {
        "source": "fhir",
        "path": str(src.resolve()),
        "files": files,
        "cases": fingerprint_file(cases),
        **options.identity(),
    }
    staging = ImportStaging(out, identity)
    reader = _ResourceReader(catalogue)
    total_bytes = sum(f[1] for f in files)
    done_bytes = 0
    for unit, path, kind, block in _units(src, options.batch_size):
        size = sum(len(line) for _, line in block) if block is not None else path.stat().st_size
        done_bytes += size
        if staging.done(unit):
            continue
        output = UnitOutput()
        rows: list[dict] = []
        rel = str(path.relative_to(src))
        if kind == "ndjson":
            _read_ndjson_block(reader, rel, block, output, rows)
        else:
            _read_json_file(reader, path, rel, output, rows)
        events = event_frame(rows)
        output.counts["records_read"] += len(events)
        split_attached(caselist.attach(events, windows, output.counts), output)
        staging.commit(unit, output)
        if progress:
            progress(done_bytes, total_bytes, unit)
    source = {"format": "fhir", "path": str(src.resolve())}
    return finish_import(staging, caselist, options, source, {}, cases_dir=Path(cases).resolve().parent)


HELP = __doc__.split("\n\n", 1)[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "src", metavar="SRC_DIR", help="folder of FHIR R4 .ndjson bulk-data files and/or Bundle .json files"
    )
    add_cohort_arguments(parser)
    parser.add_argument(
        "--cases",
        required=True,
        metavar="CASES.csv",
        help="case list: case_id, patient_id (the Patient id), optional encounter_id, label, split, index_time, image; "
        "other columns pass through as demographics",
    )


def run(args: argparse.Namespace) -> int:
    from mmdx.importers.output import ImportOptions
    from mmdx.importers.progress import print_result, progress_bar

    options = ImportOptions(
        name=args.name,
        positive=args.positive,
        lookback=parse_lookback(args.lookback),
        batch_size=args.batch_size,
    )
    with progress_bar("FHIR", unit="B") as progress:
        result = import_fhir(args.src, args.out, args.cases, options, progress=progress)
    print_result(result)
    return 0


IMPORTERS.register(
    ImporterSpec(
        name="fhir",
        help="FHIR R4 bulk-data NDJSON or Bundles -> cohort directory",
        description=HELP,
        add_arguments=add_arguments,
        run=run,
    )
)
