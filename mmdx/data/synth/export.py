"""A cohort directory written out as hospital data: FHIR R4 NDJSON, a MEDS dataset, OMOP CDM v5.4 tables.

``mmdx synth OUT --export fhir --export meds --export omop`` calls :func:`export_cohort` on the cohort it
just wrote, so that the importers can be tried -- and tested -- on data whose truth is known. Everything goes
under ``OUT/export/``:

* ``cases.csv`` -- the case list for ``mmdx import fhir`` and ``mmdx import omop``: ``case_id``,
  ``patient_id`` (the number that is the FHIR Patient id and the OMOP ``person_id``), ``encounter_id`` (the
  FHIR Encounter id and OMOP ``visit_occurrence_id``), ``label``, ``split``, ``index_time`` and the
  demographics. A case's index time is the cohort's own ``index_time`` if it has one, else one hour after the
  case's last dated observation or note (cases with neither are linked by their encounter alone);
* ``fhir/`` -- ``Patient``, ``Encounter``, ``Observation`` (LOINC code, ``valueQuantity`` in the site's unit
  with its UCUM code), ``DocumentReference`` (notes, inline text), ``DiagnosticReport`` (radiology reports as
  ``presentedForm``), ``ImagingStudy`` (the DICOM images' study and series UIDs) and ``Endpoint`` (the
  WADO-RS base URL) as bulk-data NDJSON files;
* ``meds/`` -- a MEDS 0.4 dataset (``data/*.parquet`` with ``subject_id, time, code, numeric_value,
  text_value`` and a ``unit`` column declared as a code modifier; ``metadata/codes.parquet`` linking each
  code to its LOINC code; ``metadata/subject_splits.parquet``; ``metadata/dataset.json``), and
  ``meds_labels.parquet``: one label per case at its index time (cases without any dated record have no
  MEDS events and no label row);
* ``omop/`` -- ``ddl.sql`` (the CDM v5.4 tables mmdx reads: ``concept``, ``person``, ``visit_occurrence``,
  ``measurement``, ``note``, and the imaging extension's ``image_occurrence``), one CSV per table and
  ``load.sql``, which creates and loads them: ``cd OUT/export/omop && psql "$URL" -f load.sql``.

Values keep the unit the site wrote (a non-UCUM spelling such as ``bpm`` or ``mg/dl`` is given with the UCUM
code the catalogue maps it to); MEDS stores values as float32, its standard's type. Identifiers: patients
are numbered in order of first appearance; the original patient id is ``Patient.identifier`` (FHIR),
``person_source_value`` (OMOP) and ``SOURCE_PATIENT//<id>`` (MEDS).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from mmdx.data.catalogue import FeatureCatalogue, ObservationError
from mmdx.data.cohort import read_cohort, resolve_in_cohort

EXPORT_FORMATS = ("fhir", "meds", "omop")
EXPORT_DIR = "export"
DEFAULT_WADO_URL = "http://127.0.0.1:8042/dicom-web"

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
RADIOLOGY_NOTE = "radiology report"

#: OMOP standard concepts used as they are (Gender, Visit and Type Concept vocabularies)
OMOP_MALE, OMOP_FEMALE, OMOP_INPATIENT_VISIT, OMOP_EHR = 8507, 8532, 9201, 32817
#: mmdx's own concept ids start in the range OMOP reserves for local concepts
OMOP_LOCAL_CONCEPT = 2_000_000_000


def _iso(stamp: pd.Timestamp | None) -> str | None:
    return None if stamp is None or pd.isna(stamp) else stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Cohort:
    """The cohort's raw rows, with every value resolved against the catalogue and ids renumbered."""

    def __init__(self, root: Path) -> None:
        files = read_cohort(root)
        self.root = files.root
        self.catalogue = FeatureCatalogue.load()
        cases = files.cases.copy()
        cases = cases[cases["case_id"].notna() & cases["patient_id"].notna()].drop_duplicates("case_id")
        obs = files.observations if files.observations is not None else pd.DataFrame(columns=["case_id"])
        obs = obs[obs["case_id"].isin(set(cases["case_id"]))].reset_index(drop=True)
        notes = []
        for _, line in files.note_lines:
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(doc, dict) and doc.get("case_id") in set(cases["case_id"]) and doc.get("text"):
                notes.append(doc)
        self.notes = pd.DataFrame(notes, columns=["case_id", "text", "note_type", "time"])
        resolved = [self._resolve(code, unit) for code, unit in zip(obs["code"], obs["unit"], strict=True)]
        obs["loinc"] = [r[0] for r in resolved]
        obs["ucum"] = [r[1] for r in resolved]
        obs["number"] = pd.to_numeric(obs["value"], errors="coerce")
        obs["stamp"] = pd.to_datetime(obs["time"], utc=True, errors="coerce", format="ISO8601")
        self.notes["stamp"] = pd.to_datetime(self.notes["time"], utc=True, errors="coerce", format="ISO8601")
        self.observations = obs
        first_patient = {p: i + 1 for i, p in enumerate(dict.fromkeys(cases["patient_id"]))}
        cases["person_id"] = cases["patient_id"].map(first_patient)
        cases["visit_id"] = np.arange(1, len(cases) + 1)
        last = pd.concat(
            [obs[["case_id", "stamp"]], self.notes[["case_id", "stamp"]]], ignore_index=True
        ).dropna()
        latest = last.groupby("case_id")["stamp"].max()
        earliest = last.groupby("case_id")["stamp"].min()
        own = (
            pd.to_datetime(cases["index_time"], utc=True, errors="coerce", format="ISO8601")
            if "index_time" in cases.columns
            else pd.Series(pd.NaT, index=cases.index, dtype="datetime64[ns, UTC]")
        )
        derived = cases["case_id"].map(latest + pd.Timedelta(hours=1))
        cases["index_stamp"] = own.where(own.notna(), pd.to_datetime(derived, utc=True))
        cases["start_stamp"] = pd.to_datetime(cases["case_id"].map(earliest), utc=True)
        self.cases = cases.reset_index(drop=True)
        self.by_case = self.cases.set_index("case_id")

    def _resolve(self, code: object, unit: object) -> tuple[str | None, str | None]:
        """``(LOINC code, UCUM code)`` of a raw observation; None where the catalogue cannot resolve it."""
        try:
            feature = self.catalogue.lookup(str(code))
        except ObservationError:
            return None, None
        try:
            return feature.loinc, feature.resolve_unit(str(unit))
        except ObservationError:
            return feature.loinc, None

    def demographics(self) -> list[str]:
        skip = {"case_id", "patient_id", "label", "split", "image", "index_time", "encounter_id"}
        return [
            c
            for c in self.cases.columns
            if c not in skip and c not in {"person_id", "visit_id", "index_stamp", "start_stamp"}
        ]

    def image_series(self) -> dict[str, dict]:
        """case_id -> the DICOM image's study/series UIDs and acquisition time (or a NIfTI file's path)."""
        from pydicom import dcmread
        from pydicom.errors import InvalidDicomError

        from mmdx.data.index_time import dicom_acquired

        out = {}
        for row in self.cases.itertuples(index=False):
            rel = getattr(row, "image", None)
            if not rel:
                continue
            try:
                path = resolve_in_cohort(self.root, rel)
            except ValueError:
                continue
            if not path.exists():
                continue
            files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
            entry = {
                "path": str(path),
                "study_uid": None,
                "series_uid": None,
                "acquired": None,
                "count": len(files),
            }
            try:
                ds = dcmread(files[0], stop_before_pixels=True)
                entry.update(
                    study_uid=str(ds.StudyInstanceUID),
                    series_uid=str(ds.SeriesInstanceUID),
                    modality=str(ds.get("Modality", "OT")),
                    acquired=dicom_acquired(path),
                )
            except (InvalidDicomError, OSError, AttributeError, IndexError, ValueError):
                digest = int(hashlib.sha256(str(rel).encode()).hexdigest()[:24], 16)
                entry.update(study_uid=f"2.25.{digest}", series_uid=f"2.25.{digest + 1}", modality="OT")
                entry["nifti"] = True
            out[row.case_id] = entry
        return out


