"""``mmdx import meds MEDS_ROOT OUT --labels LABELS.parquet``: a MEDS dataset into a cohort.

MEDS (the Medical Event Data Standard, schema 0.4 of the ``meds`` package) stores one row per event in
``MEDS_ROOT/data/**/*.parquet``: ``subject_id``, ``time``, ``code``, ``numeric_value``, ``text_value`` (extra
columns allowed). Each row of the label file (``subject_id``, ``prediction_time``, ``boolean_value`` -- or
``integer_value`` 0/1) is a case: its ``prediction_time`` becomes the case's ``index_time`` and its case_id
``<subject_id>_<prediction_time as YYYYmmddTHHMMSS>``. MEDS has no encounters, so events attach by subject
within the look-back window before the prediction time, and never after it.

* **Values**: a code names a LOINC code as ``LOINC/<code>``, or through ``metadata/codes.parquet``, whose
  ``parent_codes`` may list ``LOINC/<code>``. Codes of LOINC features outside the catalogue are counted, not
  imported. The unit comes from a ``unit`` column of the data (a code modifier), a ``//<unit>`` suffix of
  the code (``LOINC/2160-0//umol/L``) or a ``unit`` column of ``codes.parquet``; a value with none is
  ``UNIT_NOT_UCUM``. ``numeric_value`` is float32 in MEDS; it is read at its shortest decimal form (7.2, not
  7.19999980926).
* **Notes**: events with a ``text_value`` whose code starts with ``NOTE`` (``--note-prefix``); the code's
  part after ``//`` is the note type.
* **Demographics**: static events (no time) ``GENDER//<sex>`` give ``sex``, other ``NAME//<value>`` ones a
  column ``name``; ``MEDS_BIRTH`` gives ``age`` (whole years at the index time).
* **Splits**: ``metadata/subject_splits.parquet``'s ``train``, ``tuning`` and ``held_out`` become ``train``,
  ``val`` and ``test``; another split name is ``SPLIT_UNKNOWN`` and mmdx assigns the subject a split.

A data file, label file or metadata file whose columns or types differ from the MEDS schema is reported
(``SOURCE_SCHEMA_INVALID``, naming the file and the columns) -- a data file is then skipped, a label file
stops the import. Data files are streamed in row batches of ``--batch-size`` (Parquet row groups are read
piece by piece), so memory stays flat; a resumed import skips the committed batches.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from mmdx.importers.registry import IMPORTERS, ImporterSpec, add_cohort_arguments, parse_lookback

if TYPE_CHECKING:
    from mmdx.importers.output import ImportOptions, ImportResult, Progress
    from mmdx.importers.staging import ImportStaging, UnitOutput

MEDS_SPLITS = {"train": "train", "tuning": "val", "held_out": "test"}
GENDER_CODE = "GENDER"
DEFAULT_NOTE_PREFIX = "NOTE"
CODE_SEPARATOR = "//"


def _meds():
    try:
        import meds
    except ImportError:  # pragma: no cover - a dependency of mmdx
        from mmdx.errors import MmdxError

        raise MmdxError(
            "reading MEDS needs the Python package 'meds'; install it with pip install meds"
        ) from None
    return meds


def _loinc_and_unit(code: str, parents: dict[str, list[str]]) -> tuple[str | None, str | None]:
    """The LOINC code a MEDS code stands for (itself, or one of its parent codes), and its ``//unit`` suffix."""
    for candidate in [code, *(parents.get(code) or [])]:
        if candidate.upper().startswith("LOINC/"):
            loinc, _, unit = candidate[6:].lstrip("/").partition(CODE_SEPARATOR)
            return loinc.strip() or None, (unit.strip() or None) if candidate == code else None
    return None, None


def _shortest(values):
    """float32 values at their shortest decimal representation, as float64 (7.2, not 7.19999980926)."""
    import numpy as np

    as32 = np.asarray(values, dtype=np.float32)
    return np.array(
        [
            float(np.format_float_positional(v, unique=True, trim="-")) if np.isfinite(v) else np.nan
            for v in as32
        ],
        dtype=np.float64,
    )


def _iso(stamp) -> str | None:
    import pandas as pd

    if stamp is None or pd.isna(stamp):
        return None
    stamp = pd.Timestamp(stamp)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if stamp.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return stamp.strftime(fmt)


