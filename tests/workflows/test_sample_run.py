"""The sample run's helpers: picking cases by the kind of their image, and an explained copy of a run."""

from __future__ import annotations

import pytest

from mmdx.run import RunPaths
from mmdx.workflows.sample_run import cases_with_image, image_kinds


def test_cases_are_picked_by_the_kind_of_their_image(explained_2d) -> None:
    kinds = image_kinds(explained_2d.cohort)
    assert set(kinds.values()) <= {"dicom", "nifti", "none"}
    for kind in ("dicom", "nifti", "none"):
        chosen = cases_with_image(explained_2d.path, explained_2d.cohort, 3, kind=kind)
        assert len(chosen) <= 3 and all(kinds[c] == kind for c in chosen)
    with pytest.raises(ValueError, match="kind must be one of"):
        cases_with_image(explained_2d.path, explained_2d.cohort, 1, kind="png")


def test_an_explained_copy_holds_the_chosen_cases_and_no_checkpoints_or_review_store(explained_2d) -> None:
    copy = RunPaths(explained_2d.path)
    assert not copy.checkpoints.exists() and not copy.review_store.exists()
    explained = {entry["case_id"] for entry in copy.read_explanation_index()["cases"]}
    assert explained == set(explained_2d.dicom + explained_2d.nifti)
    assert copy.bundle.is_dir() and copy.predictions.is_file()
