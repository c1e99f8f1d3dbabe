"""Runs with real explanations for the export tests and benchmark.

:func:`explained_copy` copies a built run (bundle and predictions; not its checkpoints or explanations) and
runs ``mmdx explain`` on chosen cases of it, so that tests sharing one trained run each get explanations of
their own. :func:`dicom_cases` picks cases of a cohort by the kind of their image.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd


def image_kinds(cohort: Path) -> dict[str, str]:
    """``case_id -> "dicom" | "nifti" | "none"`` from the cohort's cases table."""
    cases = pd.read_csv(cohort / "cases.csv", dtype=str, keep_default_na=False)
    kinds = {}
    for case_id, image in zip(cases["case_id"], cases["image"], strict=True):
        kinds[case_id] = "none" if not image else "nifti" if image.endswith((".nii", ".nii.gz")) else "dicom"
    return kinds


def dicom_cases(run: Path, cohort: Path, n: int, kind: str = "dicom") -> list[str]:
    """The first ``n`` cases of the run's predictions whose image is of ``kind``."""
    predicted = pd.read_parquet(run / "predictions.parquet")["case_id"].astype(str)
    kinds = image_kinds(cohort)
    return [c for c in predicted if kinds.get(c) == kind][:n]


def explained_copy(run: Path, out: Path, cases: list[str]) -> Path:
    """A copy of ``run`` at ``out`` with ``mmdx explain`` run on ``cases`` (no checks, one worker)."""
    from pipelines.explain import explain_run

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("checkpoints", "explanations", "review.sqlite*"))
    explain_run(out, cases=cases, check_cases=0, workers=1, progress=False)
    return out