def _write_cases(cohort: _Cohort, path: Path) -> None:
    cases = cohort.cases
    frame = pd.DataFrame(
        {
            "case_id": cases["case_id"],
            "patient_id": cases["person_id"].astype(str),
            "encounter_id": cases["visit_id"].astype(str),
            "label": cases["label"],
            "split": cases.get("split"),
            "index_time": [_iso(t) for t in cases["index_stamp"]],
        }
    )
    for column in cohort.demographics():
        frame[column] = cases[column]
    frame.to_csv(path, index=False)


# ---------------------------------------------------------------------------------------------------------
# FHIR
# ---------------------------------------------------------------------------------------------------------
def _write_ndjson(path: Path, resources: Iterable[dict]) -> int:
    """Write one resource per line; returns how many."""
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for resource in resources:
            fh.write(json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    return n


def _fhir_patients(cases: pd.DataFrame) -> Iterator[dict]:
    for row in cases.drop_duplicates("person_id").itertuples(index=False):
        resource = {
            "resourceType": "Patient",
            "id": str(row.person_id),
            "identifier": [{"system": "urn:mmdx:patient_id", "value": str(row.patient_id)}],
        }
        sex = getattr(row, "sex", None)
        if sex in ("F", "M"):
            resource["gender"] = "female" if sex == "F" else "male"
        yield resource


def _fhir_encounters(cases: pd.DataFrame) -> Iterator[dict]:
    for row in cases.itertuples(index=False):
        period = {k: _iso(v) for k, v in (("start", row.start_stamp), ("end", row.index_stamp)) if _iso(v)}
        yield {
            "resourceType": "Encounter",
            "id": str(row.visit_id),
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": f"Patient/{row.person_id}"},
            **({"period": period} if period else {}),
        }


def _fhir_observations(cohort: _Cohort) -> Iterator[dict]:
    for i, row in enumerate(cohort.observations.itertuples(index=False), start=1):
        case = cohort.by_case.loc[row.case_id]
        coding = {"system": LOINC_SYSTEM, "code": row.loinc} if row.loinc else {"code": str(row.code)}
        quantity: dict = {"unit": str(row.unit)}
        if not math.isnan(row.number):
            integral = float(row.number).is_integer() and "." not in str(row.value)
            quantity["value"] = int(row.number) if integral else float(row.number)
        if row.ucum:
            quantity.update(system=UCUM_SYSTEM, code=row.ucum)
        resource = {
            "resourceType": "Observation",
            "id": f"obs-{i}",
            "status": "final",
            "code": {"coding": [coding], "text": str(row.code)},
            "subject": {"reference": f"Patient/{case.person_id}"},
            "encounter": {"reference": f"Encounter/{case.visit_id}"},
            "valueQuantity": quantity,
        }
        if isinstance(row.time, str) and row.time:
            resource["effectiveDateTime"] = row.time
        yield resource


def _fhir_documents(cohort: _Cohort, reports: bool) -> Iterator[dict]:
    """Radiology notes as DiagnosticReports (``reports``), the others as DocumentReferences."""
    for i, row in enumerate(cohort.notes.itertuples(index=False), start=1):
        if (row.note_type == RADIOLOGY_NOTE) != reports:
            continue
        case = cohort.by_case.loc[row.case_id]
        attachment = {
            "contentType": "text/plain; charset=utf-8",
            "data": base64.b64encode(row.text.encode("utf-8")).decode("ascii"),
        }
        kind = {"text": row.note_type or "note"}
        common = {"id": f"note-{i}", "subject": {"reference": f"Patient/{case.person_id}"}}
        dated = isinstance(row.time, str) and row.time
        if reports:
            resource = {
                "resourceType": "DiagnosticReport",
                **common,
                "status": "final",
                "code": kind,
                "encounter": {"reference": f"Encounter/{case.visit_id}"},
                "presentedForm": [attachment],
            }
            if dated:
                resource["issued"] = row.time
        else:
            resource = {
                "resourceType": "DocumentReference",
                **common,
                "status": "current",
                "type": kind,
                "context": {"encounter": [{"reference": f"Encounter/{case.visit_id}"}]},
                "content": [{"attachment": attachment}],
            }
            if dated:
                resource["date"] = row.time
        yield resource


def _fhir_studies(cohort: _Cohort, series: dict[str, dict]) -> Iterator[dict]:
    for case_id, entry in series.items():
        case = cohort.by_case.loc[case_id]
        started = _iso(entry["acquired"])
        yield {
            "resourceType": "ImagingStudy",
            "id": f"study-{case.visit_id}",
            "status": "available",
            "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{entry['study_uid']}"}],
            "subject": {"reference": f"Patient/{case.person_id}"},
            "encounter": {"reference": f"Encounter/{case.visit_id}"},
            **({"started": started} if started else {}),
            "endpoint": [{"reference": "Endpoint/wado"}],
            "series": [
                {
                    "uid": entry["series_uid"],
                    "modality": {
                        "system": "http://dicom.nema.org/resources/ontology/DCM",
                        "code": entry["modality"],
                    },
                    "numberOfInstances": entry["count"],
                    **({"started": started} if started else {}),
                }
            ],
        }


