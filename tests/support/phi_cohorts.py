"""Identified (``--phi``) cohorts and their de-identified copies, written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmdx.data.synth import SynthOptions, synthesize_cohort
from mmdx.deid.cohort import DeidOptions, deidentify_cohort
from mmdx.deid.key import DeidKey

KEY_A = DeidKey(bytes(range(32)))
KEY_B = DeidKey(bytes(range(1, 33)))


@pytest.fixture(scope="session")
def phi3d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An identified 3D cohort: 20 cases, DICOM series (16 slices of 16²) and NIfTI, canaries everywhere."""
    out = tmp_path_factory.mktemp("phi") / "phi3d"
    synthesize_cohort(out, SynthOptions(n_cases=20, seed=13, dims=3, size=16, phi=True, workers=2))
    return out


@pytest.fixture(scope="session")
def phi2d_defects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An identified 2D cohort with every planted defect (truncated DICOM, mixed series, escaping path…)."""
    out = tmp_path_factory.mktemp("phi") / "phi2d"
    synthesize_cohort(out, SynthOptions(n_cases=40, seed=8, dims=2, size=16, phi=True, defects=True))
    return out


@pytest.fixture(scope="session")
def deid3d(phi3d: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deid") / "deid3d"
    deidentify_cohort(phi3d, out, KEY_A, DeidOptions(workers=2))
    return out


@pytest.fixture(scope="session")
def deid2d_defects(phi2d_defects: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deid") / "deid2d"
    deidentify_cohort(phi2d_defects, out, KEY_A)
    return out