def _read_labels(path: Path, splits: dict[int, str]):
    """The case list from a MEDS label file (one case per row)."""
    import pandas as pd
    import pyarrow.parquet as pq
    from flexible_schema.exceptions import SchemaValidationError

    from mmdx.errors import MmdxError
    from mmdx.importers.caselist import CaseList

    meds = _meds()
    if not path.is_file():
        raise MmdxError(f"label file not found: {path}")
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise MmdxError(f"{path}: cannot read the label file as Parquet ({exc})") from None
    try:
        meds.LabelSchema.validate(table.schema)
    except SchemaValidationError as exc:
        raise MmdxError(
            f"{path}: not a MEDS label file ({exc}); it needs subject_id (int64), prediction_time "
            "(timestamp[us]) and boolean_value or integer_value"
        ) from None
    frame = table.to_pandas()
    if "boolean_value" in frame.columns:
        labels = frame["boolean_value"].map({True: "1", False: "0"})
    elif "integer_value" in frame.columns:
        labels = frame["integer_value"].map(lambda v: str(int(v)) if v in (0, 1) else None)
    else:
        raise MmdxError(
            f"{path}: the label file has neither boolean_value nor integer_value; mmdx needs a binary label"
        )
    times = pd.to_datetime(frame["prediction_time"], utc=True)
    cases = pd.DataFrame(
        {
            "case_id": [
                f"{s}_{t.strftime('%Y%m%dT%H%M%S')}" for s, t in zip(frame["subject_id"], times, strict=True)
            ],
            "patient_id": frame["subject_id"].astype(str),
            "label": labels,
            "split": frame["subject_id"].map(splits),
            "index_time": [_iso(t) for t in times],
        }
    )
    return CaseList.from_frame(cases, path.name)


def _read_splits(root: Path, issues: list) -> dict[int, str]:
    import pyarrow.parquet as pq
    from flexible_schema.exceptions import SchemaValidationError

    from mmdx.data.issues import IssueCode
    from mmdx.importers.staging import import_issue

    meds = _meds()
    path = root / meds.subject_splits_filepath
    if not path.is_file():
        return {}
    try:
        table = pq.read_table(path)
        meds.SubjectSplitSchema.validate(table.schema)
    except (OSError, ValueError, SchemaValidationError) as exc:
        issues.append(
            import_issue(
                IssueCode.SOURCE_SCHEMA_INVALID,
                f"{meds.subject_splits_filepath}: not a MEDS subject split file ({exc}); mmdx assigns the splits",
            )
        )
        return {}
    out = {}
    unknown: dict[str, int] = {}
    for subject, split in zip(table["subject_id"].to_pylist(), table["split"].to_pylist(), strict=True):
        if split in MEDS_SPLITS:
            out[int(subject)] = MEDS_SPLITS[split]
        else:
            unknown[split] = unknown.get(split, 0) + 1
    for split, n in unknown.items():
        issues.append(
            import_issue(
                IssueCode.SPLIT_UNKNOWN,
                f"{meds.subject_splits_filepath}: split {split!r} of {n} subject(s) is none of "
                f"{', '.join(MEDS_SPLITS)}; mmdx assigns those subjects a split",
                warning=True,
            )
        )
    return out