def _fhir_endpoint(wado_url: str) -> dict:
    return {
        "resourceType": "Endpoint",
        "id": "wado",
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "dicom-wado-rs",
        },
        "payloadType": [{"text": "DICOM"}],
        "address": wado_url,
    }


def _fhir(cohort: _Cohort, out: Path, wado_url: str) -> dict:
    """One ``<ResourceType>.ndjson`` per resource type; returns the count of each."""
    out.mkdir(parents=True, exist_ok=True)
    series = {k: v for k, v in cohort.image_series().items() if not v.get("nifti")}
    resources = {
        "Patient": _fhir_patients(cohort.cases),
        "Encounter": _fhir_encounters(cohort.cases),
        "Observation": _fhir_observations(cohort),
        "DocumentReference": _fhir_documents(cohort, reports=False),
        "DiagnosticReport": _fhir_documents(cohort, reports=True),
        "ImagingStudy": _fhir_studies(cohort, series),
        "Endpoint": [_fhir_endpoint(wado_url)] if series else [],
    }
    return {kind: _write_ndjson(out / f"{kind}.ndjson", items) for kind, items in resources.items()}


# ---------------------------------------------------------------------------------------------------------
# MEDS
# ---------------------------------------------------------------------------------------------------------
MEDS_NOTE_PREFIX = "NOTE//"
MEDS_GENDER_PREFIX = "GENDER//"


