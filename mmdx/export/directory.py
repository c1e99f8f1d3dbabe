"""The ``dir`` exporter: DICOM Part 10 files in a folder, one subfolder per case, and an ``index.json``.

::

    DIR/index.json                          per case: its objects' kinds, SOP Instance UIDs and files
    DIR/<case>/parametric_map.dcm
    DIR/<case>/segmentation.dcm             with --segmentation
    DIR/<case>/secondary_capture.dcm        with --overlay
    DIR/<case>/structured_report.dcm

Folders are made readable by their owner only, like the run directory (the files carry the cohort's
pseudonymous identifiers). Each file is written under a temporary name and renamed, so a reader never sees
half a file; ``index.json`` keeps the cases of earlier exports into the same folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from mmdx.errors import MmdxError
from mmdx.explain.artifacts import case_folder_name
from mmdx.export.objects import ExportedObject
from mmdx.export.registry import EXPORTERS, ExportDestination, ExporterSpec

INDEX = "index.json"


class DirectoryExporter:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise MmdxError(f"cannot create the export folder {folder} ({exc.strerror or exc})") from None
        if not folder.is_dir():
            raise MmdxError(f"{folder} exists and is not a folder; give --to a folder")
        self.index: dict = {"cases": {}}
        path = folder / INDEX
        if path.is_file():
            try:
                self.index = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                raise MmdxError(
                    f"{path} is not valid JSON; remove it or export into another folder"
                ) from None

    def describe(self) -> str:
        return str(self.folder)

    def send(self, case_id: str, objects: Sequence[ExportedObject]) -> list[str]:
        case_dir = self.folder / case_folder_name(case_id)
        case_dir.mkdir(exist_ok=True, mode=0o700)
        written = []
        entries = []
        for obj in objects:
            path = case_dir / f"{obj.kind}.dcm"
            tmp = path.with_name(f".{path.name}.tmp")
            obj.dataset.save_as(tmp, enforce_file_format=True)
            os.replace(tmp, path)
            written.append(str(path))
            entries.append(
                {
                    "kind": str(obj.kind),
                    "file": str(path.relative_to(self.folder)),
                    "sop_class_uid": str(obj.dataset.SOPClassUID),
                    "sop_instance_uid": obj.sop_instance_uid,
                    "series_instance_uid": str(obj.dataset.SeriesInstanceUID),
                    "study_instance_uid": str(obj.dataset.StudyInstanceUID),
                }
            )
        self.index["cases"][case_id] = entries
        return written

    def close(self) -> None:
        path = self.folder / INDEX
        tmp = path.with_name(f".{INDEX}.tmp")
        tmp.write_text(json.dumps(self.index, indent=1), encoding="utf-8")
        os.replace(tmp, path)


def _open(destination: ExportDestination) -> DirectoryExporter:
    return DirectoryExporter(Path(destination.target))


EXPORTERS.register(ExporterSpec("dir", "DICOM files in a folder, one subfolder per case", _open))
