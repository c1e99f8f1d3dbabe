"""``mmdx import omop URL OUT --cases CASES.csv``: an OMOP CDM v5.4 database (PostgreSQL) into a cohort.

``URL`` is a SQLAlchemy URL (``postgresql://user:password@host/db``; psycopg 3 is the driver); ``--schema``
names the CDM schema when it is not on the connection's ``search_path``. The case list is a CSV file
(``--cases``: ``patient_id`` is the ``person_id``, ``encounter_id`` a ``visit_occurrence_id``) or a query
(``--cases-query``: any SELECT over the user's cohort and label tables returning the same columns, e.g.
``SELECT subject_id AS patient_id, cohort_start_date AS index_time, ... FROM results.cohort JOIN ...``).

The selection runs in the database: the cases go to a temporary table, and each query joins them to
``measurement`` (only the concepts of the catalogue's LOINC codes, found through ``concept``), ``note`` and
the imaging extension's ``image_occurrence``, by ``visit_occurrence_id`` when the case names a visit and
else by ``person_id``, and keeps only rows inside the index-time window of their kind. Rows stream through
a server-side cursor in batches of ``--batch-size`` rows, ordered by their key, so memory stays flat and an
interrupted import resumes after the last committed batch.

* ``measurement``: ``value_as_number`` in the unit of the UCUM concept ``unit_concept_id`` (``vocabulary_id``
  ``UCUM``; its ``concept_code`` is the UCUM code); a row whose unit has no UCUM concept is
  ``UNIT_NOT_UCUM`` (reported with its ``unit_source_value``). Measurements of the cases with concept 0 or a
  concept missing from ``concept`` are ``CONCEPT_UNKNOWN``. The time is ``measurement_datetime``, else the
  end of ``measurement_date``.
* ``note``: ``note_text``, typed by ``note_title`` (else ``note_source_value``), at ``note_datetime`` (else
  the end of ``note_date``).
* ``image_occurrence``: a series whose ``local_path`` exists on this machine is copied into ``images/``;
  else the case's image is ``dicomweb:<image_study_uid>/<image_series_uid>`` for ``mmdx import dicomweb``
  (the WADO-RS bases of ``wadors_uri`` are listed in the import report). Its time is the end of
  ``image_occurrence_date``.

Catalogue measurements of the cases' patients left in the database -- after a case's index time, before its
look-back window, of another visit -- are counted in the report (once per case they miss) without being
fetched.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mmdx.importers.registry import IMPORTERS, ImporterSpec, add_cohort_arguments, parse_lookback

if TYPE_CHECKING:
    from mmdx.importers.output import ImportOptions, ImportResult, Progress
    from mmdx.importers.staging import ImportStaging

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
REQUIRED_TABLES = ("person", "concept", "measurement")
OPTIONAL_TABLES = ("note", "image_occurrence", "visit_occurrence")
#: SQL for "known for certain at": the datetime, else the end of the date
_END_OF_DAY = "interval '1 day' - interval '1 microsecond'"


def engine_url(url: str):
    """A SQLAlchemy URL for ``url``: ``postgresql://`` is given the psycopg 3 driver."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from mmdx.errors import MmdxError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise MmdxError(
            f"cannot parse the database URL ({exc}); expected postgresql://user:password@host/db"
        ) from None
    if parsed.get_backend_name() != "postgresql":
        raise MmdxError(f"mmdx import omop reads PostgreSQL; the URL names '{parsed.get_backend_name()}'")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _queries(table) -> dict[str, str]:
    """The streaming queries, one per CDM table, over the temporary tables ``mmdx_cases`` and ``mmdx_features``.

    Each returns rows ordered by ``(key, case_id)`` after the bind parameters ``:after_key``/``:after_case``.
    """
    attach = (
        "x.person_id = c.person_id AND (c.visit_id IS NULL OR x.visit_occurrence_id = c.visit_id) "
        "AND (c.index_time IS NULL OR (x.known <= c.index_time AND (w.lookback IS NULL OR x.known >= c.index_time - w.lookback)))"
    )
    resume = "AND (x.key, c.case_id) > (:after_key, :after_case)"
    return {
        "measurement": f"""
            SELECT x.key, c.case_id, f.loinc, x.value_as_number, u.concept_code AS ucum, x.unit_source_value,
                   x.time_text
            FROM (SELECT m.measurement_id AS key, m.person_id, m.visit_occurrence_id, m.measurement_concept_id,
                         m.value_as_number, m.unit_concept_id, m.unit_source_value,
                         COALESCE(m.measurement_datetime, m.measurement_date + {_END_OF_DAY}) AS known,
                         COALESCE(to_char(m.measurement_datetime, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                  to_char(m.measurement_date, 'YYYY-MM-DD')) AS time_text
                  FROM {table("measurement")} m
                  WHERE m.measurement_concept_id IN (SELECT concept_id FROM mmdx_features)) x
            JOIN mmdx_features f ON f.concept_id = x.measurement_concept_id
            JOIN mmdx_windows w ON w.kind = f.kind
            JOIN mmdx_cases c ON {attach}
            LEFT JOIN {table("concept")} u ON u.concept_id = x.unit_concept_id AND u.vocabulary_id = 'UCUM'
            WHERE TRUE {resume}
            ORDER BY x.key, c.case_id""",
        "note": f"""
            SELECT x.key, c.case_id, x.note_text, x.note_type, x.time_text
            FROM (SELECT n.note_id AS key, n.person_id, n.visit_occurrence_id, n.note_text,
                         COALESCE(NULLIF(n.note_title, ''), n.note_source_value) AS note_type,
                         COALESCE(n.note_datetime, n.note_date + {_END_OF_DAY}) AS known,
                         COALESCE(to_char(n.note_datetime, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                  to_char(n.note_date, 'YYYY-MM-DD')) AS time_text
                  FROM {table("note")} n) x
            JOIN mmdx_windows w ON w.kind = 'note'
            JOIN mmdx_cases c ON {attach}
            WHERE TRUE {resume}
            ORDER BY x.key, c.case_id""",
        "image_occurrence": f"""
            SELECT x.key, c.case_id, x.local_path, x.wadors_uri, x.image_study_uid, x.image_series_uid, x.time_text
            FROM (SELECT i.image_occurrence_id AS key, i.person_id, i.visit_occurrence_id, i.local_path,
                         i.wadors_uri, i.image_study_uid, i.image_series_uid,
                         i.image_occurrence_date + {_END_OF_DAY} AS known,
                         to_char(i.image_occurrence_date, 'YYYY-MM-DD') AS time_text
                  FROM {table("image_occurrence")} i) x
            JOIN mmdx_windows w ON w.kind = 'image'
            JOIN mmdx_cases c ON {attach}
            WHERE TRUE {resume}
            ORDER BY x.key, c.case_id""",
    }


