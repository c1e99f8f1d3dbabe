"""Explained runs for the export and DICOMweb tests.

They reuse the sample runs the dashboard's tests build (same folders and arguments, so a full session trains
each once) and explain a few cases for real in a copy (:func:`mmdx.workflows.sample_run.explained_copy`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from mmdx.workflows.sample_run import build_sample_run, cases_with_image, explained_copy
from tests.support.review_runs import MARKUP_CASE, MARKUP_NOTE


@dataclass(frozen=True)
class ExplainedRun:
    path: Path
    cohort: Path
    dicom: list[str]  # explained cases with a DICOM image
    nifti: list[str]  # explained cases with a NIfTI image


def _explained(tmp_path_factory: pytest.TempPathFactory, built: Path, name: str) -> ExplainedRun:
    cohort = Path(json.loads((built / "bundle" / "card.json").read_text())["cohort"]["path"])
    dicom = cases_with_image(built, cohort, 2)
    nifti = cases_with_image(built, cohort, 1, kind="nifti")
    path = explained_copy(built, tmp_path_factory.mktemp("export-runs") / name, dicom + nifti)
    return ExplainedRun(path, cohort, dicom, nifti)


@pytest.fixture(scope="session")
def explained_2d(tmp_path_factory: pytest.TempPathFactory) -> ExplainedRun:
    """The dashboard tests' 2D sample run (single DICOM slices), copied, two DICOM cases and one NIfTI case
    explained for real."""
    built = build_sample_run(
        tmp_path_factory.getbasetemp() / "review-run-2d", extra_notes={MARKUP_CASE: MARKUP_NOTE}
    )
    return _explained(tmp_path_factory, built, "run2d")


@pytest.fixture(scope="session")
def explained_3d(tmp_path_factory: pytest.TempPathFactory) -> ExplainedRun:
    """The same for the dashboard tests' 3D sample run (DICOM series)."""
    built = build_sample_run(tmp_path_factory.getbasetemp() / "review-run-3d", dims=3, n_cases=60)
    return _explained(tmp_path_factory, built, "run3d")


@pytest.fixture(params=["2d", "3d"])
def explained(request: pytest.FixtureRequest) -> ExplainedRun:
    return request.getfixturevalue(f"explained_{request.param}")