def _read_code_metadata(root: Path, issues: list) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``codes.parquet`` as code -> parent codes, and code -> unit (where it has a ``unit`` column)."""
    import pyarrow.parquet as pq
    from flexible_schema.exceptions import SchemaValidationError

    from mmdx.data.issues import IssueCode
    from mmdx.importers.staging import import_issue

    meds = _meds()
    path = root / meds.code_metadata_filepath
    if not path.is_file():
        return {}, {}
    try:
        table = pq.read_table(path)
        meds.CodeMetadataSchema.validate(table.schema)
    except (OSError, ValueError, SchemaValidationError) as exc:
        issues.append(
            import_issue(
                IssueCode.SOURCE_SCHEMA_INVALID,
                f"{meds.code_metadata_filepath}: not a MEDS code metadata file ({exc}); codes are read as written",
            )
        )
        return {}, {}
    codes = table["code"].to_pylist()
    parents = {}
    if "parent_codes" in table.column_names:
        parents = {c: list(p or []) for c, p in zip(codes, table["parent_codes"].to_pylist(), strict=True)}
    units = {}
    if "unit" in table.column_names:
        units = {c: u for c, u in zip(codes, table["unit"].to_pylist(), strict=True) if u}
    return parents, units


class _CodeClassifier:
    """What a MEDS code stands for, cached per code: ``(what, loinc, unit)`` where ``what`` is ``value`` (a
    catalogue LOINC code), ``other_loinc``, ``note`` or ``other``, and ``unit`` the code's ``//unit`` suffix or
    its unit in ``codes.parquet``."""

    def __init__(
        self,
        loinc_kind: dict[str, str],
        parents: dict[str, list[str]],
        units: dict[str, str],
        note_prefix: str,
    ) -> None:
        self.loinc_kind = loinc_kind
        self.parents = parents
        self.units = units
        self.note_prefix = note_prefix.upper()
        self._cache: dict[str, tuple] = {}

    def __call__(self, code: str) -> tuple:
        if code not in self._cache:
            loinc, unit = _loinc_and_unit(code, self.parents)
            if loinc is not None:
                what = "value" if loinc in self.loinc_kind else "other_loinc"
            elif code.upper().startswith(self.note_prefix):
                what = "note"
            else:
                what = "other"
            self._cache[code] = (what, loinc, unit or self.units.get(code))
        return self._cache[code]


def _data_files(root: Path) -> list[Path]:
    """The dataset's data Parquet files; raises when ``root`` is not a MEDS dataset."""
    from mmdx.errors import MmdxError

    meds = _meds()
    data_dir = root / meds.data_subdirectory
    if not data_dir.is_dir():
        raise MmdxError(f"{root} is not a MEDS dataset: no {meds.data_subdirectory}/ folder of Parquet files")
    files = sorted(data_dir.rglob("*.parquet"))
    if not files:
        raise MmdxError(f"{data_dir} holds no .parquet file")
    return files


def _total_rows(files: list[Path]) -> int:
    """Rows of every readable data file, from the Parquet footers (for the progress bar)."""
    import pyarrow.parquet as pq

    total = 0
    for path in files:
        try:
            total += pq.ParquetFile(path).metadata.num_rows
        except (OSError, ValueError):
            pass
    return total


def _batch_frame(batch, subjects, classify: _CodeClassifier, output: UnitOutput):
    """A record batch as a frame of the listed subjects' events, each classified (``what``, ``loinc``,
    ``code_unit``); the subjects seen go into ``output``."""
    import pyarrow.compute as pc

    output.counts["records_read"] += batch.num_rows
    frame = batch.filter(pc.is_in(batch.column("subject_id"), value_set=subjects)).to_pandas()
    for column in ("numeric_value", "text_value", "unit"):
        if column not in frame.columns:
            frame[column] = None
    output.patients_seen.update(str(s) for s in frame["subject_id"].unique())
    frame["subject_id"] = frame["subject_id"].astype(str)
    classes = frame["code"].map(classify)
    frame["what"] = [c[0] for c in classes]
    frame["loinc"] = [c[1] for c in classes]
    frame["code_unit"] = [c[2] for c in classes]
    return frame


def _demographic_facts(frame) -> list[dict]:
    """Static events (``GENDER//F``, ``NAME//value``) as ``{"static": subject, "columns": {...}}`` and birth
    events as ``{"birth": subject, "time": ...}``: they travel with the unit, so a resumed import keeps them."""
    import pandas as pd

    meds = _meds()
    static: dict[str, dict[str, str]] = {}
    births: dict[str, pd.Timestamp] = {}
    statics = frame[frame["time"].isna()]
    for subject, code in zip(statics["subject_id"], statics["code"], strict=True):
        name, sep, value = code.partition(CODE_SEPARATOR)
        if sep and value:
            column = "sex" if name.upper() == GENDER_CODE else name.lower()
            static.setdefault(subject, {})[column] = value
    born = frame[(frame["code"] == meds.birth_code) & frame["time"].notna()]
    for subject, time in zip(born["subject_id"], born["time"], strict=True):
        births[subject] = pd.Timestamp(time, tz="UTC")
    return [{"static": s, "columns": cols} for s, cols in static.items()] + [
        {"birth": s, "time": t.isoformat()} for s, t in births.items()
    ]