def _not_attached_sql(table) -> str:
    """Counts of the cases' catalogue measurements left in the database: after the index time, before the
    look-back window, of another visit."""
    return f"""
        SELECT
          SUM(CASE WHEN c.visit_id IS NOT NULL AND m.visit_occurrence_id IS DISTINCT FROM c.visit_id THEN 1 ELSE 0 END),
          SUM(CASE WHEN (c.visit_id IS NULL OR m.visit_occurrence_id = c.visit_id) AND c.index_time IS NOT NULL
                   AND COALESCE(m.measurement_datetime, m.measurement_date + {_END_OF_DAY}) > c.index_time
                   THEN 1 ELSE 0 END),
          SUM(CASE WHEN (c.visit_id IS NULL OR m.visit_occurrence_id = c.visit_id) AND c.index_time IS NOT NULL
                   AND w.lookback IS NOT NULL
                   AND COALESCE(m.measurement_datetime, m.measurement_date + {_END_OF_DAY}) < c.index_time - w.lookback
                   THEN 1 ELSE 0 END)
        FROM {table("measurement")} m
        JOIN mmdx_features f ON f.concept_id = m.measurement_concept_id
        JOIN mmdx_windows w ON w.kind = f.kind
        JOIN mmdx_cases c ON c.person_id = m.person_id"""