def _meds(cohort: _Cohort, root: Path, labels_path: Path) -> dict:
    import meds
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / meds.data_subdirectory).mkdir(parents=True, exist_ok=True)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    cases = cohort.cases
    rows: list[dict] = []
    for row in cases.drop_duplicates("person_id").itertuples(index=False):
        rows.append({"subject_id": row.person_id, "time": None, "code": f"SOURCE_PATIENT//{row.patient_id}"})
        sex = getattr(row, "sex", None)
        if sex:
            rows.append({"subject_id": row.person_id, "time": None, "code": f"{MEDS_GENDER_PREFIX}{sex}"})
        site = getattr(row, "site", None)
        if site:
            rows.append({"subject_id": row.person_id, "time": None, "code": f"SITE//{site}"})
        age = pd.to_numeric(getattr(row, "age", None), errors="coerce")
        if not pd.isna(age) and not pd.isna(row.index_stamp):
            # half a year inside the age in years, so that the age at the index time comes out the same
            birth = row.index_stamp - pd.Timedelta(days=365.25 * (float(age) + 0.5))
            rows.append({"subject_id": row.person_id, "time": birth, "code": meds.birth_code})
    person = cases.set_index("case_id")["person_id"]
    obs = cohort.observations
    dated = obs[obs["loinc"].notna() & obs["stamp"].notna()]
    for row in dated.itertuples(index=False):
        rows.append(
            {
                "subject_id": person[row.case_id],
                "time": row.stamp,
                "code": f"LOINC/{row.loinc}",
                "numeric_value": row.number,
                "unit": row.ucum or str(row.unit),
            }
        )
    for row in cohort.notes[cohort.notes["stamp"].notna()].itertuples(index=False):
        rows.append(
            {
                "subject_id": person[row.case_id],
                "time": row.stamp,
                "code": f"{MEDS_NOTE_PREFIX}{row.note_type or 'note'}",
                "text_value": row.text,
            }
        )
    frame = pd.DataFrame(rows, columns=["subject_id", "time", "code", "numeric_value", "text_value", "unit"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True).dt.tz_localize(None).astype("datetime64[us]")
    frame = frame.sort_values(["subject_id", "time"], na_position="first", kind="stable")
    schema = pa.schema(
        [
            ("subject_id", pa.int64()),
            ("time", pa.timestamp("us")),
            ("code", pa.string()),
            ("numeric_value", pa.float32()),
            ("text_value", pa.large_string()),
            ("unit", pa.string()),
        ]
    )
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    meds.DataSchema.validate(table)
    pq.write_table(table, root / meds.data_subdirectory / "0.parquet")
    codes = sorted(set(frame["code"]))
    catalogue_by_loinc = {f.loinc: f for f in cohort.catalogue}
    pq.write_table(
        pa.table(
            {
                "code": codes,
                "description": [
                    catalogue_by_loinc[c[6:]].display
                    if c.startswith("LOINC/") and c[6:] in catalogue_by_loinc
                    else None
                    for c in codes
                ],
                "parent_codes": [[c] if c.startswith("LOINC/") else None for c in codes],
            },
            schema=pa.schema(
                [("code", pa.string()), ("description", pa.string()), ("parent_codes", pa.list_(pa.string()))]
            ),
        ),
        root / meds.code_metadata_filepath,
    )
    split_names = {"train": meds.train_split, "val": meds.tuning_split, "test": meds.held_out_split}
    splits = cases.drop_duplicates("person_id")
    splits = splits[splits["split"].isin(split_names)] if "split" in splits.columns else splits.iloc[:0]
    pq.write_table(
        pa.table(
            {"subject_id": splits["person_id"].astype("int64"), "split": splits["split"].map(split_names)},
            schema=pa.schema([("subject_id", pa.int64()), ("split", pa.string())]),
        ),
        root / meds.subject_splits_filepath,
    )
    (root / meds.dataset_metadata_filepath).write_text(
        json.dumps(
            {
                "dataset_name": f"mmdx export of {cohort.root.name}",
                "dataset_version": "1",
                "etl_name": "mmdx synth --export meds",
                "meds_version": meds.__version__,
                "code_modifier_columns": ["unit"],
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    with_events = set(frame.loc[frame["time"].notna(), "subject_id"])
    labelled = cases[
        cases["index_stamp"].notna() & cases["label"].isin(["0", "1"]) & cases["person_id"].isin(with_events)
    ]
    labels = pa.table(
        {
            "subject_id": labelled["person_id"].astype("int64"),
            "prediction_time": labelled["index_stamp"].dt.tz_localize(None).astype("datetime64[us]"),
            "boolean_value": labelled["label"] == "1",
        },
        schema=pa.schema(
            [
                ("subject_id", pa.int64()),
                ("prediction_time", pa.timestamp("us")),
                ("boolean_value", pa.bool_()),
            ]
        ),
    )
    meds.LabelSchema.validate(labels)
    pq.write_table(labels, labels_path)
    return {"events": len(frame), "subjects": int(frame["subject_id"].nunique()), "labels": len(labelled)}


# ---------------------------------------------------------------------------------------------------------
# OMOP
# ---------------------------------------------------------------------------------------------------------
#: the CDM v5.4 columns of the tables mmdx reads (and the imaging extension's image_occurrence), in order
OMOP_TABLES: dict[str, list[tuple[str, str]]] = {
    "concept": [
        ("concept_id", "integer NOT NULL PRIMARY KEY"),
        ("concept_name", "varchar(255) NOT NULL"),
        ("domain_id", "varchar(20) NOT NULL"),
        ("vocabulary_id", "varchar(20) NOT NULL"),
        ("concept_class_id", "varchar(20) NOT NULL"),
        ("standard_concept", "varchar(1)"),
        ("concept_code", "varchar(50) NOT NULL"),
        ("valid_start_date", "date NOT NULL"),
        ("valid_end_date", "date NOT NULL"),
        ("invalid_reason", "varchar(1)"),
    ],
    "person": [
        ("person_id", "integer NOT NULL PRIMARY KEY"),
        ("gender_concept_id", "integer NOT NULL"),
        ("year_of_birth", "integer NOT NULL"),
        ("month_of_birth", "integer"),
        ("day_of_birth", "integer"),
        ("birth_datetime", "timestamp"),
        ("race_concept_id", "integer NOT NULL"),
        ("ethnicity_concept_id", "integer NOT NULL"),
        ("location_id", "integer"),
        ("provider_id", "integer"),
        ("care_site_id", "integer"),
        ("person_source_value", "varchar(50)"),
        ("gender_source_value", "varchar(50)"),
        ("gender_source_concept_id", "integer"),
        ("race_source_value", "varchar(50)"),
        ("race_source_concept_id", "integer"),
        ("ethnicity_source_value", "varchar(50)"),
        ("ethnicity_source_concept_id", "integer"),
    ],
    "visit_occurrence": [
        ("visit_occurrence_id", "integer NOT NULL PRIMARY KEY"),
        ("person_id", "integer NOT NULL"),
        ("visit_concept_id", "integer NOT NULL"),
        ("visit_start_date", "date NOT NULL"),
        ("visit_start_datetime", "timestamp"),
        ("visit_end_date", "date NOT NULL"),
        ("visit_end_datetime", "timestamp"),
        ("visit_type_concept_id", "integer NOT NULL"),
        ("provider_id", "integer"),
        ("care_site_id", "integer"),
        ("visit_source_value", "varchar(50)"),
        ("visit_source_concept_id", "integer"),
        ("admitted_from_concept_id", "integer"),
        ("admitted_from_source_value", "varchar(50)"),
        ("discharged_to_concept_id", "integer"),
        ("discharged_to_source_value", "varchar(50)"),
        ("preceding_visit_occurrence_id", "integer"),
    ],
    "measurement": [
        ("measurement_id", "bigint NOT NULL PRIMARY KEY"),
        ("person_id", "integer NOT NULL"),
        ("measurement_concept_id", "integer NOT NULL"),
        ("measurement_date", "date NOT NULL"),
        ("measurement_datetime", "timestamp"),
        ("measurement_time", "varchar(10)"),
        ("measurement_type_concept_id", "integer NOT NULL"),
        ("operator_concept_id", "integer"),
        ("value_as_number", "numeric"),
        ("value_as_concept_id", "integer"),
        ("unit_concept_id", "integer"),
        ("range_low", "numeric"),
        ("range_high", "numeric"),
        ("provider_id", "integer"),
        ("visit_occurrence_id", "integer"),
        ("visit_detail_id", "integer"),
        ("measurement_source_value", "varchar(50)"),
        ("measurement_source_concept_id", "integer"),
        ("unit_source_value", "varchar(50)"),
        ("unit_source_concept_id", "integer"),
        ("value_source_value", "varchar(50)"),
        ("measurement_event_id", "bigint"),
        ("meas_event_field_concept_id", "integer"),
    ],
    "note": [
        ("note_id", "bigint NOT NULL PRIMARY KEY"),
        ("person_id", "integer NOT NULL"),
        ("note_date", "date NOT NULL"),
        ("note_datetime", "timestamp"),
        ("note_type_concept_id", "integer NOT NULL"),
        ("note_class_concept_id", "integer NOT NULL"),
        ("note_title", "varchar(250)"),
        ("note_text", "text NOT NULL"),
        ("encoding_concept_id", "integer NOT NULL"),
        ("language_concept_id", "integer NOT NULL"),
        ("provider_id", "integer"),
        ("visit_occurrence_id", "integer"),
        ("visit_detail_id", "integer"),
        ("note_source_value", "varchar(50)"),
        ("note_event_id", "bigint"),
        ("note_event_field_concept_id", "integer"),
    ],
    "image_occurrence": [
        ("image_occurrence_id", "bigint NOT NULL PRIMARY KEY"),
        ("person_id", "integer NOT NULL"),
        ("procedure_occurrence_id", "bigint"),
        ("visit_occurrence_id", "integer"),
        ("anatomic_site_concept_id", "integer"),
        ("wadors_uri", "varchar(2000)"),
        ("local_path", "varchar(2000)"),
        ("image_occurrence_date", "date NOT NULL"),
        ("image_study_uid", "varchar(250) NOT NULL"),
        ("image_series_uid", "varchar(250) NOT NULL"),
        ("modality_concept_id", "integer NOT NULL"),
    ],
}
#: indexes the importer's queries use (person and visit lookups, concept codes)
OMOP_INDEXES = (
    ("measurement", "person_id, measurement_concept_id"),
    ("measurement", "visit_occurrence_id"),
    ("note", "person_id"),
    ("note", "visit_occurrence_id"),
    ("image_occurrence", "person_id"),
    ("concept", "vocabulary_id, concept_code"),
)


def omop_ddl() -> str:
    """``CREATE TABLE IF NOT EXISTS`` statements for :data:`OMOP_TABLES` (in the current schema)."""
    parts = []
    for table, columns in OMOP_TABLES.items():
        body = ",\n".join(f"  {name} {kind}" for name, kind in columns)
        parts.append(f"CREATE TABLE IF NOT EXISTS {table} (\n{body}\n);")
    for table, columns in OMOP_INDEXES:
        name = f"idx_{table}_{columns.replace(', ', '_')}"
        parts.append(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns});")
    return "\n".join(parts) + "\n"


#: the concepts every export holds, with fixed ids: (id, name, domain, vocabulary, class, code)
_OMOP_FIXED_CONCEPTS = (
    (OMOP_MALE, "MALE", "Gender", "Gender", "Gender", "M"),
    (OMOP_FEMALE, "FEMALE", "Gender", "Gender", "Gender", "F"),
    (OMOP_INPATIENT_VISIT, "Inpatient Visit", "Visit", "Visit", "Visit", "IP"),
    (OMOP_EHR, "EHR", "Type Concept", "Type Concept", "Type Concept", "OMOP4976890"),
)


class _OmopConcepts:
    """The export's ``concept`` table: the fixed concepts, then local ids given to each (vocabulary, code) as
    it is first asked for."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.ids: dict[tuple[str, str], int] = {}
        for fixed_id, name, domain, vocabulary, klass, code in _OMOP_FIXED_CONCEPTS:
            self.rows.append(self._row(fixed_id, name, domain, vocabulary, klass, code))

    @staticmethod
    def _row(concept_id: int, name: str, domain: str, vocabulary: str, klass: str, code: str) -> dict:
        return {
            "concept_id": concept_id,
            "concept_name": name,
            "domain_id": domain,
            "vocabulary_id": vocabulary,
            "concept_class_id": klass,
            "standard_concept": "S",
            "concept_code": code,
            "valid_start_date": "1970-01-01",
            "valid_end_date": "2099-12-31",
            "invalid_reason": None,
        }

    def id_of(self, vocabulary: str, code: str, name: str, domain: str, klass: str) -> int:
        key = (vocabulary, code)
        if key not in self.ids:
            self.ids[key] = OMOP_LOCAL_CONCEPT + len(self.ids) + 1
            self.rows.append(self._row(self.ids[key], name, domain, vocabulary, klass, code))
        return self.ids[key]

    def known(self, vocabulary: str, code: str) -> int:
        """The id of a concept already added, else 0 (OMOP's "no matching concept")."""
        return self.ids.get((vocabulary, code), 0)


def _write_omop_table(out: Path, name: str, rows: Iterable[dict]) -> int:
    """``out/<name>.csv`` with the columns of :data:`OMOP_TABLES`; returns how many rows."""
    columns = [c for c, _ in OMOP_TABLES[name]]
    n = 0
    with (out / f"{name}.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
            n += 1
    return n


def _omop_persons(cases: pd.DataFrame) -> Iterator[dict]:
    for row in cases.drop_duplicates("person_id").itertuples(index=False):
        age = pd.to_numeric(getattr(row, "age", None), errors="coerce")
        year = int(row.index_stamp.year - age) if not pd.isna(age) and not pd.isna(row.index_stamp) else 1900
        sex = getattr(row, "sex", None)
        yield {
            "person_id": row.person_id,
            "gender_concept_id": {"F": OMOP_FEMALE, "M": OMOP_MALE}.get(sex, 0),
            "year_of_birth": year,
            "race_concept_id": 0,
            "ethnicity_concept_id": 0,
            "person_source_value": row.patient_id,
            "gender_source_value": sex,
        }


def _omop_visits(cases: pd.DataFrame) -> Iterator[dict]:
    for row in cases.itertuples(index=False):
        start = row.start_stamp if not pd.isna(row.start_stamp) else row.index_stamp
        end = row.index_stamp if not pd.isna(row.index_stamp) else start
        if pd.isna(start):
            start = end = pd.Timestamp("1970-01-01", tz="UTC")
        yield {
            "visit_occurrence_id": row.visit_id,
            "person_id": row.person_id,
            "visit_concept_id": OMOP_INPATIENT_VISIT,
            "visit_start_date": start.strftime("%Y-%m-%d"),
            "visit_start_datetime": start.strftime("%Y-%m-%d %H:%M:%S"),
            "visit_end_date": end.strftime("%Y-%m-%d"),
            "visit_end_datetime": end.strftime("%Y-%m-%d %H:%M:%S"),
            "visit_type_concept_id": OMOP_EHR,
        }


def _omop_measurements(cohort: _Cohort, concepts: _OmopConcepts) -> Iterator[dict]:
    obs = cohort.observations
    for i, row in enumerate(obs[obs["stamp"].notna()].itertuples(index=False), start=1):
        case = cohort.by_case.loc[row.case_id]
        yield {
            "measurement_id": i,
            "person_id": case.person_id,
            "measurement_concept_id": concepts.known("LOINC", row.loinc),
            "measurement_date": row.stamp.strftime("%Y-%m-%d"),
            "measurement_datetime": row.stamp.strftime("%Y-%m-%d %H:%M:%S"),
            "measurement_type_concept_id": OMOP_EHR,
            "value_as_number": None if math.isnan(row.number) else row.value,
            "unit_concept_id": concepts.known("UCUM", row.ucum),
            "visit_occurrence_id": case.visit_id,
            "measurement_source_value": str(row.code)[:50],
            "unit_source_value": str(row.unit)[:50],
            "value_source_value": str(row.value)[:50],
        }


def _omop_notes(cohort: _Cohort) -> Iterator[dict]:
    for i, row in enumerate(cohort.notes[cohort.notes["stamp"].notna()].itertuples(index=False), start=1):
        case = cohort.by_case.loc[row.case_id]
        yield {
            "note_id": i,
            "person_id": case.person_id,
            "note_date": row.stamp.strftime("%Y-%m-%d"),
            "note_datetime": row.stamp.strftime("%Y-%m-%d %H:%M:%S"),
            "note_type_concept_id": OMOP_EHR,
            "note_class_concept_id": 0,
            "note_title": row.note_type,
            "note_text": row.text,
            "encoding_concept_id": 0,
            "language_concept_id": 0,
            "visit_occurrence_id": case.visit_id,
            "note_source_value": (row.note_type or "")[:50],
        }


def _omop_images(cohort: _Cohort, concepts: _OmopConcepts, wado_url: str) -> Iterator[dict]:
    """Image occurrences; each modality becomes a DICOM concept as it is met."""
    for i, (case_id, entry) in enumerate(cohort.image_series().items(), start=1):
        case = cohort.by_case.loc[case_id]
        when = entry["acquired"] if entry["acquired"] is not None else case.start_stamp
        if pd.isna(when):
            continue
        modality = concepts.id_of(
            "DICOM", entry["modality"], entry["modality"], "Meas Value", "DICOM Modality"
        )
        yield {
            "image_occurrence_id": i,
            "person_id": case.person_id,
            "visit_occurrence_id": case.visit_id,
            "wadors_uri": None
            if entry.get("nifti")
            else f"{wado_url}/studies/{entry['study_uid']}/series/{entry['series_uid']}",
            "local_path": entry["path"],
            "image_occurrence_date": when.strftime("%Y-%m-%d"),
            "image_study_uid": entry["study_uid"],
            "image_series_uid": entry["series_uid"],
            "modality_concept_id": modality,
        }


def _write_omop_scripts(out: Path) -> None:
    """``ddl.sql`` (the tables) and ``load.sql`` (creates them and copies the CSV files in, run by psql)."""
    (out / "ddl.sql").write_text(omop_ddl(), encoding="utf-8")
    load = [
        "-- Create the OMOP CDM v5.4 tables mmdx reads and load the CSV files beside this script.",
        '-- Run from this folder: cd <this folder> && psql "$URL" -f load.sql',
        "\\set ON_ERROR_STOP on",
        "\\i ddl.sql",
    ]
    for name in ("concept", "person", "visit_occurrence", "measurement", "note", "image_occurrence"):
        columns = ", ".join(c for c, _ in OMOP_TABLES[name])
        load.append(f"\\copy {name} ({columns}) FROM '{name}.csv' WITH (FORMAT csv, HEADER true)")
    (out / "load.sql").write_text("\n".join(load) + "\n", encoding="utf-8")


def _omop(cohort: _Cohort, out: Path, wado_url: str) -> dict:
    """One CSV file per OMOP table, with the scripts that create and load them; returns the row counts."""
    out.mkdir(parents=True, exist_ok=True)
    concepts = _OmopConcepts()
    for feature in cohort.catalogue:
        concepts.id_of("LOINC", feature.loinc, feature.display, "Measurement", "Lab Test")
        for unit in feature.units:
            concepts.id_of("UCUM", unit, unit, "Unit", "Unit")
    counts = {
        "person": _write_omop_table(out, "person", _omop_persons(cohort.cases)),
        "visit_occurrence": _write_omop_table(out, "visit_occurrence", _omop_visits(cohort.cases)),
        "measurement": _write_omop_table(out, "measurement", _omop_measurements(cohort, concepts)),
        "note": _write_omop_table(out, "note", _omop_notes(cohort)),
        "image_occurrence": _write_omop_table(
            out, "image_occurrence", _omop_images(cohort, concepts, wado_url)
        ),
    }
    # last: the image occurrences added their modalities' concepts
    counts["concept"] = _write_omop_table(out, "concept", concepts.rows)
    _write_omop_scripts(out)
    return counts


def export_cohort(
    cohort_dir: str | Path, formats: list[str] | tuple[str, ...], wado_url: str = DEFAULT_WADO_URL
) -> dict:
    """Write ``cohort_dir/export/``: the case list and each of ``formats`` (``fhir``, ``meds``, ``omop``).

    Returns ``{format: counts}``.
    """
    root = Path(cohort_dir)
    out = root / EXPORT_DIR
    out.mkdir(exist_ok=True)
    cohort = _Cohort(root)
    _write_cases(cohort, out / "cases.csv")
    summary: dict = {"cases": len(cohort.cases)}
    for fmt in formats:
        if fmt == "fhir":
            summary["fhir"] = _fhir(cohort, out / "fhir", wado_url)
        elif fmt == "meds":
            summary["meds"] = _meds(cohort, out / "meds", out / "meds_labels.parquet")
        elif fmt == "omop":
            summary["omop"] = _omop(cohort, out / "omop", wado_url)
        else:
            raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(EXPORT_FORMATS)}")
    return summary
