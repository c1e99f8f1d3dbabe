"""DICOM conformance checks with dicom3tools' ``dciodvfy`` (Debian package ``dicom3tools``).

``dciodvfy FILE`` checks a file against the IOD its SOP Class names and prints one line per finding,
``Error - ...`` or ``Warning - ...``; its exit status does not count them, so :func:`verify` parses the
lines. A file with any error is not conformant.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from mmdx.errors import MmdxError

PACKAGE = "dicom3tools"


@dataclass
class Verification:
    """What ``dciodvfy`` said about one file: the IOD it checked against, its errors and warnings."""

    path: Path
    iod: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def find_dciodvfy() -> Path | None:
    found = shutil.which("dciodvfy")
    return Path(found) if found else None


def verify(path: str | Path) -> Verification:
    """Run ``dciodvfy`` on one file."""
    executable = find_dciodvfy()
    if executable is None:
        raise MmdxError(f"dciodvfy not found; install it with: apt-get install {PACKAGE}")
    path = Path(path)
    done = subprocess.run(
        [str(executable), str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=300,
        check=False,
    )
    lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
    result = Verification(path=path, iod="")
    for line in lines:
        if line.startswith("Abort"):
            result.errors.append(line)
        elif "Error -" in line:
            result.errors.append(line)
        elif "Warning -" in line:
            result.warnings.append(line)
        elif not result.iod and " " not in line:
            result.iod = line
    return result
