"""``mmdx export``: a run's results as DICOM objects, into a folder or a PACS.

``source`` reads a case's source DICOM headers and lays its attribution map out as their frames;
``objects`` builds the Parametric Map, Segmentation, Comprehensive 3D SR and Secondary Capture with
highdicom; ``registry`` lists the exporters (``dir``: files in a folder, ``dicomweb``: STOW-RS);
``dciodvfy`` checks files with dicom3tools' validator. The workflow is ``mmdx.workflows.export``.
"""

from mmdx.export.registry import EXPORTERS, ExportDestination, Exporter, ExporterSpec

__all__ = ["EXPORTERS", "ExportDestination", "Exporter", "ExporterSpec"]
