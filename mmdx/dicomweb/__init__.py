"""DICOMweb: reaching a PACS over HTTP (QIDO-RS search, WADO-RS retrieve, STOW-RS store).

``connection`` owns the URL, authentication, TLS and error reporting that ``mmdx export --dicomweb`` and
``mmdx import dicomweb`` share; ``orthanc`` starts a throwaway Orthanc server for tests and benchmarks.
"""

from mmdx.dicomweb.connection import (
    AuthKind,
    DicomwebError,
    DicomwebFailure,
    DicomwebSettings,
    Secret,
    add_connection_arguments,
    open_client,
    reporting_failures,
    settings_from_arguments,
)

__all__ = [
    "AuthKind",
    "DicomwebError",
    "DicomwebFailure",
    "DicomwebSettings",
    "Secret",
    "add_connection_arguments",
    "open_client",
    "reporting_failures",
    "settings_from_arguments",
]
