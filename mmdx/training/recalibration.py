"""A local recalibration of a bundle: a small, versioned, checksummed artefact beside it, never inside it.

A folder (``RUN/calibrations/<site>-v<k>/`` by default) with:

=====================  ===============================================================================
``calibration.json``   the method, ``logit p' = intercept + slope * z`` on the bundle's calibrated logit ``z``
                       (its logit divided by its temperature, plus its offset), where it was fitted and on
                       how many cases
``manifest.json``      schema version, the model version and bundle manifest it belongs to, and the SHA-256
                       of ``calibration.json``
=====================  ===============================================================================

Methods: ``prevalence`` (prior shift to a prevalence estimated without labels, slope 1), ``prevalence_labelled``
(prior shift to the observed rate of a labelled sample), ``intercept`` (recalibration-in-the-large: the
intercept fitted with slope 1) and ``logistic`` (intercept and slope fitted). :func:`load_recalibration`
verifies the checksum and that the artefact belongs to the bundle before anything is applied.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit

from mmdx import __version__
from mmdx.errors import BundleError

RECALIBRATION_SCHEMA_VERSION = 1
RECALIBRATION_FILE = "calibration.json"
RECALIBRATION_MANIFEST = "manifest.json"
METHODS = ("prevalence", "prevalence_labelled", "intercept", "logistic", "closed_test")
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Recalibration:
    """``probability = sigmoid(intercept + slope * z)``, ``z`` the bundle's calibrated logit
    (``logit / temperature + offset``)."""

    method: str
    intercept: float
    slope: float
    site: str
    model_version: str
    n_cases: int
    n_positive: int | None = None
    prevalence: float | None = None
    fitted_on: str = ""
    #: for ``closed_test``: the update the procedure chose (``base``, ``intercept`` or ``logistic``)
    selected: str = ""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown recalibration method {self.method!r}; one of {', '.join(METHODS)}")
        if not (math.isfinite(self.intercept) and math.isfinite(self.slope) and self.slope > 0):
            raise ValueError(f"recalibration needs a finite intercept and a positive slope, got {self!r}")

    def transform(self, calibrated_logits: np.ndarray) -> np.ndarray:
        """Recalibrated probabilities from the bundle's calibrated logits (logit / temperature + offset)."""
        return expit(self.intercept + self.slope * np.asarray(calibrated_logits, dtype=np.float64))

    def to_dict(self) -> dict:
        return {"schema_version": RECALIBRATION_SCHEMA_VERSION, **asdict(self)}


def check_site(site: str) -> str:
    """A site name usable as a folder name (letters, digits, ``_ . -``; 64 at most), or ValueError."""
    if not _SITE.match(site or ""):
        raise ValueError(
            f"site name {site!r} must start with a letter or digit and hold only letters, digits, '_', '.' "
            "or '-' (64 characters at most)"
        )
    return site


def next_version_dir(parent: Path, site: str) -> Path:
    """``parent/<site>-v<k>`` with ``k`` one more than the highest existing version (never an existing one)."""
    check_site(site)
    pattern = re.compile(rf"^{re.escape(site)}-v(\d+)$")
    taken = [int(m.group(1)) for p in parent.glob(f"{site}-v*") if (m := pattern.match(p.name))]
    return parent / f"{site}-v{max(taken, default=0) + 1}"


def save_recalibration(directory: Path, recalibration: Recalibration, bundle_manifest_sha256: str) -> Path:
    """Write the artefact to the new folder ``directory`` (refused when it exists: never overwritten)."""
    from mmdx.bundle import sha256_file

    if directory.exists():
        raise FileExistsError(f"{directory} exists; a recalibration is never overwritten")
    directory.mkdir(parents=True, mode=0o700)
    path = directory / RECALIBRATION_FILE
    path.write_text(json.dumps(recalibration.to_dict(), indent=1), encoding="utf-8")
    manifest = {
        "schema_version": RECALIBRATION_SCHEMA_VERSION,
        "kind": "mmdx recalibration",
        "mmdx_version": __version__,
        "model_version": recalibration.model_version,
        "bundle_manifest_sha256": bundle_manifest_sha256,
        "files": {RECALIBRATION_FILE: sha256_file(path)},
    }
    tmp = directory / f".{RECALIBRATION_MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, directory / RECALIBRATION_MANIFEST)
    return directory


def load_recalibration(directory: str | Path, model_version: str) -> Recalibration:
    """The artefact in ``directory``, its checksum verified and checked to belong to ``model_version``;
    raises :class:`BundleError` with one line naming the file and what to do."""
    from mmdx.bundle import sha256_file

    directory = Path(directory)
    manifest_path = directory / RECALIBRATION_MANIFEST
    path = directory / RECALIBRATION_FILE
    if not manifest_path.is_file() or not path.is_file():
        raise BundleError(
            f"{directory} is not a recalibration: {RECALIBRATION_MANIFEST} or {RECALIBRATION_FILE} is missing; "
            "pass a folder written by 'mmdx evaluate RUN --cohort DIR --name SITE'"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        expected = manifest["files"][RECALIBRATION_FILE]
        version = manifest["schema_version"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise BundleError(
            f"{manifest_path} cannot be read ({type(exc).__name__}: {exc}); the artefact is damaged"
        ) from None
    if version != RECALIBRATION_SCHEMA_VERSION:
        raise BundleError(
            f"{directory} is a recalibration of schema version {version!r}; this mmdx reads version "
            f"{RECALIBRATION_SCHEMA_VERSION}: recalibrate again with 'mmdx evaluate --name'"
        )
    if sha256_file(path) != expected:
        raise BundleError(
            f"{path} does not match its checksum in {RECALIBRATION_MANIFEST}: it was modified after it was "
            "written; refusing to apply it (recalibrate again)"
        )
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        state.pop("schema_version", None)
        recalibration = Recalibration(**state)
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise BundleError(f"{path} cannot be used ({exc}); recalibrate again") from None
    if recalibration.model_version != model_version:
        raise BundleError(
            f"{directory} recalibrates model {recalibration.model_version}, not this bundle's model "
            f"{model_version}: choose a recalibration written for this model"
        )
    return recalibration
