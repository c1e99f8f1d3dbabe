"""The exporters of ``mmdx export``: where the DICOM objects of a run go.

Each :class:`ExporterSpec` has a ``name`` (``dir``, ``dicomweb``) and an ``open`` that takes an
:class:`ExportDestination` and returns an :class:`Exporter`, which receives the objects of one case at a
time (:meth:`Exporter.send`) and is closed at the end. The exporters register themselves in their modules,
imported at the bottom of this one so that the registry is complete whoever imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mmdx.registry import Registry

if TYPE_CHECKING:
    from mmdx.dicomweb.connection import DicomwebSettings
    from mmdx.export.objects import ExportedObject


@dataclass(frozen=True)
class ExportDestination:
    """``target``: a folder for ``dir``, the service root URL for ``dicomweb``; ``connection``: the
    DICOMweb settings (authentication, TLS) of a ``dicomweb`` destination."""

    target: str
    connection: DicomwebSettings | None = None


class Exporter(Protocol):
    def describe(self) -> str:
        """Where the objects go, safe to print (no credentials)."""
        ...

    def send(self, case_id: str, objects: Sequence[ExportedObject]) -> list[str]:
        """Deliver one case's objects; returns where each one went (a file path or a retrieve URL)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ExporterSpec:
    name: str
    description: str
    open: Callable[[ExportDestination], Exporter]


EXPORTERS: Registry[ExporterSpec] = Registry("exporter")

from mmdx.export import directory, stow  # noqa: E402,F401  (they register themselves)