def _value_rows(timed, where: str, loinc_kind: dict[str, str], output: UnitOutput) -> list[dict]:
    """Event rows of the catalogue's values; those without a unit (``UNIT_NOT_UCUM``) or a numeric value are
    reported in ``output`` and skipped. ``where`` names the file and batch in messages."""
    from mmdx.data.issues import IssueCode
    from mmdx.importers.staging import import_issue

    values = timed[timed["what"] == "value"].copy()
    if not len(values):
        return []
    values["unit"] = values["unit"].where(values["unit"].notna(), values["code_unit"])
    no_unit = values["unit"].isna()
    for code, n in values.loc[no_unit, "code"].value_counts().items():
        output.issues.append(
            import_issue(
                IssueCode.UNIT_NOT_UCUM,
                f"{where}: {n} value(s) of code {code} have no unit (no unit column, "
                "no //unit suffix, no unit in codes.parquet); values skipped",
                warning=True,
            )
        )
    values = values[~no_unit]
    no_value = values["numeric_value"].isna()
    if no_value.any():
        output.issues.append(
            import_issue(
                IssueCode.SOURCE_RECORD_INVALID,
                f"{where}: {int(no_value.sum())} event(s) of catalogue codes have no numeric_value; skipped",
                warning=True,
            )
        )
    values = values[~no_value]
    times = [_iso(t) for t in values["time"]]
    numbers = _shortest(values["numeric_value"].to_numpy())
    return [
        {
            "patient_id": subject,
            "kind": loinc_kind[loinc],
            "time": time,
            "code": loinc,
            "value": value,
            "unit": str(unit_text),
            "source_id": code,
        }
        for subject, loinc, value, unit_text, time, code in zip(
            values["subject_id"], values["loinc"], numbers, values["unit"], times, values["code"], strict=True
        )
    ]


def _note_rows(timed) -> list[dict]:
    """Event rows of the notes: events of note codes with a ``text_value``; the code's part after ``//`` is
    the note type."""
    notes = timed[(timed["what"] == "note") & timed["text_value"].notna()]
    rows = []
    for subject, code, text, time in zip(
        notes["subject_id"], notes["code"], notes["text_value"], notes["time"], strict=True
    ):
        _, _, note_type = code.partition(CODE_SEPARATOR)
        rows.append(
            {
                "patient_id": subject,
                "kind": "note",
                "time": _iso(time),
                "text": text,
                "note_type": note_type or None,
                "source_id": code,
            }
        )
    return rows


def _skip_invalid_file(staging: ImportStaging, rel: str, exc: Exception) -> None:
    """Report a data file whose schema is not MEDS's (once, as a committed unit of its own)."""
    from mmdx.data.issues import IssueCode
    from mmdx.importers.staging import UnitOutput, import_issue

    unit = f"{rel}#schema"
    if staging.done(unit):
        return
    output = UnitOutput()
    output.issues.append(
        import_issue(
            IssueCode.SOURCE_SCHEMA_INVALID, f"{rel}: not a MEDS data file ({exc}); the file is skipped"
        )
    )
    staging.commit(unit, output)


def _add_demographics(staging: ImportStaging, caselist) -> None:
    """Add the committed static events as case-list columns (``sex``, ...) and ``age`` in whole years at the
    index time, unless the case list has those columns already."""
    import numpy as np
    import pandas as pd

    demographics: dict[str, dict[str, str]] = {}
    birth_of: dict[str, pd.Timestamp] = {}
    for record in staging.json_lines("facts"):
        if "static" in record:
            demographics.setdefault(record["static"], {}).update(record["columns"])
        elif "birth" in record:
            birth_of[record["birth"]] = pd.Timestamp(record["time"])
    frame = caselist.frame
    for column in sorted({c for cols in demographics.values() for c in cols}):
        if column not in frame.columns:
            frame[column] = [demographics.get(p, {}).get(column) for p in frame["patient_id"]]
    if birth_of and "age" not in frame.columns:
        ages = []
        for patient, index in zip(frame["patient_id"], frame["_index"], strict=True):
            born = birth_of.get(patient)
            ages.append(None if born is None else str(int(np.floor((index - born).days / 365.25))))
        frame["age"] = ages


