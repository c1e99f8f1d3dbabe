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


def test_the_model_grid_may_be_coarser_than_the_synthesised_images(tmp_path, monkeypatch) -> None:
    """``grid`` sets the model's grid; the images keep ``size`` (what the native-resolution viewer is for)."""
    import mmdx.data.synth
    import mmdx.workflows.evaluate
    import mmdx.workflows.train
    from mmdx.workflows.sample_run import build_sample_run

    seen: dict = {}
    monkeypatch.setattr(
        mmdx.data.synth, "synthesize_cohort", lambda _out, options: seen.update(size=options.size)
    )
    monkeypatch.setattr(
        mmdx.workflows.train,
        "train_run",
        lambda config, *_a, **_k: seen.update(shape=config.data.image.shape),
    )
    monkeypatch.setattr(mmdx.workflows.evaluate, "evaluate_run", lambda *_a, **_k: None)
    build_sample_run(tmp_path / "coarse", dims=3, size=48, grid=16)
    assert seen == {"size": 48, "shape": [16, 16, 16]}
    build_sample_run(tmp_path / "same", dims=2, size=24)
    assert seen == {"size": 24, "shape": [24, 24]}
