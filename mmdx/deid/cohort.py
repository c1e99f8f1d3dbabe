"""De-identifying a whole cohort directory into a new one.

``deidentify_cohort(IN, OUT, key)`` writes a copy of the cohort in which:

* **IDs**: every patient ID becomes ``P-<10 hex>`` and every case ID ``C-<10 hex>`` (keyed HMAC; the same key
  gives the same pseudonyms in the cases table, observations, notes, DICOM headers, ground truth and file
  names). Two originals that would share a pseudonym stop the run.
* **allowlists**: only the columns and fields the cohort format knows leave: in the cases table the IDs,
  ``label``, ``split``, ``image``, demographics (``age``, ``age_band``, ``sex``, ``site``), the subgroup
  columns declared in ``cohort.yaml``, ``index_time`` and ``encounter_id``, plus columns named in
  ``DeidOptions.keep_columns``; in the observations ``case_id, code, value, unit, time, encounter_id``; in
  notes lines ``case_id, text, note_type, time, encounter_id``. Everything else is dropped and its name
  listed in the report (``columns_not_in_the_format``, ``columns_dropped``, ``fields_dropped``).
* **cases table**: direct identifier columns (names, MRN, birth date, address, phone, e-mail, …; see
  ``DIRECT_IDENTIFIER_COLUMNS``) are dropped (their values still scrub the notes), ages above 89 written
  as 90, date and time columns (``index_time`` too) shifted, other free text scrubbed; encounter IDs
  become ``E-<10 hex>`` (the same in every table and note).
* **dates**: every date and time of a patient (observations, notes, DICOM, date columns) moves by the same
  number of days (−365 … −1, derived from the key and the patient ID), so intervals survive exactly.
* **images**: DICOM files go through :class:`mmdx.deid.dicom.DicomDeidentifier` (pixel data untouched; a
  series with a file that must be quarantined is held back whole and the case loses its image); NIfTI files
  keep their voxels and geometry byte for byte, with the header's free-text fields (``descrip``, ``aux_file``,
  ``intent_name``, ``db_name``) cleared and extensions dropped. Images get pseudonymous paths.
* **notes**: scrubbed of names (the patient's own from the cases table and every DICOM header of the
  patient, plus everyone else's when capitalised), dates, phones, e-mails, record numbers and addresses
  (:mod:`mmdx.deid.text`); note times shifted. A malformed line stays malformed, scrubbed.
* **ground truth** of synthetic cohorts: IDs and mask names mapped, phrase spans recomputed in the scrubbed
  notes, so the cohort still validates and trains; ``phi_canaries.json`` is withheld.
* anything else is **not copied** and listed in the report; the key never enters the output.

The report (``deid_report.json``) counts what was changed, quarantined and why; it holds pseudonyms and
attribute names only, no identifying value. The output is written to a temporary sibling folder and moved
into place at the end, so a failed run leaves no half cohort; the same input and key give byte-identical
output.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from mmdx.data import imaging
from mmdx.data.cohort import (
    COHORT_FILE,
    GROUND_TRUTH_DIR,
    NOTES_FILE,
    CohortFiles,
    PathEscapesCohort,
    read_cohort,
    resolve_in_cohort,
)
from mmdx.data.ground_truth import read_defects, read_truth
from mmdx.data.image_headers import check_nifti_header
from mmdx.data.issues import ImageReadError
from mmdx.data.json_limits import JsonLimitExceeded, parse_json_line
from mmdx.data.text import Note, join_notes, note_case_id
from mmdx.deid.dicom import (
    DicomDeidentifier,
    DicomOptions,
    DicomResult,
    PatientContext,
    QuarantineReason,
    name_components,
)
from mmdx.deid.key import DeidKey
from mmdx.deid.text import NoteScrubber, PatientIdentity, Placeholder, shift_iso
from mmdx.errors import MmdxError
from mmdx.workers import ignore_ctrl_c

REPORT_FILE = "deid_report.json"
REPORT_SCHEMA_VERSION = 1
PHI_CANARIES = "phi_canaries.json"
NIFTI_SUFFIXES = (".nii.gz", ".nii")

#: cases-table columns that identify a person directly (compared after lower-casing and turning any run of
#: non-alphanumerics into "_"); each is dropped, its values used to scrub the notes of the same patient
DIRECT_IDENTIFIER_COLUMNS: dict[str, Placeholder] = {
    **dict.fromkeys(
        (
            "name",
            "patient_name",
            "full_name",
            "first_name",
            "last_name",
            "given_name",
            "family_name",
            "middle_name",
            "surname",
            "forename",
            "maiden_name",
            "mother_maiden_name",
            "next_of_kin",
            "gp_name",
            "physician",
            "referring_physician",
        ),
        Placeholder.NAME,
    ),
    **dict.fromkeys(
        (
            "mrn",
            "medical_record_number",
            "record_number",
            "hospital_number",
            "nhs_number",
            "ssn",
            "social_security_number",
            "insurance_number",
            "insurance_id",
            "account_number",
            "accession_number",
            "health_plan_number",
            "license_number",
            "device_serial_number",
            "ip_address",
            "url",
        ),
        Placeholder.ID,
    ),
    **dict.fromkeys(("birth_date", "date_of_birth", "dob", "birth_time", "death_date"), Placeholder.DATE),
    **dict.fromkeys(
        (
            "address",
            "street",
            "street_address",
            "address_line",
            "city",
            "town",
            "zip",
            "zip_code",
            "postcode",
            "postal_code",
        ),
        Placeholder.ADDRESS,
    ),
    **dict.fromkeys(("phone", "telephone", "phone_number", "mobile", "fax"), Placeholder.PHONE),
    **dict.fromkeys(("email", "e_mail", "email_address"), Placeholder.EMAIL),
}
#: columns kept verbatim (besides the IDs and the image path, which are mapped)
SAFE_COLUMNS = frozenset({"label", "split", "age", "age_band", "sex", "site"})
#: the column of an index time (shifted like every date) and of an encounter ID (pseudonymised as E-...)
INDEX_TIME = "index_time"
ENCOUNTER_ID = "encounter_id"
#: cases-table columns the cohort format knows; the subgroup columns of cohort.yaml are known too
CASE_FORMAT_COLUMNS = frozenset({"case_id", "patient_id", "image", INDEX_TIME, ENCOUNTER_ID} | SAFE_COLUMNS)
#: observation columns and notes fields the cohort format knows
OBSERVATION_FORMAT_COLUMNS = ("case_id", "code", "value", "unit", "time", ENCOUNTER_ID)
NOTE_FORMAT_FIELDS = frozenset({"case_id", "text", "note_type", "time", ENCOUNTER_ID})

Progress = Callable[[int, int], None]


def normalise_column(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


@dataclass(frozen=True)
class DeidOptions:
    """Settings of a cohort de-identification.

    ``dicom``: DICOM options (private allowlist, date shift, patient characteristics, quarantine).
    ``drop_columns``: identifier columns of the cases table and the placeholder their values become.
    ``keep_columns``: cases-table columns outside the cohort format to keep anyway (e.g. a feature a config
    reads); they are scrubbed as free text, or shifted when they hold dates.
    ``workers``: processes de-identifying images. ``quarantine_dir``: where to copy quarantined originals
    for manual review (they are identified: keep that folder as protected as the input); None = not copied.
    """

    dicom: DicomOptions = field(default_factory=DicomOptions)
    drop_columns: dict[str, Placeholder] = field(default_factory=lambda: dict(DIRECT_IDENTIFIER_COLUMNS))
    keep_columns: tuple[str, ...] = ()
    workers: int = 1
    quarantine_dir: Path | None = None


@dataclass
class DeidReport:
    """What a de-identification changed, quarantined and why (no identifying value inside).

    ``timings``: seconds per phase (``images``, ``tables``, ``notes``, ``ground_truth``, ``total``); kept out of
    the JSON file so that the same input and key always give the same bytes.
    """

    data: dict
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return self.data

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.data, indent=1) + "\n", encoding="utf-8")

    def summary_lines(self) -> list[str]:
        d = self.data
        dicom, notes = d["dicom"], d["notes"]
        lines = [
            f"cases: {d['cases']['rows']} rows, {d['cases']['patients']} patients pseudonymised; columns dropped: "
            f"{', '.join(d['cases']['columns_dropped']) or 'none'}; not in the cohort format, dropped: "
            f"{', '.join(d['cases']['columns_not_in_the_format']) or 'none'}",
            f"DICOM: {dicom['files_written']}/{dicom['files_in']} files written, {dicom['files_quarantined']} "
            f"quarantined; actions: " + ", ".join(f"{k} {v}" for k, v in sorted(dicom["actions"].items())),
            f"NIfTI: {d['nifti']['files']} files, {d['nifti']['header_fields_cleared']} header fields cleared",
            f"observations: {d['observations']['rows']} rows, {d['observations']['times_shifted']} times shifted; "
            f"columns dropped: {', '.join(d['observations']['columns_dropped']) or 'none'}",
            f"notes: {notes['lines']} lines ({notes['malformed']} malformed, {notes['unreadable_lines_dropped']} "
            "unreadable and dropped), replaced: "
            + (", ".join(f"{k} {v}" for k, v in sorted(notes["replacements"].items())) or "nothing")
            + "; fields dropped: "
            + (", ".join(f"{k} {v}" for k, v in notes["fields_dropped"].items()) or "none"),
        ]
        if d["quarantine"]:
            reasons = Counter(q["reason"] for q in d["quarantine"])
            lines.append(
                f"quarantined images: {len(d['quarantine'])} ("
                + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
                + ")"
            )
        if d["not_copied"]:
            lines.append(f"not copied: {len(d['not_copied'])} files (listed in {REPORT_FILE})")
        for warning in d.get("ground_truth_warnings") or []:
            lines.append(f"ground truth not copied: {warning}")
        return lines


def deidentify_cohort(
    in_dir: str | Path,
    out_dir: str | Path,
    key: DeidKey,
    options: DeidOptions | None = None,
    progress: Progress | None = None,
) -> DeidReport:
    """Write a de-identified copy of the cohort ``in_dir`` to ``out_dir`` (must not exist, or be empty)."""
    options = options or DeidOptions()
    source = Path(in_dir).resolve()
    out = Path(out_dir).resolve()
    files = read_cohort(source)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MmdxError(f"{out} exists and is not empty; choose a new output folder or delete it first")
    if out == source or source in out.parents or out in source.parents:
        raise MmdxError(f"the output {out} must lie outside the input cohort {source} (and not contain it)")
    if options.quarantine_dir is not None:
        qdir = Path(options.quarantine_dir).resolve()
        if qdir == out or out in qdir.parents:
            raise MmdxError(f"the quarantine folder {qdir} must not lie inside the output {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        report = _CohortDeidentification(files, staging, key, options, progress).run()
        report.write(staging / REPORT_FILE)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


# ---------------------------------------------------------------------------------------------------------
# Images (run in worker processes)
# ---------------------------------------------------------------------------------------------------------
@dataclass
class _ImageJob:
    kind: str  # "series" | "dicom" | "nifti"
    source: str  # absolute path
    target: str  # absolute path in the staging folder
    patient: PatientContext
    secret: bytes
    options: DicomOptions


class NiftiUnsupported(Exception):
    pass


#: free-text fields of a NIfTI-1 header: (byte offset, length) of db_name, descrip, aux_file, intent_name
NIFTI1_TEXT_FIELDS = ((4, 18), (148, 80), (228, 24), (328, 16))


def scrub_nifti(source: Path, target: Path) -> dict[str, int]:
    """Copy a single-file NIfTI-1 image with its free-text header fields zeroed and its extensions dropped.

    Voxels, geometry and every other header field are copied byte for byte. Gzip output is written with a
    zero timestamp and no file name, so it is reproducible. Raises :class:`NiftiUnsupported` for NIfTI-2,
    header/image pairs and anything that is not NIfTI-1, and for a file whose header mmdx refuses before
    reading it (:mod:`mmdx.data.image_headers`: too large, or less voxel data than declared), so that a
    decompression bomb is never inflated in memory.
    """
    try:
        check_nifti_header(source, source.name, None, imaging.MAX_VOXELS)
    except ImageReadError as exc:
        raise NiftiUnsupported(exc.issue.message) from None
    raw = source.read_bytes()
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    if len(data) < 348:
        raise NiftiUnsupported("shorter than a NIfTI-1 header")
    if struct.unpack("<i", data[:4])[0] == 348:
        endian = "<"
    elif struct.unpack(">i", data[:4])[0] == 348:
        endian = ">"
    else:
        raise NiftiUnsupported("not a NIfTI-1 header")
    if data[344:348] != b"n+1\0":
        raise NiftiUnsupported("not a single-file NIfTI-1 image")
    header = bytearray(data[:348])
    counts = {"header_fields_cleared": 0, "extensions_removed": 0}
    for offset, length in NIFTI1_TEXT_FIELDS:
        if any(header[offset : offset + length]):
            header[offset : offset + length] = bytes(length)
            counts["header_fields_cleared"] += 1
    vox_offset = int(struct.unpack(f"{endian}f", bytes(header[108:112]))[0])
    if len(data) >= 352 and data[348] != 0:
        header[108:112] = struct.pack(f"{endian}f", 352.0)
        body = b"\0\0\0\0" + data[vox_offset:]
        counts["extensions_removed"] += 1
    else:
        body = data[348:]
    out = bytes(header) + body
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.name.endswith(".gz"):
        out = gzip.compress(out, compresslevel=6, mtime=0)
    target.write_bytes(out)
    return counts


def _run_image_job(job: _ImageJob) -> dict:
    """De-identify one case image; returns a plain summary (quarantine reason, files, what was found)."""
    source, target = Path(job.source), Path(job.target)
    summary: dict = {"quarantine": None, "files_in": 0, "files_written": 0, "skipped": [], "nifti": None}
    if job.kind == "nifti":
        summary["files_in"] = 1
        try:
            summary["nifti"] = scrub_nifti(source, target)
            summary["files_written"] = 1
        except (NiftiUnsupported, OSError, EOFError, gzip.BadGzipFile, struct.error):
            summary["quarantine"] = QuarantineReason.NIFTI_UNSUPPORTED.value
            if target.exists():
                target.unlink()
        summary["dicom"] = DicomResult()
        return summary
    deidentifier = DicomDeidentifier(DeidKey(job.secret), job.options)
    if job.kind == "series":
        sources = sorted(p for p in source.iterdir() if p.is_file())
        targets = [target / f"{i:04d}.dcm" for i in range(len(sources))]
    else:
        sources, targets = [source], [target]
    combined = DicomResult()
    written = 0
    for src, dst in zip(sources, targets, strict=True):
        summary["files_in"] += 1
        result = deidentifier.deidentify_file(src, dst, job.patient)
        if result.quarantine is QuarantineReason.NOT_DICOM and job.kind == "series":
            summary["skipped"].append(src.name)  # a stray non-DICOM file in a series folder is left behind
            continue
        if result.quarantine is not None:
            summary["quarantine"] = result.quarantine.value
            break
        combined.merge(result)
        written += 1
    if summary["quarantine"] is not None:
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        written = 0
        combined = DicomResult()
    summary["files_written"] = written
    summary["dicom"] = combined
    return summary


# ---------------------------------------------------------------------------------------------------------
# The cohort
# ---------------------------------------------------------------------------------------------------------
#: a pseudonym written by this module; the scrubber leaves these alone
PSEUDONYM = re.compile(r"\b[PCE]-[0-9a-f]{10}\b")
#: what an image path pointing outside the input cohort becomes: it still escapes, so validation still
#: rejects the case, but nothing of the original path is kept
ESCAPED_PATH = "../outside-the-cohort"
_TOKEN = re.compile(r"[^\W_][\w-]*[^\W_]|[^\W_]")
_CASE_ID_IN_RAW = re.compile(r'"case_id"\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(\d+)\b)')


@dataclass
class _Identity:
    names: set[str] = field(default_factory=set)
    phrases: dict[str, Placeholder] = field(default_factory=dict)

    def frozen(self) -> PatientIdentity:
        return PatientIdentity(
            names=frozenset(n.lower() for n in self.names),
            phrases=tuple(sorted(self.phrases.items())),
        )


class _CohortDeidentification:
    def __init__(
        self, files: CohortFiles, out: Path, key: DeidKey, options: DeidOptions, progress: Progress | None
    ) -> None:
        self.files = files
        self.root = files.root
        self.out = out
        self.key = key
        self.options = options
        self.progress = progress
        self._pseudonyms: dict[str, dict[str, str]] = {"P": {}, "C": {}, "E": {}}
        self._reverse: dict[str, str] = {}
        self.patient_of_case: dict[str, str] = {}
        self.identity: dict[str, _Identity] = {}
        self.global_names: set[str] = set()
        self.global_ids: set[str] = set()
        self.consumed: set[Path] = set()
        self.image_map: dict[str, str | None] = {}
        self.not_copied: list[dict] = []
        self.note_counts: Counter = Counter()
        self.scrubber: NoteScrubber | None = None
        self.report: dict = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "method": {
                "dicom_profile": "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile",
                "dicom_options": self.options.dicom.method_codes(),
                "date_shift": "one offset per patient, -365 to -1 days, derived from the key",
                "pseudonyms": "P-/C- followed by 10 hex digits of HMAC-SHA256 under the key",
                "uids": "2.25.<128 bits of HMAC-SHA256 under the key>",
                "private_allowlist": sorted(
                    f"{g:04X},{c},{e:02X}" for g, c, e in self.options.dicom.private_allowlist
                ),
                "key_fingerprint": key.fingerprint(),
            },
        }

    # -- pseudonyms -------------------------------------------------------------------------------------------
    def pseudonym(self, prefix: str, original: str) -> str:
        table = self._pseudonyms[prefix]
        if original not in table:
            value = self.key.pseudonym(prefix, original)
            if value in self._reverse and self._reverse[value] != original:
                kind = {"P": "patient", "C": "case", "E": "encounter"}[prefix]
                raise MmdxError(
                    f"two different {kind} IDs map to the pseudonym {value}; de-identify again with a new key file"
                )
            self._reverse[value] = original
            table[original] = value
        return table[original]

    def case(self, case_id: str | None) -> str | None:
        return None if case_id is None else self.pseudonym("C", case_id)

    def shift_of_case(self, case_id: str | None) -> int:
        patient = self.patient_of_case.get(case_id or "")
        return self.key.day_shift(patient if patient is not None else f"case/{case_id}")

    def identity_of_case(self, case_id: str | None) -> PatientIdentity | None:
        patient = self.patient_of_case.get(case_id or "")
        ident = self.identity.get(patient) if patient is not None else None
        return ident.frozen() if ident is not None else None

    def map_tokens(self, text: str) -> str:
        """Replace every original case or patient ID appearing as a token of ``text`` by its pseudonym."""

        def repl(match: re.Match) -> str:
            token = match.group(0)
            for prefix in ("C", "P", "E"):
                if token in self._pseudonyms[prefix]:
                    return self._pseudonyms[prefix][token]
            return token

        return _TOKEN.sub(repl, text)

    def safe_text(self, text: str, case_id: str | None = None) -> str:
        assert self.scrubber is not None
        return self.scrubber.scrub(self.map_tokens(text), self.identity_of_case(case_id)).text

    # -- the run ----------------------------------------------------------------------------------------------
    def run(self) -> DeidReport:
        cases = self.files.cases
        for row in cases.to_dict(orient="records"):
            cid, pid = row.get("case_id"), row.get("patient_id")
            if cid is not None and pid is not None:
                self.patient_of_case.setdefault(cid, pid)
            if cid is not None:
                self.case(cid)
                self.global_ids.add(cid)
            if pid is not None:
                self.pseudonym("P", pid)
                self.global_ids.add(pid)
                self.identity.setdefault(pid, _Identity())
        self._register_encounters()
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        start = clock

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[name] = now - clock
            clock = now

        self._identities_from_table()
        self._images()
        lap("images")
        self.scrubber = NoteScrubber(names=self.global_names, identifiers=self.global_ids, protect=PSEUDONYM)
        self._write_cases()
        self._observations()
        lap("tables")
        joined = self._notes()
        lap("notes")
        self._ground_truth(joined)
        self._cohort_yaml()
        self._not_copied()
        lap("ground_truth")
        timings["total"] = time.perf_counter() - start
        self.report["not_copied"] = sorted(self.not_copied, key=lambda d: (d["path"], d["reason"]))
        return DeidReport(self.report, timings)

    def _register_encounters(self) -> None:
        """Encounter IDs of the tables and notes get their pseudonyms first, so free text mentioning one gets
        the same pseudonym (see map_tokens)."""
        tables = [self.files.cases, self.files.observations]
        for frame in tables:
            if frame is not None and ENCOUNTER_ID in frame.columns:
                for value in frame[ENCOUNTER_ID]:
                    if value is not None:
                        self.pseudonym("E", value)
                        self.global_ids.add(value)
        for _, raw in self.files.note_lines:
            doc = _note_document(raw)
            value = doc.get(ENCOUNTER_ID) if doc is not None else None
            if isinstance(value, str) and value:
                self.pseudonym("E", value)
                self.global_ids.add(value)

    def known_case_columns(self) -> set[str]:
        """The cases-table columns that may leave: the format's, the declared subgroups, the kept extras."""
        subgroups = self.files.spec.get("subgroups") or []
        return set(CASE_FORMAT_COLUMNS) | {str(c) for c in subgroups} | set(self.options.keep_columns)

    # -- identities ---------------------------------------------------------------------------------------------
    def dropped_columns(self) -> dict[str, Placeholder]:
        drop = self.options.drop_columns
        return {c: drop[normalise_column(c)] for c in self.files.cases.columns if normalise_column(c) in drop}

    def _identities_from_table(self) -> None:
        dropped = self.dropped_columns()
        for row in self.files.cases.to_dict(orient="records"):
            pid = row.get("patient_id")
            ident = self.identity.get(pid) if pid is not None else None
            for column, placeholder in dropped.items():
                value = row.get(column)
                if value is None:
                    continue
                if placeholder is Placeholder.NAME:
                    words = name_components(value)
                    self.global_names |= words
                    if ident is not None:
                        ident.names |= words
                else:
                    if placeholder is Placeholder.ID:
                        self.global_ids.add(value)
                    if ident is not None:
                        ident.phrases[value] = placeholder

    # -- images -----------------------------------------------------------------------------------------------
    def _images(self) -> None:
        cases = self.files.cases
        jobs: list[tuple[str, str, _ImageJob]] = []  # (source rel, case pseudonym, job)
        quarantine: list[dict] = []
        missing = escapes = 0
        if "image" in cases.columns:
            for row in cases.to_dict(orient="records"):
                rel, cid = row.get("image"), row.get("case_id")
                if rel is None or rel in self.image_map or cid is None:
                    continue
                pseudo = self.case(cid)
                try:
                    path = resolve_in_cohort(self.root, rel)
                except PathEscapesCohort:
                    self.image_map[rel] = ESCAPED_PATH  # never read outside the cohort
                    escapes += 1
                    continue
                name = rel.lower()
                suffix = next((s for s in NIFTI_SUFFIXES if name.endswith(s)), "")
                if path.is_dir():
                    kind, target = "series", f"images/{pseudo}"
                elif suffix:
                    kind, target = "nifti", f"images/{pseudo}{suffix}"
                else:
                    kind, target = "dicom", f"images/{pseudo}.dcm"
                self.image_map[rel] = target
                if not path.exists():
                    missing += 1  # kept as a pseudonymous path, so validation still reports IMAGE_NOT_FOUND
                    continue
                patient = self.patient_of_case.get(cid)
                context = PatientContext(
                    pseudonym=self.pseudonym("P", patient) if patient else self.case(cid) or "",
                    day_shift=self.shift_of_case(cid),
                )
                job = _ImageJob(
                    kind, str(path), str(self.out / target), context, self.key._secret, self.options.dicom
                )
                jobs.append((rel, cid, job))
                self.consumed |= set(path.iterdir()) if path.is_dir() else {path}
        results = self._run_jobs([j for _, _, j in jobs])
        dicom_in = dicom_written = 0
        actions: Counter = Counter()
        attributes: Counter = Counter()
        nifti = Counter()
        for (rel, cid, job), summary in zip(jobs, results, strict=True):
            if job.kind == "nifti":
                nifti["files"] += summary["files_written"]
                nifti.update(summary["nifti"] or {})
            else:
                dicom_in += summary["files_in"] - len(summary["skipped"])
                dicom_written += summary["files_written"]
            for name in summary["skipped"]:
                self.not_copied.append(
                    {"path": f"{self.image_map[rel]}/{self.safe_name(name)}", "reason": "not a DICOM file"}
                )
            if summary["quarantine"] is not None:
                quarantine.append(
                    {
                        "case_id": self.case(cid),
                        "image": self.image_map[rel],
                        "reason": summary["quarantine"],
                        "files": summary["files_in"],
                    }
                )
                self._keep_quarantined(Path(job.source), self.image_map[rel] or "")
                self.image_map[rel] = None
                continue
            found: DicomResult = summary["dicom"]
            actions.update(found.actions)
            attributes.update(found.attributes)
            patient = self.patient_of_case.get(cid)
            self.global_names |= found.names
            self.global_ids |= found.identifiers
            if patient is not None:
                ident = self.identity.setdefault(patient, _Identity())
                ident.names |= found.names
                for phrase in found.phrases:
                    ident.phrases.setdefault(
                        phrase, Placeholder.ADDRESS if any(c.isalpha() for c in phrase) else Placeholder.PHONE
                    )
                for value in found.identifiers:
                    ident.phrases.setdefault(value, Placeholder.ID)
        self.report["dicom"] = {
            "files_in": dicom_in,
            "files_written": dicom_written,
            "files_quarantined": sum(
                q["files"] for q in quarantine if not q["image"].endswith(NIFTI_SUFFIXES)
            ),
            "actions": dict(sorted(actions.items())),
            "attributes": dict(sorted(attributes.items())),
        }
        self.report["nifti"] = {
            "files": nifti["files"],
            "header_fields_cleared": nifti["header_fields_cleared"],
            "extensions_removed": nifti["extensions_removed"],
        }
        self.report["images"] = {
            "referenced": len(self.image_map),
            "missing": missing,
            "path_escapes_cohort": escapes,
        }
        self.report["quarantine"] = sorted(quarantine, key=lambda q: q["case_id"] or "")

    def _run_jobs(self, jobs: list[_ImageJob]) -> list[dict]:
        results: list[dict] = []
        total = len(jobs)
        if self.options.workers > 1 and total > 4:
            with ProcessPoolExecutor(max_workers=self.options.workers, initializer=ignore_ctrl_c) as pool:
                for done, result in enumerate(pool.map(_run_image_job, jobs, chunksize=4), start=1):
                    results.append(result)
                    if self.progress:
                        self.progress(done, total)
        else:
            for done, job in enumerate(jobs, start=1):
                results.append(_run_image_job(job))
                if self.progress:
                    self.progress(done, total)
        return results

    def _keep_quarantined(self, source: Path, target: str) -> None:
        if self.options.quarantine_dir is None:
            return
        destination = Path(self.options.quarantine_dir) / Path(target).name
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if source.is_dir():
            shutil.copytree(source, destination, dirs_exist_ok=True)
        else:
            shutil.copy2(source, destination)

    def safe_name(self, name: str) -> str:
        return self.map_tokens(name) if self.scrubber is None else self.safe_text(name)

    # -- tables -----------------------------------------------------------------------------------------------
    def _write_cases(self) -> None:
        cases = self.files.cases
        dropped = self.dropped_columns()
        known = self.known_case_columns()
        kept = [c for c in cases.columns if c not in dropped and c in known]
        unknown = [c for c in cases.columns if c not in dropped and c not in known]
        rows = []
        counts = Counter()
        for row in cases.to_dict(orient="records"):
            cid, pid = row.get("case_id"), row.get("patient_id")
            out: dict = {}
            for column in kept:
                value = row.get(column)
                norm = normalise_column(column)
                if value is None:
                    out[column] = None
                elif column == "case_id":
                    out[column] = self.case(value)
                elif column == "patient_id":
                    out[column] = self.pseudonym("P", value)
                elif column == "image":
                    out[column] = self.image_map.get(value)
                elif column == ENCOUNTER_ID:
                    out[column] = self.pseudonym("E", value)
                elif norm == "age":
                    out[column] = self._cap_age(value, counts)
                elif norm in SAFE_COLUMNS:
                    out[column] = value
                elif "date" in norm.split("_") or "time" in norm.split("_") or norm.endswith("_at"):
                    shifted = shift_iso(value, self.shift_of_case(cid))
                    counts["dates_shifted" if shifted is not None else "dates_unparseable_emptied"] += 1
                    out[column] = shifted
                else:
                    scrubbed = self.safe_text(value, cid) if not _is_number(value) else value
                    counts["cells_scrubbed"] += scrubbed != value
                    out[column] = scrubbed
            rows.append(out)
            if pid is None:
                counts["rows_without_patient_id"] += 1
        frame = pd.DataFrame(rows, columns=kept)
        _write_table(frame, self.out / self.files.cases_file)
        self.consumed.add(self.root / self.files.cases_file)
        self.report["cases"] = {
            "rows": len(rows),
            "patients": len(self._pseudonyms["P"]),
            "columns_dropped": sorted(dropped),
            "columns_not_in_the_format": sorted(self.safe_name(c) for c in unknown),
            "columns_kept": kept,
            **{
                k: counts[k]
                for k in ("ages_capped", "dates_shifted", "dates_unparseable_emptied", "cells_scrubbed")
            },
        }

    def _cap_age(self, value: str, counts: Counter) -> str:
        try:
            age = float(value)
        except ValueError:
            counts["cells_scrubbed"] += 1
            return self.safe_text(value)
        limit = self.options.dicom.max_age
        if age > limit:
            counts["ages_capped"] += 1
            return str(limit + 1)
        return value

    def _observations(self) -> None:
        frame, name = self.files.observations, self.files.observations_file
        counts = Counter()
        if frame is None or name is None:
            self.report["observations"] = {
                "rows": 0,
                "times_shifted": 0,
                "times_unparseable": 0,
                "columns_dropped": [],
            }
            return
        rows = []
        columns = [c for c in frame.columns if c in OBSERVATION_FORMAT_COLUMNS]
        dropped = [c for c in frame.columns if c not in OBSERVATION_FORMAT_COLUMNS]
        for row in frame[columns].to_dict(orient="records"):
            cid = row.get("case_id")
            out = {}
            for column, value in row.items():
                if value is None:
                    out[column] = None
                elif column == "case_id":
                    out[column] = self.case(value)
                elif column == ENCOUNTER_ID:
                    out[column] = self.pseudonym("E", value)
                elif column == "time":
                    shifted = shift_iso(value, self.shift_of_case(cid))
                    if shifted is None:
                        counts["times_unparseable"] += 1
                        out[column] = self.safe_text(value, cid)  # left for validation to report
                    else:
                        counts["times_shifted"] += 1
                        out[column] = shifted
                elif column in ("code", "value", "unit"):
                    out[column] = value
                else:
                    out[column] = self.safe_text(value, cid)
            rows.append(out)
        _write_table(pd.DataFrame(rows, columns=columns), self.out / name)
        self.consumed.add(self.root / name)
        self.report["observations"] = {
            "rows": len(rows),
            "times_shifted": counts["times_shifted"],
            "times_unparseable": counts["times_unparseable"],
            "columns_dropped": sorted(self.safe_name(c) for c in dropped),
        }

    def _notes(self) -> dict[str, str]:
        """Scrub notes.jsonl; returns the joined de-identified note text of each (pseudonymous) case."""
        path = self.root / NOTES_FILE
        by_case: dict[str, list[Note]] = {}
        counts = Counter()
        if not path.is_file():
            self.report["notes"] = {
                "lines": 0,
                "malformed": 0,
                "unreadable_lines_dropped": 0,
                "times_shifted": 0,
                "fields_dropped": {},
                "replacements": {},
            }
            return {}
        assert self.scrubber is not None
        lines = []
        for number, raw in self.files.note_lines:
            doc = _note_document(raw)
            if doc is None:
                counts["malformed"] += 1
                found = _CASE_ID_IN_RAW.search(raw)
                cid = (found.group(1) if found.group(1) is not None else found.group(2)) if found else None
                if cid is not None and cid in self.patient_of_case:
                    if found.group(2) is not None:  # a numeric id: the number itself becomes the pseudonym
                        raw = raw[: found.start(2)] + f'"{self.case(cid)}"' + raw[found.end(2) :]
                    raw = raw.replace(f'"{cid}"', f'"{self.case(cid)}"')
                result = self.scrubber.scrub(raw, self.identity_of_case(cid))
                self.note_counts.update(result.counts)
                lines.append(result.text)
                continue
            cid = note_case_id(doc)  # an integer id is an id too, and is pseudonymised like a string one
            identity = self.identity_of_case(cid)
            out = {}
            for field_name, value in doc.items():
                if field_name not in NOTE_FORMAT_FIELDS:
                    counts[f"field/{self.safe_name(str(field_name))}"] += 1
                elif field_name == "case_id":  # an id that is neither text nor a whole number is not copied
                    out[field_name] = None if cid is None else self.case(cid)
                elif field_name == ENCOUNTER_ID and isinstance(value, str):
                    out[field_name] = self.pseudonym("E", value)
                elif field_name == "time" and isinstance(value, str):
                    shifted = shift_iso(value, self.shift_of_case(cid))
                    counts["times_shifted" if shifted is not None else "times_unparseable"] += 1
                    out[field_name] = shifted if shifted is not None else self.safe_text(value, cid)
                elif isinstance(value, str):
                    result = self.scrubber.scrub(value, identity)  # IDs in prose become [ID]
                    self.note_counts.update(result.counts)
                    out[field_name] = result.text
                else:
                    out[field_name] = value
            lines.append(json.dumps(out, ensure_ascii=False))
            text = out.get("text")
            if cid is not None and isinstance(text, str) and text.strip():
                time = (
                    pd.Timestamp(out["time"])
                    if isinstance(out.get("time"), str) and _is_iso(out["time"])
                    else None
                )
                if time is not None and time.tzinfo is None:
                    time = time.tz_localize("UTC")
                note_type = out.get("note_type") if isinstance(out.get("note_type"), str) else None
                by_case.setdefault(self.case(cid) or "", []).append(Note(text, time, note_type, number))
        (self.out / NOTES_FILE).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        self.consumed.add(path)
        self.report["notes"] = {
            "lines": len(lines),
            "malformed": counts["malformed"],
            # lines that are not UTF-8 or too large: validation reports them; nothing of them is copied
            "unreadable_lines_dropped": sum(1 for i in self.files.read_issues if i.file == NOTES_FILE),
            "times_shifted": counts["times_shifted"],
            "fields_dropped": {
                k.split("/", 1)[1]: v for k, v in sorted(counts.items()) if k.startswith("field/")
            },
            "replacements": dict(sorted(self.note_counts.items())),
        }
        return {case: join_notes(notes) for case, notes in by_case.items()}

    # -- ground truth -------------------------------------------------------------------------------------------
    def _ground_truth(self, joined: dict[str, str]) -> None:
        folder = self.root / GROUND_TRUTH_DIR
        counts = Counter()
        if not folder.is_dir():
            self.report["ground_truth"] = {}
            return
        assert self.scrubber is not None
        self._copy_truth(folder, joined, counts)
        self._copy_defects(folder, counts)
        canaries = folder / PHI_CANARIES
        if canaries.is_file():
            self.not_copied.append(
                {
                    "path": f"{GROUND_TRUTH_DIR}/{PHI_CANARIES}",
                    "reason": "list of identifying values: withheld",
                }
            )
            self.consumed.add(canaries)
        self.report["ground_truth"] = dict(sorted(counts.items()))

    def _copy_truth(self, folder: Path, joined: dict[str, str], counts: Counter) -> None:
        """truth.jsonl with case IDs pseudonymised, masks copied and planted phrases re-spanned."""
        truth_path = folder / "truth.jsonl"
        truth = read_truth(self.root)
        if truth is not None:
            lines = []
            skipped = []
            for issue in truth.issues:  # not copied: a line in an unknown layout may hold anything
                skipped.append(
                    f"{issue.file} line {issue.row}: {issue.message}" if issue.row else issue.message
                )
                counts["truth_lines_skipped"] += 1
            if skipped:
                self.report["ground_truth_warnings"] = skipped
            for record in truth.records.values():
                original = record.get("case_id")
                pseudo = self.case(original) if isinstance(original, str) else None
                mask = record.get("mask")
                if isinstance(mask, str):
                    record["mask"] = self._copy_mask(mask, pseudo, counts)
                for phrase in record.get("planted_phrases") or []:
                    self._respan(phrase, joined.get(pseudo or "", ""), counts)
                record = _map_strings(record, self.map_tokens)
                record["case_id"] = pseudo
                lines.append(json.dumps(record))
                counts["truth_records"] += 1
            (self.out / GROUND_TRUTH_DIR).mkdir(parents=True, exist_ok=True)
            (self.out / GROUND_TRUTH_DIR / "truth.jsonl").write_text(
                "".join(line + "\n" for line in lines), encoding="utf-8"
            )
            self.consumed.add(truth_path)

    def _copy_defects(self, folder: Path, counts: Counter) -> None:
        """defects.json with case IDs, files and descriptions made safe."""
        defects_path = folder / "defects.json"
        defects, defect_issues = read_defects(self.root)
        if defect_issues:
            self.report.setdefault("ground_truth_warnings", []).extend(
                f"{i.file}: {i.message}" for i in defect_issues
            )
            counts["defects_skipped"] += 1
            self.not_copied.append(
                {
                    "path": f"{GROUND_TRUTH_DIR}/defects.json",
                    "reason": "not JSON within the limits, or not the defects schema: not copied",
                }
            )
            self.consumed.add(defects_path)
        if defects is not None:
            out = []
            for item in defects:
                item = dict(item)
                if isinstance(item.get("case_id"), str):
                    item["case_id"] = self.case(item["case_id"])
                if isinstance(item.get("file"), str):
                    item["file"] = self.image_map.get(item["file"], self.safe_text(item["file"]))
                if isinstance(item.get("what"), str):
                    item["what"] = self.safe_text(item["what"])
                out.append(item)
            (self.out / GROUND_TRUTH_DIR).mkdir(parents=True, exist_ok=True)
            (self.out / GROUND_TRUTH_DIR / "defects.json").write_text(
                json.dumps(out, indent=1), encoding="utf-8"
            )
            self.consumed.add(defects_path)
            counts["defects"] = len(out)

    def _copy_mask(self, mask: str, pseudo: str | None, counts: Counter) -> str | None:
        try:
            source = resolve_in_cohort(self.root, mask)
        except PathEscapesCohort:
            return None
        suffix = next((s for s in NIFTI_SUFFIXES if mask.lower().endswith(s)), "")
        if not suffix or pseudo is None:
            return None
        target = f"{GROUND_TRUTH_DIR}/masks/{pseudo}{suffix}"
        if source.is_file():
            try:
                scrub_nifti(source, self.out / target)
                counts["masks"] += 1
            except (NiftiUnsupported, OSError, EOFError, struct.error):
                counts["masks_not_copied"] += 1
                return None
            self.consumed.add(source)
        return target

    def _respan(self, phrase: dict, text: str, counts: Counter) -> None:
        """Recompute a planted phrase's character spans in the de-identified joined notes."""
        sentence = phrase.get("sentence")
        if not isinstance(sentence, str):
            return
        assert self.scrubber is not None
        sentence = self.scrubber.scrub(sentence).text
        phrase["sentence"] = sentence
        start = text.find(sentence) if text else -1
        if start < 0:
            phrase["span"] = phrase["finding_span"] = None
            counts["phrases_not_found"] += 1
            return
        phrase["span"] = [start, start + len(sentence)]
        finding = phrase.get("finding")
        if isinstance(finding, str):
            offset = sentence.lower().find(finding.lower())
            phrase["finding_span"] = None if offset < 0 else [start + offset, start + offset + len(finding)]
        counts["phrases_respanned"] += 1

    # -- cohort.yaml and the rest ---------------------------------------------------------------------------------
    def _cohort_yaml(self) -> None:
        spec = dict(self.files.spec)
        assert self.scrubber is not None
        spec["name"] = self.safe_text(str(spec["name"]))
        note = (
            "De-identified with mmdx deid: DICOM PS3.15 Basic Application Level Confidentiality Profile "
            "(options: " + ", ".join(self.options.dicom.method_codes()) + "); patient and case IDs "
            "pseudonymised, dates shifted per patient, notes scrubbed, identifier columns dropped."
        )
        description = self.safe_text(str(spec.get("description", ""))).strip()
        spec["description"] = f"{description} {note}".strip()
        catalogue = spec.get("feature_catalogue")
        if isinstance(catalogue, str):
            try:
                path = resolve_in_cohort(self.root, catalogue)
                if path.is_file():
                    target = self.out / Path(catalogue)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
                    self.consumed.add(path)
            except PathEscapesCohort:
                pass  # a catalogue outside the cohort is referenced, not copied
        (self.out / COHORT_FILE).write_text(
            yaml.safe_dump(spec, sort_keys=False, width=110), encoding="utf-8"
        )
        self.consumed.add(self.root / COHORT_FILE)

    def _not_copied(self) -> None:
        for path in sorted(self.root.rglob("*")):
            if not path.is_file() or path in self.consumed:
                continue
            rel = path.relative_to(self.root)
            if GROUND_TRUTH_DIR == rel.parts[0] and rel.name == PHI_CANARIES:
                continue
            self.not_copied.append(
                {
                    "path": self.safe_text(str(rel)),
                    "reason": "not referenced by the cohort: not de-identified",
                }
            )


def _note_document(raw: str) -> dict | None:
    """A JSON Lines line as a JSON object, or None when it is not one (malformed, too large or too deep)."""
    try:
        doc = parse_json_line(raw)
    except (JsonLimitExceeded, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_iso(value: str) -> bool:
    return shift_iso(value, 0) is not None


def _map_strings(obj, fn: Callable[[str], str]):
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, list):
        return [_map_strings(v, fn) for v in obj]
    if isinstance(obj, dict):
        return {k: _map_strings(v, fn) for k, v in obj.items()}
    return obj


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


__all__ = [
    "DIRECT_IDENTIFIER_COLUMNS",
    "DeidOptions",
    "DeidReport",
    "REPORT_FILE",
    "deidentify_cohort",
    "scrub_nifti",
]
