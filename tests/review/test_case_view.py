"""The case view model: what it reads, what it records, and how it says what is missing."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmdx.data import imaging
from mmdx.data.imaging import read_image
from mmdx.data.validation import validate_cohort
from mmdx.explain.artifacts import case_folder_name
from mmdx.keys import Modality
from mmdx.review import (
    ExplanationStatus,
    ReviewContext,
    build_case_view,
    open_review_context,
)
from mmdx.store import AuditAction, PermissionDenied, Principal, Role
from tests.support.review_runs import MARKUP_NOTE, TestRun


def _predictions(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "predictions.parquet").set_index("case_id")


def _explained_with(review_run: TestRun, *modalities: str) -> str:
    predictions = _predictions(review_run.path)
    for case_id in review_run.explained:
        if all(predictions.loc[case_id, f"has_{m}"] for m in modalities):
            return case_id
    raise AssertionError(f"no explained case with {modalities}")


def _open_events(accounts, case_id: str) -> int:
    return len(accounts.store.audit_events(accounts.auditor, case_id=case_id, action=AuditAction.OPEN_CASE))


def test_explained_case_with_every_modality(context: ReviewContext, accounts, review_run: TestRun) -> None:
    case_id = _explained_with(review_run, "image", "tabular", "text")
    view = build_case_view(context, accounts.clinician, case_id)
    row = _predictions(review_run.path).loc[case_id]
    assert view.explanation.status is ExplanationStatus.AVAILABLE
    assert view.probability == pytest.approx(row["probability"])
    assert view.predicted_positive == (row["probability"] >= context.threshold)
    assert view.missing_modalities == []
    # image, attribution map and ground-truth mask share the model grid
    assert view.image is not None and view.image.hu.shape == tuple(context.image_config.shape)
    assert view.image.attribution is not None and view.image.attribution.shape == view.image.hu.shape
    mask_file = context.cohort_dir / "ground_truth" / "masks" / f"{case_id}.nii.gz"
    lesion = mask_file.is_file() and bool(read_image(mask_file).array.any())
    assert (view.image.mask is not None) == lesion
    assert view.image.lesion_in_truth == (lesion if mask_file.is_file() else None)
    if lesion:
        assert view.image.mask.any()
    # contributions: Shapley and gate for each present modality, labelled apart
    for contribution in view.contributions:
        assert contribution.shapley is not None and contribution.gate is not None
        assert contribution.gate == pytest.approx(row[f"gate_{contribution.modality.value}"])
    assert view.shapley_full == pytest.approx(view.shapley_base + sum(c.shapley for c in view.contributions))
    assert any(r.attribution is not None for r in view.tabular)
    assert view.note_text and view.note_spans
    assert all(view.note_text[s.start : s.end].isalnum() for s in view.note_spans)
    assert view.explanation_version == "placeholder-1"
    assert _open_events(accounts, case_id) == 1


def test_values_and_notes_are_those_validation_gives(
    context: ReviewContext, accounts, review_run: TestRun
) -> None:
    case_id = review_run.unexplained[0]
    view = build_case_view(context, accounts.clinician, case_id, record_open=False)
    cohort = validate_cohort(context.cohort_dir, check_images=False)
    assert view.note_text == cohort.notes.get(case_id)
    observations = cohort.observations[cohort.observations["case_id"] == case_id]
    shown = {r.key: r.value for r in view.tabular if r.value is not None}
    for feature, group in observations.groupby("feature"):
        latest = group.sort_values(["time", "row"], na_position="first").iloc[-1]["value"]
        assert shown[feature] == pytest.approx(latest)
    for row in view.tabular:
        if row.value is not None and row.reference_low is not None:
            assert row.abnormal == (not row.reference_low <= row.value <= row.reference_high)
    assert _open_events(accounts, case_id) == 0  # record_open=False


def test_unexplained_case_shows_what_exists(context: ReviewContext, accounts, review_run: TestRun) -> None:
    case_id = review_run.unexplained[0]
    view = build_case_view(context, accounts.clinician, case_id)
    assert view.explanation.status is ExplanationStatus.NOT_FOR_CASE
    assert "not explained" in view.explanation.message
    assert view.explanation_version == "none"
    assert all(c.shapley is None for c in view.contributions)
    assert all(r.attribution is None for r in view.tabular)
    assert view.note_spans == []
    if view.image is not None:
        assert view.image.attribution is None


def test_markup_note_is_kept_verbatim_for_escaping(
    context: ReviewContext, accounts, review_run: TestRun
) -> None:
    view = build_case_view(context, accounts.clinician, review_run.markup_case, record_open=False)
    assert MARKUP_NOTE in view.note_text


def test_missing_modalities_are_listed(context: ReviewContext, accounts, review_run: TestRun) -> None:
    predictions = _predictions(review_run.path)
    lacking = predictions[~predictions["has_image"] | ~predictions["has_text"] | ~predictions["has_tabular"]]
    case_id = lacking.index[0]
    view = build_case_view(context, accounts.clinician, case_id, record_open=False)
    expected = [m for m in Modality if not lacking.loc[case_id, f"has_{m.value}"]]
    assert view.missing_modalities == expected
    for contribution in view.contributions:
        if contribution.modality in expected:
            assert contribution.shapley is None and contribution.gate is None
    if Modality.IMAGE in expected:
        assert view.image is None


def test_run_without_explanations(run_copy: Path, accounts, review_run: TestRun) -> None:
    shutil.rmtree(run_copy / "explanations")
    context = open_review_context(run_copy, accounts.store)
    view = build_case_view(context, accounts.clinician, review_run.explained[0])
    assert view.explanation.status is ExplanationStatus.NONE_IN_RUN
    assert "mmdx explain" in view.explanation.message


def test_damaged_or_foreign_explanations_are_reported(run_copy: Path, accounts, review_run: TestRun) -> None:
    first, second, third = review_run.explained[:3]
    (run_copy / "explanations" / case_folder_name(first) / "explanation.json").write_text("{not json")
    folder = run_copy / "explanations" / case_folder_name(second)
    document = json.loads((folder / "explanation.json").read_text())
    document["probability"] = 0.123456
    (folder / "explanation.json").write_text(json.dumps(document))
    folder = run_copy / "explanations" / case_folder_name(third)
    if (folder / "image_attribution_model_grid.npy").exists():
        np.save(folder / "image_attribution_model_grid.npy", np.ones((3, 3), np.float32))
    context = open_review_context(run_copy, accounts.store)
    damaged = build_case_view(context, accounts.clinician, first, record_open=False)
    assert damaged.explanation.status is ExplanationStatus.UNREADABLE
    foreign = build_case_view(context, accounts.clinician, second, record_open=False)
    assert any("another model" in p for p in foreign.problems)
    wrong_grid = build_case_view(context, accounts.clinician, third, record_open=False)
    if wrong_grid.presence[Modality.IMAGE]:
        assert wrong_grid.image is not None and wrong_grid.image.attribution is None
        assert any("attribution map has shape" in p for p in wrong_grid.problems)


def test_unreachable_cohort_still_shows_prediction_and_explanation(
    run_copy: Path, accounts, review_run: TestRun
) -> None:
    # what open_review_context makes of a cohort that moved away since training
    context = dataclasses.replace(
        open_review_context(run_copy, accounts.store), cohort_dir=None, notes=("cohort gone",)
    )
    case_id = _explained_with(review_run, "tabular")
    view = build_case_view(context, accounts.clinician, case_id, record_open=False)
    assert view.image is None and view.note_text is None
    assert view.tabular and "cohort gone" in view.problems
    assert view.explanation.status is ExplanationStatus.AVAILABLE


def test_unknown_case_and_forged_principal(context: ReviewContext, accounts, review_run: TestRun) -> None:
    with pytest.raises(Exception, match="not among the predictions"):
        build_case_view(context, accounts.clinician, "NO-SUCH-CASE")
    case_id = review_run.explained[0]
    with pytest.raises(PermissionDenied):
        build_case_view(context, Principal("clin", Role.CLINICIAN), case_id)
    assert _open_events(accounts, case_id) == 0  # nothing opened, nothing recorded as opened


def test_every_role_may_read_cases(context: ReviewContext, accounts, review_run: TestRun) -> None:
    case_id = review_run.explained[0]
    for principal in (accounts.clinician, accounts.auditor, accounts.admin):
        assert build_case_view(context, principal, case_id).case_id == case_id
    events = accounts.store.audit_events(accounts.admin, case_id=case_id, action=AuditAction.OPEN_CASE)
    assert {e.user for e in events} == {"clin", "aud", "adm"}


def test_notes_that_cannot_be_read_are_explained(
    context: ReviewContext, accounts, review_run: TestRun, tmp_path: Path
) -> None:
    case_id = _explained_with(review_run, "text")
    cohort = tmp_path / "cohort"
    shutil.copytree(context.cohort_dir, cohort, ignore=shutil.ignore_patterns("images", "*.dcm", "*.nii*"))
    lines = (cohort / "notes.jsonl").read_text(encoding="utf-8").splitlines()
    broken = [line if json.loads(line)["case_id"] != case_id else line[:20] for line in lines]
    (cohort / "notes.jsonl").write_text("\n".join(broken) + "\n", encoding="utf-8")
    view = build_case_view(dataclasses.replace(context, cohort_dir=cohort), accounts.clinician, case_id)
    assert view.note_text is None
    assert any("notes.jsonl" in p and "could not be read" in p for p in view.problems), view.problems


def test_the_original_image_is_shown_at_its_native_resolution_with_its_map(
    context: ReviewContext, accounts, review_run: TestRun
) -> None:
    """Beside the model's grid, the case view holds the image on its own grid (every voxel of the file, RAS),
    and the attribution map that mmdx explain writes on that grid."""
    case_id = _explained_with(review_run, "image")
    view = build_case_view(context, accounts.clinician, case_id)
    inputs = read_image(
        context.cohort_dir
        / pd.read_csv(context.cohort_dir / "cases.csv").set_index("case_id").loc[case_id, "image"]
    )
    assert view.native is not None
    assert sorted(view.native.shape) == sorted((*inputs.array.shape, 1)[:3])
    assert view.native.attribution is not None and view.native.overlay_scale() is not None
    mask_file = context.cohort_dir / "ground_truth" / "masks" / f"{case_id}.nii.gz"
    if mask_file.is_file():
        assert view.native.lesion_in_truth == bool(read_image(mask_file).array.any())
        assert (view.native.mask is not None) == view.native.lesion_in_truth


def test_gates_that_barely_vary_across_cases_are_hidden_with_the_reason() -> None:
    from mmdx.review import uninformative_gates

    rng = np.random.default_rng(0)
    n = 200
    predictions = pd.DataFrame(
        {
            "has_image": np.ones(n, bool),
            "gate_image": 0.5 + rng.normal(0, 0.004, n),  # nearly constant: the run's weight, not the case's
            "has_tabular": np.ones(n, bool),
            "gate_tabular": rng.uniform(0.1, 0.9, n),
            "has_text": np.r_[np.ones(5, bool), np.zeros(n - 5, bool)],  # too few cases to judge
            "gate_text": np.full(n, 0.3),
        }
    )
    notes = uninformative_gates(predictions)
    assert set(notes) == {Modality.IMAGE}
    assert "says nothing about this case" in notes[Modality.IMAGE] and "200 cases" in notes[Modality.IMAGE]


def test_the_contributions_table_drops_gates_that_say_nothing(
    context: ReviewContext, accounts, review_run: TestRun
) -> None:
    from mmdx.review.formatting import contributions_frame

    case_id = _explained_with(review_run, "image", "tabular", "text")
    view = build_case_view(context, accounts.clinician, case_id)
    column = "Gate (fusion weight, 0-1)"
    view.gate_notes = {}
    assert column in contributions_frame(view).columns
    view.gate_notes = {Modality.IMAGE: "the image gate is hidden"}
    frame = contributions_frame(view).set_index("Modality")
    assert np.isnan(frame.loc["Image", column]) and not np.isnan(frame.loc["Clinical notes", column])
    view.gate_notes = {c.modality: "hidden" for c in view.contributions}
    assert column not in contributions_frame(view).columns


def test_opening_a_case_reads_its_image_and_mask_once_for_both_views(
    context: ReviewContext, accounts, review_run: TestRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The original-image viewer and the model-input view are drawn from one reading of each file."""
    cases = pd.read_csv(context.cohort_dir / "cases.csv").set_index("case_id")
    masks = context.cohort_dir / "ground_truth" / "masks"
    with_mask = [c for c in review_run.explained if (masks / f"{c}.nii.gz").is_file()]
    case_id = with_mask[0] if with_mask else _explained_with(review_run, "image")
    reads: list[str] = []
    original = imaging.read_image

    def counting(path, *args, **kwargs):
        reads.append(Path(path).resolve().as_posix())
        return original(path, *args, **kwargs)

    monkeypatch.setattr(imaging, "read_image", counting)
    view = build_case_view(context, accounts.clinician, case_id)
    assert view.native is not None and view.image is not None, view.problems
    image = (context.cohort_dir / cases.loc[case_id, "image"]).resolve().as_posix()
    assert reads.count(image) == 1, reads
    if with_mask:
        assert reads.count((masks / f"{case_id}.nii.gz").resolve().as_posix()) == 1, reads
        assert view.native.lesion_in_truth == view.image.lesion_in_truth
    assert len(reads) == len(set(reads)), reads
    # both views hold the same image: the model grid's values lie within the original's
    assert view.image.hu.min() >= view.native.values.min() - 1e-3
    assert view.image.hu.max() <= view.native.values.max() + 1e-3
