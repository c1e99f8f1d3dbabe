"""Writing an imported cohort piece by piece, so that memory stays flat and an interrupted import resumes.

An importer reads its source in *units* (a block of lines of an NDJSON file, a Bundle file, a row group of a
MEDS shard, a batch of cases of an OMOP query). Each finished unit is committed to ``OUT/.mmdx_import/``:
its observations (Parquet), notes, image candidates and issues (JSON lines) go to files of their own, then
``state.json`` records the unit as done -- each write to a temporary name followed by an atomic rename, so
a unit is either wholly committed or not at all. Run again after an interruption (Ctrl-C, a lost database
connection, a killed process), the import skips the committed units and goes on; a unit half-written when it
stopped is simply redone.

When every unit is done, :meth:`ImportStaging.finish` streams the parts into the cohort directory
(``cases.csv``, ``observations.parquet``, ``notes.jsonl``, ``cohort.yaml``, ``import_report.json``) and
removes the staging folder. An OUT folder holding a *finished* cohort, or one staged from other input,
is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from mmdx import __version__
from mmdx.data.issues import Issue, IssueCode, Severity
from mmdx.errors import MmdxError

STAGING_DIR = ".mmdx_import"
STATE_FILE = "state.json"
REPORT_FILE = "import_report.json"
OBSERVATIONS_FILE = "observations.parquet"
NOTES_FILE = "notes.jsonl"
CASES_FILE = "cases.csv"

#: the observations table of an imported cohort, as written (``time``: ISO 8601 text as the source gave it)
OBSERVATION_SCHEMA = pa.schema(
    [
        ("case_id", pa.string()),
        ("code", pa.string()),
        ("value", pa.float64()),
        ("unit", pa.string()),
        ("time", pa.string()),
        ("source_id", pa.string()),
    ]
)
#: at most this many issues of one code are listed in the import report (all are counted)
LISTED_PER_CODE = 200


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def fingerprint_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes (the case list is part of what an import's identity depends on)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class UnitOutput:
    """What one unit of the source gave: observation rows, note lines, image candidates, issues and counts.

    ``observations`` follows :data:`OBSERVATION_SCHEMA`; a note is ``{case_id, text, note_type, time}``; an
    image candidate ``{case_id, image, acquired, source_id}`` (``image``: ``dicomweb:<study>/<series>`` or a
    local path); ``facts`` are other findings the source needs at the end (endpoints, demographics);
    ``counts`` adds to the report's counters (records read, attached, not attached by reason).
    """

    observations: pd.DataFrame | None = None
    notes: list[dict] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    patients_seen: set[str] = field(default_factory=set)
    facts: list[dict] = field(default_factory=list)


class ImportStaging:
    """The staging folder of one import into ``out``; ``identity`` (source, arguments, case list digest)
    must match the one an interrupted run left, or the import is refused."""

    def __init__(self, out: str | Path, identity: dict) -> None:
        self.out = Path(out)
        self.dir = self.out / STAGING_DIR
        self.identity = identity
        state_path = self.dir / STATE_FILE
        if state_path.is_file():
            state = json.loads(state_path.read_text(encoding="utf-8"))
            if state.get("identity") != identity:
                raise MmdxError(
                    f"{self.out} holds an unfinished import of other input ({state.get('identity', {}).get('source')}); "
                    "delete the folder or choose another OUT"
                )
            self.state = state
            self.resumed_units = len(state["units"])
        else:
            if self.out.exists() and any(p.name != STAGING_DIR for p in self.out.iterdir()):
                raise MmdxError(f"{self.out} exists and is not empty; choose a new folder or delete it first")
            (self.dir / "parts").mkdir(parents=True, exist_ok=True)
            self.state = {"identity": identity, "units": {}, "started": datetime.now(UTC).isoformat()}
            self.resumed_units = 0
            self._save()

    def _save(self) -> None:
        _atomic_write(self.dir / STATE_FILE, json.dumps(self.state, indent=1, default=str))

    def done(self, unit: str) -> bool:
        return unit in self.state["units"]

    def _part(self, unit: str, suffix: str) -> Path:
        return self.dir / "parts" / f"{hashlib.sha256(unit.encode()).hexdigest()[:20]}{suffix}"

    def cursor(self, stream: str) -> list | None:
        """Where a keyed stream (rows read in key order) stopped: the key of its last committed row, or None."""
        return self.state.get("cursors", {}).get(stream)

    def commit(self, unit: str, output: UnitOutput, cursor: tuple[str, list] | None = None) -> None:
        """Write one unit's output and mark it done (after this returns, an interruption loses nothing of it).

        ``cursor``: ``(stream, key)`` of the unit's last row, for sources read in key order (see :meth:`cursor`).
        """
        files = {}
        if output.observations is not None and len(output.observations):
            path = self._part(unit, ".observations.parquet")
            table = pa.Table.from_pandas(
                output.observations[OBSERVATION_SCHEMA.names], schema=OBSERVATION_SCHEMA, preserve_index=False
            )
            tmp = path.with_name(path.name + ".tmp")
            pq.write_table(table, tmp)
            os.replace(tmp, path)
            files["observations"] = path.name
        for name, rows in (
            ("notes", output.notes),
            ("images", output.images),
            ("facts", output.facts),
            ("issues", [i.to_dict() for i in output.issues]),
        ):
            if rows:
                path = self._part(unit, f".{name}.jsonl")
                _atomic_write(
                    path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
                )
                files[name] = path.name
        self.state["units"][unit] = {
            "files": files,
            "counts": {key: int(n) for key, n in output.counts.items()},
            "patients_seen": sorted(output.patients_seen),
        }
        if cursor is not None:
            self.state.setdefault("cursors", {})[cursor[0]] = cursor[1]
        self._save()

    def _parts(self, name: str) -> Iterator[Path]:
        for record in self.state["units"].values():
            if name in record["files"]:
                yield self.dir / "parts" / record["files"][name]

    def json_lines(self, name: str) -> Iterator[dict]:
        """Every committed record of ``name`` (``notes``, ``images``, ``facts``, ``issues``), unit by unit."""
        for path in self._parts(name):
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    yield json.loads(line)

    def counts(self) -> Counter:
        total: Counter = Counter()
        for record in self.state["units"].values():
            total.update(record["counts"])
        return total

    def patients_seen(self) -> set[str]:
        return {p for record in self.state["units"].values() for p in record["patients_seen"]}

    def finish(
        self,
        cases: pd.DataFrame,
        spec: dict,
        report: dict,
        extra_issues: list[Issue],
    ) -> dict:
        """Write the cohort directory from the committed units and remove the staging folder.

        ``cases``: the final cases table (text columns); ``spec``: ``cohort.yaml``; ``report``: the source's
        part of ``import_report.json``; ``extra_issues``: issues found outside the units (rejected case rows,
        patients not found). Returns the import report.
        """
        observations = 0
        writer = None
        final_obs = self.out / OBSERVATIONS_FILE
        tmp_obs = self.dir / (OBSERVATIONS_FILE + ".tmp")
        try:
            for path in self._parts("observations"):
                for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
                    if writer is None:
                        writer = pq.ParquetWriter(tmp_obs, OBSERVATION_SCHEMA)
                    writer.write_batch(batch)
                    observations += batch.num_rows
        finally:
            if writer is not None:
                writer.close()
        notes = 0
        with (self.dir / (NOTES_FILE + ".tmp")).open("w", encoding="utf-8") as fh:
            for note in self.json_lines("notes"):
                fh.write(json.dumps(note, ensure_ascii=False) + "\n")
                notes += 1
        issues_by_code: Counter = Counter()
        listed: list[dict] = []
        for issue in [*(i.to_dict() for i in extra_issues), *self.json_lines("issues")]:
            issues_by_code[issue["code"]] += 1
            if issues_by_code[issue["code"]] <= LISTED_PER_CODE:
                listed.append(issue)
        full_report = {
            "schema_version": 1,
            "mmdx_version": __version__,
            "source": self.identity.get("source"),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **report,
            "cases": int(len(cases)),
            "observations": observations,
            "notes": notes,
            "images": int(cases["image"].notna().sum()) if "image" in cases.columns else 0,
            "counts": dict(sorted(self.counts().items())),
            "issues_by_code": dict(sorted(issues_by_code.items())),
            "issues": listed,
        }
        # the cohort's files appear last, in one go: a cohort.yaml present means the import finished
        cases.to_csv(self.out / CASES_FILE, index=False)
        if writer is not None:
            os.replace(tmp_obs, final_obs)
        os.replace(self.dir / (NOTES_FILE + ".tmp"), self.out / NOTES_FILE)
        _atomic_write(self.out / REPORT_FILE, json.dumps(full_report, indent=1, default=str))
        _atomic_write(self.out / "cohort.yaml", yaml.safe_dump(spec, sort_keys=False, width=110))
        shutil.rmtree(self.dir)
        return full_report


def import_issue(code: IssueCode, message: str, file: str | None = None, warning: bool = False) -> Issue:
    """An issue of the import report (``row`` is not used: sources name their records in the message)."""
    return Issue(code, message, file, Severity.WARNING if warning else Severity.ERROR)