def _unknown_concepts_sql(table) -> str:
    return f"""
        SELECT m.measurement_concept_id, m.measurement_source_value, COUNT(*)
        FROM {table("measurement")} m
        JOIN mmdx_cases c ON m.person_id = c.person_id AND (c.visit_id IS NULL OR m.visit_occurrence_id = c.visit_id)
        LEFT JOIN {table("concept")} k ON k.concept_id = m.measurement_concept_id
        WHERE (m.measurement_concept_id = 0 OR k.concept_id IS NULL)
          AND (c.index_time IS NULL
               OR COALESCE(m.measurement_datetime, m.measurement_date + {_END_OF_DAY}) <= c.index_time)
        GROUP BY 1, 2 ORDER BY 3 DESC"""


def _cases_from_query(connection, query: str):
    import pandas as pd
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from mmdx.errors import MmdxError
    from mmdx.importers.caselist import CaseList

    try:
        result = connection.execute(text(query))
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    except SQLAlchemyError as exc:
        raise MmdxError(
            f"--cases-query failed: {str(exc.orig if hasattr(exc, 'orig') else exc).strip()}"
        ) from None
    if "person_id" in frame.columns and "patient_id" not in frame.columns:
        frame = frame.rename(columns={"person_id": "patient_id"})
    if "index_time" in frame.columns:
        times = pd.to_datetime(frame["index_time"], utc=True, errors="coerce")
        frame["index_time"] = [t.strftime("%Y-%m-%dT%H:%M:%SZ") if not pd.isna(t) else None for t in times]
    if "case_id" not in frame.columns and "patient_id" in frame.columns:
        frame.insert(0, "case_id", [f"{p}_{i}" for i, p in enumerate(frame["patient_id"], start=1)])
    return CaseList.from_frame(frame.astype(object).where(frame.notna(), None), "--cases-query")


def _check_arguments(cases: str | Path | None, cases_query: str | None, schema: str | None) -> None:
    from mmdx.errors import MmdxError

    if (cases is None) == (cases_query is None):
        raise MmdxError(
            "give the case list either as --cases CASES.csv or as --cases-query SQL (one of them)"
        )
    if schema is not None and not _IDENTIFIER.fullmatch(schema):
        raise MmdxError(f"--schema {schema!r} is not a plain SQL identifier")


def _table_namer(schema: str | None) -> Callable[[str], str]:
    """``table(name)``: the CDM table ``name``, qualified by ``schema`` when one is given."""

    def table(name: str) -> str:
        return f'"{schema}".{name}' if schema else name

    return table


def _check_tables(connection, schema: str | None, shown: str) -> set[str]:
    """The database's tables (of ``schema``); raises when a required CDM table is missing."""
    from sqlalchemy import inspect

    from mmdx.errors import MmdxError

    present = set(inspect(connection).get_table_names(schema=schema))
    missing = [t for t in REQUIRED_TABLES if t not in present]
    if missing:
        raise MmdxError(
            f"{shown}{' schema ' + schema if schema else ''} has no OMOP table(s) {', '.join(missing)}; "
            "point --schema at the CDM schema"
        )
    return present


def _reject_non_integer_ids(caselist) -> None:
    """Drop the cases whose ``patient_id`` or ``encounter_id`` is not an integer OMOP id, each with an issue."""
    import pandas as pd

    from mmdx.data.issues import IssueCode
    from mmdx.importers.staging import import_issue

    frame = caselist.frame
    bad_ids = []
    for column in ("patient_id", "encounter_id"):
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column].notna() & (numbers.isna() | (numbers % 1 != 0))
        for case_id, value in zip(frame.loc[bad, "case_id"], frame.loc[bad, column], strict=True):
            caselist.rejected.append(
                import_issue(
                    IssueCode.SOURCE_RECORD_INVALID,
                    f"case {case_id}: {column} {value!r} is not an integer OMOP id "
                    f"({'person_id' if column == 'patient_id' else 'visit_occurrence_id'}); case not imported",
                )
            )
        bad_ids.append(bad)
    caselist.frame = frame[~(bad_ids[0] | bad_ids[1])].reset_index(drop=True)


