"""The ``dicomweb`` exporter: STOW-RS to a DICOMweb server, one request per case.

A case's objects are stored together; the server's answer is read, and an object it failed to store
(``FailedSOPSequence``) fails the export with the SOP Instance UID and the server's reason code. An
unreachable server or refused credentials fail it too, as a :class:`~mmdx.dicomweb.DicomwebError`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mmdx.dicomweb.connection import (
    DicomwebError,
    DicomwebFailure,
    DicomwebSettings,
    open_client,
    open_session,
    reporting_failures,
)
from mmdx.errors import MmdxError
from mmdx.export.objects import ExportedObject
from mmdx.export.registry import EXPORTERS, ExportDestination, ExporterSpec

log = logging.getLogger(__name__)


class StowExporter:
    def __init__(self, settings: DicomwebSettings) -> None:
        self.settings = settings
        self.session = open_session(settings)
        self.client = open_client(settings, self.session)

    def describe(self) -> str:
        return self.settings.describe()

    def send(self, case_id: str, objects: Sequence[ExportedObject]) -> list[str]:
        action = f"storing {len(objects)} object(s) of case {case_id}"
        with reporting_failures(self.settings, action):
            answer = self.client.store_instances([o.dataset for o in objects])
        failed = answer.get("FailedSOPSequence") or []
        if failed:
            reasons = ", ".join(
                f"{item.get('ReferencedSOPInstanceUID', '?')} (reason {item.get('FailureReason', '?')})"
                for item in failed
            )
            raise DicomwebError(
                DicomwebFailure.SERVER_ERROR,
                f"{action}: the server refused {len(failed)} object(s): {reasons}",
            )
        stored = {
            str(item.get("ReferencedSOPInstanceUID", "")): str(item.get("RetrieveURL", "") or "")
            for item in answer.get("ReferencedSOPSequence") or []
        }
        log.debug("stored %d object(s) of case %s", len(stored), case_id)
        return [stored.get(o.sop_instance_uid) or o.sop_instance_uid for o in objects]

    def close(self) -> None:
        self.session.close()


def _open(destination: ExportDestination) -> StowExporter:
    if destination.connection is None:
        raise MmdxError("the dicomweb exporter needs connection settings (URL, authentication)")
    return StowExporter(destination.connection)


EXPORTERS.register(ExporterSpec("dicomweb", "STOW-RS to a DICOMweb server (a PACS)", _open))
