"""Import throughput and peak memory of ``mmdx import`` per source, at two sizes of the source.

Sources are generated here, streaming, with the shapes the exporters write: per case one patient, one
encounter, 38 LOINC-coded vital-sign and lab values (the catalogue's features in their canonical units, two
per feature but the last two features once) and one note, timed before the case's index time; the
case list names every case's encounter and index time.

* ``fhir``: bulk-data NDJSON (Patient, Encounter, Observation, DocumentReference); an *event* is a resource;
* ``meds``: one MEDS data file (static and timed events) and a label file; an *event* is a row;
* ``omop``: the CDM tables loaded into a throwaway PostgreSQL server (``psql -f load.sql``, the way the
  export is loaded); an *event* is a ``measurement`` row (the notes come on top).

Each import runs in a fresh process, which first imports everything the import needs (pandas, pyarrow, the
FHIR models, SQLAlchemy, ...) and records its resident memory (the *baseline*); the peak is the process's
high-water mark (``VmHWM``) at the end. The criterion: the peak above the baseline at 1e6 events stays
under twice that at 1e5, i.e. memory does not grow with the source.

    python -m benchmarks.import_throughput --sizes 100000 1000000 --data /work/data/importers \
        --json import_throughput.json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

PER_CASE_VALUES = 38
INDEX = "2024-06-01T00:00:00Z"


def _features():
    from mmdx.data.catalogue import FeatureCatalogue

    features = list(FeatureCatalogue.load())
    return [(f, (f.plausible[0] + f.plausible[1]) / 4 + f.plausible[0] / 2) for f in features]


def _case_values(case: int, features) -> list[tuple]:
    """(loinc, value, unit, time) of one case: two values of each feature, the last two features once."""
    out = []
    for j, (feature, middle) in enumerate(features):
        repeats = 2 if j < len(features) - 2 else 1
        for r in range(repeats):
            hours = 1 + (case * 7 + j * 3 + r * 11) % 70
            value = round(middle * (1 + 0.01 * ((case + j + r) % 9 - 4)), feature.decimals)
            out.append((feature.loinc, value, feature.unit, f"2024-05-29T{hours % 24:02d}:00:00Z", hours))
    return out[:PER_CASE_VALUES]


def _cases_for(events: int, per_case: int) -> int:
    return max(1, round(events / per_case))


def write_fhir(folder: Path, events: int) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    features = _features()
    n = _cases_for(events, PER_CASE_VALUES + 3)
    note = base64.b64encode(b"Seen on the ward round. No evidence of consolidation.").decode()
    (folder / "fhir").mkdir()
    with (folder / "fhir" / "resources.ndjson").open("w") as fh:
        for case in range(1, n + 1):
            fh.write(json.dumps({"resourceType": "Patient", "id": str(case)}) + "\n")
            fh.write(
                json.dumps(
                    {
                        "resourceType": "Encounter",
                        "id": str(case),
                        "status": "finished",
                        "class": {"code": "IMP"},
                        "subject": {"reference": f"Patient/{case}"},
                    }
                )
                + "\n"
            )
            for i, (loinc, value, unit, when, _) in enumerate(_case_values(case, features)):
                fh.write(
                    json.dumps(
                        {
                            "resourceType": "Observation",
                            "id": f"{case}-{i}",
                            "status": "final",
                            "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
                            "subject": {"reference": f"Patient/{case}"},
                            "encounter": {"reference": f"Encounter/{case}"},
                            "effectiveDateTime": when,
                            "valueQuantity": {
                                "value": value,
                                "unit": unit,
                                "system": "http://unitsofmeasure.org",
                                "code": unit,
                            },
                        }
                    )
                    + "\n"
                )
            fh.write(
                json.dumps(
                    {
                        "resourceType": "DocumentReference",
                        "id": f"d{case}",
                        "status": "current",
                        "subject": {"reference": f"Patient/{case}"},
                        "context": {"encounter": [{"reference": f"Encounter/{case}"}]},
                        "date": "2024-05-30T08:00:00Z",
                        "content": [{"attachment": {"contentType": "text/plain", "data": note}}],
                    }
                )
                + "\n"
            )
    cases = folder / "cases.csv"
    with cases.open("w") as fh:
        fh.write("case_id,patient_id,encounter_id,label,index_time\n")
        for case in range(1, n + 1):
            fh.write(f"C{case},{case},{case},{case % 2},{INDEX}\n")
    return folder / "fhir", cases


def write_meds(folder: Path, events: int) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = _features()
    n = _cases_for(events, PER_CASE_VALUES + 2)
    root = folder / "meds"
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
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
    writer = pq.ParquetWriter(root / "data" / "0.parquet", schema)
    block: dict[str, list] = {name: [] for name in schema.names}

    def flush() -> None:
        writer.write_table(pa.table(block, schema=schema), row_group_size=100_000)
        for values in block.values():
            values.clear()

    import datetime as dt

    for case in range(1, n + 1):
        rows = [(None, "GENDER//F", None, None, None)]
        for loinc, value, unit, _, hours in sorted(_case_values(case, features), key=lambda v: v[4]):
            rows.append(
                (dt.datetime(2024, 5, 29) + dt.timedelta(hours=hours), f"LOINC/{loinc}", value, None, unit)
            )
        rows.append(
            (dt.datetime(2024, 5, 30, 8), "NOTE//progress note", None, "Seen on the ward round.", None)
        )
        for when, code, value, text, unit in rows:
            for name, item in zip(schema.names, (case, when, code, value, text, unit), strict=True):
                block[name].append(item)
        if len(block["subject_id"]) >= 200_000:
            flush()
    flush()
    writer.close()
    labels = folder / "labels.parquet"
    pq.write_table(
        pa.table(
            {
                "subject_id": list(range(1, n + 1)),
                "prediction_time": [dt.datetime(2024, 6, 1)] * n,
                "boolean_value": [bool(c % 2) for c in range(1, n + 1)],
            },
            schema=pa.schema(
                [
                    ("subject_id", pa.int64()),
                    ("prediction_time", pa.timestamp("us")),
                    ("boolean_value", pa.bool_()),
                ]
            ),
        ),
        labels,
    )
    return root, labels


def write_omop(folder: Path, events: int, url: str) -> Path:
    import csv

    from mmdx.data.synth.export import OMOP_TABLES, omop_ddl

    features = _features()
    n = _cases_for(events, PER_CASE_VALUES)
    omop = folder / "omop"
    omop.mkdir(parents=True, exist_ok=True)
    units = sorted({f.unit for f, _ in features})
    concept_of = {f.loinc: 2_000_000_001 + i for i, (f, _) in enumerate(features)}
    unit_of = {u: 2_000_100_001 + i for i, u in enumerate(units)}

    def table(name: str, rows) -> None:
        columns = [c for c, _ in OMOP_TABLES[name]]
        with (omop / f"{name}.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow(row)

    def concept(cid, code, vocabulary):
        return {
            "concept_id": cid,
            "concept_name": code,
            "domain_id": "Measurement",
            "vocabulary_id": vocabulary,
            "concept_class_id": "Lab Test",
            "concept_code": code,
            "valid_start_date": "1970-01-01",
            "valid_end_date": "2099-12-31",
        }

    table(
        "concept",
        [concept(c, code, "LOINC") for code, c in concept_of.items()]
        + [concept(c, u, "UCUM") for u, c in unit_of.items()],
    )
    table(
        "person",
        (
            {
                "person_id": c,
                "gender_concept_id": 8532,
                "year_of_birth": 1960,
                "race_concept_id": 0,
                "ethnicity_concept_id": 0,
            }
            for c in range(1, n + 1)
        ),
    )
    table(
        "visit_occurrence",
        (
            {
                "visit_occurrence_id": c,
                "person_id": c,
                "visit_concept_id": 9201,
                "visit_start_date": "2024-05-29",
                "visit_end_date": "2024-06-01",
                "visit_type_concept_id": 32817,
            }
            for c in range(1, n + 1)
        ),
    )

    def measurements():
        mid = 0
        for case in range(1, n + 1):
            for loinc, value, unit, when, _ in _case_values(case, features):
                mid += 1
                yield {
                    "measurement_id": mid,
                    "person_id": case,
                    "measurement_concept_id": concept_of[loinc],
                    "measurement_date": when[:10],
                    "measurement_datetime": when.replace("T", " ").rstrip("Z"),
                    "measurement_type_concept_id": 32817,
                    "value_as_number": value,
                    "unit_concept_id": unit_of[unit],
                    "visit_occurrence_id": case,
                    "unit_source_value": unit,
                }

    table("measurement", measurements())
    table(
        "note",
        (
            {
                "note_id": c,
                "person_id": c,
                "note_date": "2024-05-30",
                "note_datetime": "2024-05-30 08:00:00",
                "note_type_concept_id": 32817,
                "note_class_concept_id": 0,
                "note_title": "progress note",
                "note_text": "Seen on the ward round.",
                "encoding_concept_id": 0,
                "language_concept_id": 0,
                "visit_occurrence_id": c,
            }
            for c in range(1, n + 1)
        ),
    )
    table("image_occurrence", [])
    (omop / "ddl.sql").write_text(omop_ddl())
    load = ["\\set ON_ERROR_STOP on", "\\i ddl.sql"]
    for name in ("concept", "person", "visit_occurrence", "measurement", "note", "image_occurrence"):
        columns = ", ".join(c for c, _ in OMOP_TABLES[name])
        load.append(f"\\copy {name} ({columns}) FROM '{name}.csv' WITH (FORMAT csv, HEADER true)")
    load.append("ANALYZE;")
    (omop / "load.sql").write_text("\n".join(load) + "\n")
    psql = shutil.which("psql") or "psql"
    subprocess.run(
        [psql, url.replace("postgresql+psycopg://", "postgresql://"), "-q", "-f", "load.sql"],
        cwd=omop,
        check=True,
    )
    cases = folder / "cases.csv"
    with cases.open("w") as fh:
        fh.write("case_id,patient_id,encounter_id,label,index_time\n")
        for case in range(1, n + 1):
            fh.write(f"C{case},{case},{case},{case % 2},{INDEX}\n")
    return cases


# ---------------------------------------------------------------------------------------------------------
# One measured import, in its own process
# ---------------------------------------------------------------------------------------------------------
def _memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def measure(args: argparse.Namespace) -> None:
    """Run one import (in this process) and print its numbers as JSON."""
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import sqlalchemy  # noqa: F401
    from fhir.resources.R4B import get_fhir_model_class

    from mmdx.importers.fhir import READ_TYPES, import_fhir
    from mmdx.importers.meds import import_meds
    from mmdx.importers.omop import import_omop
    from mmdx.importers.output import ImportOptions

    for kind in READ_TYPES:
        get_fhir_model_class(kind)
    baseline = _memory_kib("VmRSS")
    options = ImportOptions(batch_size=args.batch_size)
    start = time.perf_counter()
    if args.source == "fhir":
        result = import_fhir(args.src, args.out, args.cases, options)
    elif args.source == "meds":
        result = import_meds(args.src, args.out, args.cases, options)
    else:
        result = import_omop(args.src, args.out, cases=args.cases, options=options)
    seconds = time.perf_counter() - start
    peak = _memory_kib("VmHWM")
    print(
        json.dumps(
            {
                "seconds": seconds,
                "baseline_mib": baseline / 1024,
                "peak_mib": peak / 1024,
                "peak_above_baseline_mib": (peak - baseline) / 1024,
                "records_read": result.report["counts"].get("records_read", 0),
                "observations": result.report["observations"],
                "notes": result.report["notes"],
                "cases": result.report["cases"],
            }
        )
    )


def run_one(source: str, src: str, cases: Path, out: Path, events: int, batch_size: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable,
        __file__,
        "--measure",
        source,
        "--src",
        str(src),
        "--cases",
        str(cases),
        "--out",
        str(out),
        "--batch-size",
        str(batch_size),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    numbers = json.loads(done.stdout.strip().splitlines()[-1])
    numbers.update(source=source, events=events, events_per_second=events / numbers["seconds"])
    shutil.rmtree(out, ignore_errors=True)
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--sources", nargs="+", default=["meds", "fhir", "omop"], choices=["meds", "fhir", "omop"]
    )
    parser.add_argument("--omop-sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--data", default="/tmp/mmdx-import-benchmark", help="where the generated sources go")
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--cases", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        args.source = args.measure
        measure(args)
        return
    data = Path(args.data)
    results = []
    for source in args.sources:
        sizes = args.omop_sizes if source == "omop" else args.sizes
        server = None
        url = None
        if source == "omop":
            from tests.support.postgres import TemporaryPostgres, create_database

            server = TemporaryPostgres(durable=False)
            url = create_database(server.start(), "omop")
        try:
            for events in sizes:
                folder = data / f"{source}-{events}"
                shutil.rmtree(folder, ignore_errors=True)
                start = time.perf_counter()
                if source == "fhir":
                    src, cases = write_fhir(folder, events)
                elif source == "meds":
                    src, cases = write_meds(folder, events)
                else:
                    if len(sizes) > 1:
                        raise SystemExit("one OMOP size per run: the tables of a run share the server")
                    cases, src = write_omop(folder, events, url), url
                made = time.perf_counter() - start
                numbers = run_one(source, src, cases, folder / "cohort", events, args.batch_size)
                numbers["generated_seconds"] = made
                results.append(numbers)
                print(
                    f"{source:5s} {events:>9,d} events: {numbers['seconds']:7.1f} s, "
                    f"{numbers['events_per_second']:9,.0f} events/s, baseline {numbers['baseline_mib']:.0f} MiB, "
                    f"peak {numbers['peak_mib']:.0f} MiB (+{numbers['peak_above_baseline_mib']:.0f} MiB), "
                    f"{numbers['observations']:,d} values of {numbers['cases']:,d} cases",
                    flush=True,
                )
                shutil.rmtree(folder, ignore_errors=True)
        finally:
            if server is not None:
                server.stop()
    document = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "batch_size": args.batch_size,
        "results": results,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