def _create_temporary_tables(
    connection, frame, catalogue, windows: dict, table: Callable[[str], str]
) -> list[str]:
    """Put the cases, the catalogue's LOINC concepts and the look-back windows into the temporary tables
    ``mmdx_cases``, ``mmdx_features`` and ``mmdx_windows`` the queries join; returns the catalogue's LOINC
    codes the database has no concept for."""
    import pandas as pd
    from sqlalchemy import text

    from mmdx.data.index_time import IMAGE_KIND, NOTE_KIND

    connection.execute(
        text(
            "CREATE TEMPORARY TABLE mmdx_cases (case_id text PRIMARY KEY, person_id bigint NOT NULL, "
            "visit_id bigint, index_time timestamp)"
        )
    )
    index_naive = frame["_index"].dt.tz_convert("UTC").dt.tz_localize(None)
    rows = [
        {
            "case_id": c,
            "person_id": int(p),
            "visit_id": int(v) if v is not None else None,
            "index_time": None if pd.isna(t) else t.to_pydatetime(),
        }
        for c, p, v, t in zip(
            frame["case_id"], frame["patient_id"], frame["encounter_id"], index_naive, strict=True
        )
    ]
    if rows:
        connection.execute(
            text("INSERT INTO mmdx_cases VALUES (:case_id, :person_id, :visit_id, :index_time)"), rows
        )
    connection.execute(text("CREATE INDEX ON mmdx_cases (person_id)"))
    connection.execute(text("ANALYZE mmdx_cases"))
    loinc_kind = {f.loinc: f.kind for f in catalogue}
    concept_rows = connection.execute(
        text(
            f"SELECT concept_id, concept_code FROM {table('concept')} "
            "WHERE vocabulary_id = 'LOINC' AND concept_code = ANY(:codes)"
        ),
        {"codes": list(loinc_kind)},
    ).fetchall()
    connection.execute(
        text("CREATE TEMPORARY TABLE mmdx_features (concept_id integer PRIMARY KEY, loinc text, kind text)")
    )
    if concept_rows:
        connection.execute(
            text("INSERT INTO mmdx_features VALUES (:id, :loinc, :kind)"),
            [{"id": cid, "loinc": code, "kind": loinc_kind[code]} for cid, code in concept_rows],
        )
    kinds = sorted({f.kind for f in catalogue}) + [NOTE_KIND, IMAGE_KIND]
    connection.execute(text("CREATE TEMPORARY TABLE mmdx_windows (kind text PRIMARY KEY, lookback interval)"))
    connection.execute(
        text("INSERT INTO mmdx_windows VALUES (:kind, CAST(:lookback AS interval))"),
        [
            {"kind": k, "lookback": f"{windows[k].total_seconds()} seconds" if k in windows else None}
            for k in kinds
        ],
    )
    connection.commit()
    return sorted(set(loinc_kind) - {code for _, code in concept_rows})


def _commit_person_unit(connection, staging: ImportStaging, table: Callable[[str], str]) -> None:
    """The first unit: which listed persons exist, the cases' measurements of unknown concepts
    (``CONCEPT_UNKNOWN``) and the counts of catalogue measurements left in the database, by reason."""
    from sqlalchemy import text

    from mmdx.data.issues import IssueCode
    from mmdx.importers.caselist import (
        NOT_ATTACHED_AFTER_INDEX,
        NOT_ATTACHED_BEFORE_WINDOW,
        NOT_ATTACHED_OTHER_ENCOUNTER,
    )
    from mmdx.importers.staging import UnitOutput, import_issue

    if staging.done("person"):
        return
    output = UnitOutput()
    seen = connection.execute(
        text(
            f"SELECT DISTINCT p.person_id FROM {table('person')} p JOIN mmdx_cases c ON c.person_id = p.person_id"
        )
    ).fetchall()
    output.patients_seen.update(str(r[0]) for r in seen)
    for concept_id, source_value, n in connection.execute(text(_unknown_concepts_sql(table))).fetchall():
        output.issues.append(
            import_issue(
                IssueCode.CONCEPT_UNKNOWN,
                f"measurement: {n} row(s) of the cases with measurement_concept_id {concept_id} "
                f"(source value {source_value!r}) have no concept in {table('concept')}; not imported",
                warning=True,
            )
        )
    other, after, before = connection.execute(text(_not_attached_sql(table))).one()
    output.counts[NOT_ATTACHED_OTHER_ENCOUNTER] += int(other or 0)
    output.counts[NOT_ATTACHED_AFTER_INDEX] += int(after or 0)
    output.counts[NOT_ATTACHED_BEFORE_WINDOW] += int(before or 0)
    staging.commit("person", output)