def import_meds(
    root: str | Path,
    out: str | Path,
    labels: str | Path,
    options: ImportOptions | None = None,
    progress: Progress | None = None,
    note_prefix: str = DEFAULT_NOTE_PREFIX,
) -> ImportResult:
    """Import the MEDS dataset at ``root`` for the cases of the label file ``labels`` into ``out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from flexible_schema.exceptions import SchemaValidationError

    from mmdx.data.catalogue import FeatureCatalogue
    from mmdx.importers.output import ImportOptions, event_frame, finish_import, lookback_of, split_attached
    from mmdx.importers.staging import ImportStaging, UnitOutput, fingerprint_file

    meds = _meds()
    options = options or ImportOptions()
    root = Path(root)
    files = _data_files(root)
    catalogue = FeatureCatalogue.load()
    windows = lookback_of(options, catalogue)
    setup_issues: list = []
    splits = _read_splits(root, setup_issues)
    parents, code_units = _read_code_metadata(root, setup_issues)
    caselist = _read_labels(Path(labels), splits)
    caselist.rejected.extend(setup_issues)
    subjects = pa.array(sorted({int(p) for p in caselist.patients}), type=pa.int64())
    identity = {
        "source": "meds",
        "path": str(root.resolve()),
        "files": [[str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns] for f in files],
        "labels": fingerprint_file(labels),
        "note_prefix": note_prefix,
        **options.identity(),
    }
    staging = ImportStaging(out, identity)
    loinc_kind = {f.loinc: f.kind for f in catalogue}
    classify = _CodeClassifier(loinc_kind, parents, code_units, note_prefix)
    total_rows, done_rows = _total_rows(files), 0
    for path in files:
        rel = str(path.relative_to(root))
        try:
            parquet = pq.ParquetFile(path)
            meds.DataSchema.validate(parquet.schema_arrow)
        except (OSError, ValueError, SchemaValidationError) as exc:
            _skip_invalid_file(staging, rel, exc)
            continue
        names = parquet.schema_arrow.names
        columns = [
            c for c in ("subject_id", "time", "code", "numeric_value", "text_value", "unit") if c in names
        ]
        for number, batch in enumerate(parquet.iter_batches(batch_size=options.batch_size, columns=columns)):
            unit = f"{rel}#{number}"
            done_rows += batch.num_rows
            if staging.done(unit):
                continue
            output = UnitOutput()
            frame = _batch_frame(batch, subjects, classify, output)
            timed = frame[frame["time"].notna()]
            output.counts["observations_not_in_catalogue"] += int((timed["what"] == "other_loinc").sum())
            rows = _value_rows(timed, f"{rel} batch {number}", loinc_kind, output) + _note_rows(timed)
            split_attached(caselist.attach(event_frame(rows), windows, output.counts), output)
            output.facts.extend(_demographic_facts(frame))
            staging.commit(unit, output)
            if progress:
                progress(done_rows, total_rows, unit)
    _add_demographics(staging, caselist)
    source = {"format": "meds", "path": str(root.resolve()), "labels": str(Path(labels).resolve())}
    return finish_import(staging, caselist, options, source, {})


HELP = __doc__.split("\n\n", 1)[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "root", metavar="MEDS_ROOT", help="the MEDS dataset folder (with data/ and metadata/)"
    )
    add_cohort_arguments(parser)
    parser.add_argument(
        "--labels",
        required=True,
        metavar="LABELS.parquet",
        help="MEDS label file: subject_id, prediction_time (the index time), boolean_value or integer_value",
    )
    parser.add_argument(
        "--note-prefix",
        default=DEFAULT_NOTE_PREFIX,
        help=f"codes of note events start with this (default {DEFAULT_NOTE_PREFIX})",
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
    with progress_bar("MEDS", unit="event") as progress:
        result = import_meds(
            args.root, args.out, args.labels, options, progress=progress, note_prefix=args.note_prefix
        )
    print_result(result)
    return 0


IMPORTERS.register(
    ImporterSpec(
        name="meds",
        help="a MEDS dataset and label file -> cohort directory",
        description=HELP,
        add_arguments=add_arguments,
        run=run,
    )
)