def _stream_table(
    connection, staging: ImportStaging, name: str, sql: str, batch_size: int, progress: Progress | None
) -> None:
    """Stream one CDM table's query from where the last committed batch ended, committing a unit per batch."""
    from sqlalchemy import text

    from mmdx.importers.output import DICOMWEB_PREFIX
    from mmdx.importers.staging import UnitOutput

    if staging.done(f"{name}#done"):
        return
    after_key, after_case = staging.cursor(name) or (-(2**62), "")
    # a server-side cursor: PostgreSQL hands over batch_size rows at a time
    streamed = connection.execute(
        text(sql),
        {"after_key": after_key, "after_case": after_case},
        execution_options={"stream_results": True, "yield_per": batch_size},
    )
    for part in streamed.partitions(batch_size):
        output = UnitOutput()
        output.counts["records_read"] += len(part)
        _rows_to_output(name, part, output, DICOMWEB_PREFIX)
        last = part[-1]
        staging.commit(f"{name}@{last[0]}:{last[1]}", output, cursor=(name, [last[0], last[1]]))
        if progress:
            progress(int(staging.counts()["records_read"]), None, name)
    streamed.close()
    staging.commit(f"{name}#done", UnitOutput())


def _count_absent_table(staging: ImportStaging, name: str) -> None:
    from mmdx.importers.staging import UnitOutput

    if not staging.done(f"{name}#absent"):
        output = UnitOutput()
        output.counts[f"table_absent_{name}"] += 1
        staging.commit(f"{name}#absent", output)


def import_omop(
    url: str,
    out: str | Path,
    cases: str | Path | None = None,
    cases_query: str | None = None,
    schema: str | None = None,
    options: ImportOptions | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import the cases of ``cases`` (a CSV file) or ``cases_query`` (SQL) from the OMOP database at ``url``."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    from mmdx.data.catalogue import FeatureCatalogue
    from mmdx.errors import MmdxError
    from mmdx.importers.caselist import CaseList
    from mmdx.importers.output import ImportOptions, finish_import, lookback_of
    from mmdx.importers.staging import ImportStaging, fingerprint_file

    options = options or ImportOptions()
    _check_arguments(cases, cases_query, schema)
    table = _table_namer(schema)
    catalogue = FeatureCatalogue.load()
    windows = lookback_of(options, catalogue)
    address = engine_url(url)
    shown = address.render_as_string(hide_password=True)
    engine = create_engine(address, pool_pre_ping=True)
    try:
        connection = engine.connect()
    except OperationalError as exc:
        raise MmdxError(f"cannot connect to {shown}: {str(exc.orig).strip().splitlines()[0]}") from None
    try:
        present = _check_tables(connection, schema, shown)
        caselist = CaseList.read(cases) if cases is not None else _cases_from_query(connection, cases_query)
        _reject_non_integer_ids(caselist)
        identity = {
            "source": "omop",
            "url": shown,
            "schema": schema,
            "cases": fingerprint_file(cases) if cases is not None else cases_query,
            **options.identity(),
        }
        staging = ImportStaging(out, identity)
        missing_concepts = _create_temporary_tables(connection, caselist.frame, catalogue, windows, table)
        _commit_person_unit(connection, staging, table)
        for name, sql in _queries(table).items():
            if name in present:
                _stream_table(connection, staging, name, sql, options.batch_size, progress)
            else:
                _count_absent_table(staging, name)
        report = {"missing_catalogue_concepts": missing_concepts}
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", exc) or exc).strip().splitlines()[0]
        raise MmdxError(
            f"the OMOP database at {shown} failed ({detail}); run the same command again to resume"
        ) from None
    finally:
        connection.close()
        engine.dispose()
    source = {"format": "omop", "url": shown, **({"schema": schema} if schema else {})}
    cases_dir = Path(cases).resolve().parent if cases is not None else None
    return finish_import(staging, caselist, options, source, report, cases_dir=cases_dir)


def _rows_to_output(name: str, rows, output, dicomweb_prefix: str) -> None:
    import pandas as pd

    from mmdx.data.issues import IssueCode
    from mmdx.importers.staging import import_issue

    if name == "measurement":
        kept = []
        no_unit: dict[tuple, int] = {}
        no_value = 0
        for key, case_id, loinc, value, ucum, unit_source, time in rows:
            if value is None:
                no_value += 1
            elif ucum is None:
                no_unit[(loinc, unit_source)] = no_unit.get((loinc, unit_source), 0) + 1
            else:
                kept.append((case_id, loinc, float(value), ucum, time, f"measurement/{key}"))
        for (loinc, unit_source), n in no_unit.items():
            output.issues.append(
                import_issue(
                    IssueCode.UNIT_NOT_UCUM,
                    f"measurement: {n} row(s) of LOINC {loinc} have a unit_concept_id that is no UCUM concept "
                    f"(unit_source_value {unit_source!r}); not imported",
                    warning=True,
                )
            )
        if no_value:
            output.issues.append(
                import_issue(
                    IssueCode.SOURCE_RECORD_INVALID,
                    f"measurement: {no_value} row(s) of catalogue concepts have no value_as_number; not imported",
                    warning=True,
                )
            )
        output.observations = pd.DataFrame(
            kept, columns=["case_id", "code", "value", "unit", "time", "source_id"]
        )
        output.counts["observations_attached"] += len(kept)
    elif name == "note":
        for _key, case_id, text_value, note_type, time in rows:
            output.notes.append(
                {"case_id": case_id, "text": text_value, "note_type": note_type, "time": time}
            )
        output.counts["notes_attached"] += len(rows)
    else:
        for key, case_id, local_path, wadors_uri, study, series, time in rows:
            if local_path and Path(local_path).exists():
                image = local_path
            else:
                image = f"{dicomweb_prefix}{study}/{series}"
            output.images.append(
                {"case_id": case_id, "image": image, "acquired": time, "source_id": f"image_occurrence/{key}"}
            )
            if wadors_uri and "/studies/" in wadors_uri:
                output.facts.append({"address": wadors_uri.split("/studies/")[0]})


HELP = __doc__.split("\n\n", 1)[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url",
        metavar="URL",
        help="SQLAlchemy URL of the OMOP CDM database, e.g. postgresql://user:pw@host/db",
    )
    add_cohort_arguments(parser)
    cases = parser.add_mutually_exclusive_group(required=True)
    cases.add_argument(
        "--cases",
        metavar="CASES.csv",
        help="case list: case_id, patient_id (person_id), optional encounter_id (visit_occurrence_id), label, "
        "split, index_time, image; other columns pass through as demographics",
    )
    cases.add_argument(
        "--cases-query",
        metavar="SQL",
        help="a SELECT returning the case list's columns (patient_id or person_id, index_time, label, ...) "
        "from the user's cohort and label tables",
    )
    parser.add_argument("--schema", help="the CDM schema (default: the connection's search_path)")


def run(args: argparse.Namespace) -> int:
    from mmdx.importers.output import ImportOptions
    from mmdx.importers.progress import print_result, progress_bar

    options = ImportOptions(
        name=args.name,
        positive=args.positive,
        lookback=parse_lookback(args.lookback),
        batch_size=args.batch_size,
    )
    with progress_bar("OMOP", unit="row") as progress:
        result = import_omop(
            args.url, args.out, args.cases, args.cases_query, args.schema, options, progress=progress
        )
    print_result(result)
    return 0


IMPORTERS.register(
    ImporterSpec(
        name="omop",
        help="an OMOP CDM v5.4 PostgreSQL database -> cohort directory",
        description=HELP,
        add_arguments=add_arguments,
        run=run,
    )
)
