"""Runs for the dashboard's tests and benchmark (test support; not part of the installed package).

The runs themselves come from :func:`mmdx.workflows.sample_run.build_sample_run`.
:func:`write_placeholder_explanations` fills ``RUN/explanations/`` with files in the
format ``mmdx explain`` writes, but with **random** attributions (method ``placeholder-random``): they
exercise every part of the dashboard (overlay, bars, highlights, Shapley table) without running the
explainer, and mean nothing about the model. Real explanations come from ``mmdx explain``.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mmdx.explain.artifacts import INDEX
from mmdx.keys import MODALITIES
from mmdx.run import RunPaths
from mmdx.workflows.sample_run import build_sample_run

PLACEHOLDER_METHOD = "placeholder-random"
_WORD = re.compile(r"[A-Za-z0-9]+")


def _blob(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A positive Gaussian blob plus small signed noise: ``[*shape]`` float32."""
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    centre = [rng.uniform(0.3, 0.7) * s for s in shape]
    width = max(1.0, min(shape) / 6)
    squared = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
    blob = np.exp(-squared / (2 * width**2))
    return (blob * 1e-3 + rng.normal(0, 5e-5, shape)).astype(np.float32)


def write_placeholder_explanations(
    run_dir: str | Path, case_ids: list[str] | None = None, seed: int = 0
) -> str:
    """Write ``RUN/explanations/`` for ``case_ids`` (default: every case) with random attributions in the
    format of ``mmdx explain``; returns the explanation version. Replaces existing explanations."""
    from mmdx.bundle import load_bundle
    from mmdx.data.imaging import read_image
    from mmdx.explain.artifacts import case_folder_name
    from mmdx.review.case_inputs import CohortCaseReader

    run = RunPaths(Path(run_dir))
    bundle = load_bundle(run.bundle)
    predictions = run.read_predictions()
    if case_ids is not None:
        predictions = predictions[predictions["case_id"].isin(case_ids)]
    cohort = Path(bundle.card["cohort"]["path"])
    config = bundle.preprocessing.image_config
    version = f"placeholder-{seed}"
    root = run.explanations
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    reader = CohortCaseReader(cohort, tuple(bundle.preprocessing.numeric_columns))
    entries = []
    for row in predictions.to_dict(orient="records"):
        case_id = str(row["case_id"])
        presence = {m.value: bool(row[f"has_{m.value}"]) for m in MODALITIES}
        inputs = reader.case(case_id)
        folder = root / case_folder_name(case_id)
        folder.mkdir()
        files = {}
        if presence["image"] and config is not None:
            np.save(
                folder / "image_attribution_model_grid.npy",
                _blob(tuple(config.shape), rng),
                allow_pickle=False,
            )
            files["image_model_grid"] = "image_attribution_model_grid.npy"
            if inputs.image_path is not None:  # the map on the image's own grid, as mmdx explain writes it
                volume = read_image(str(inputs.image_path))
                original = nib.Nifti1Image(_blob(volume.array.shape, rng), volume.affine)
                nib.save(original, folder / "image_attribution.nii.gz")
                files["image_original_grid"] = "image_attribution.nii.gz"
        tabular = None
        if presence["tabular"]:
            tabular = []
            for key in [*bundle.preprocessing.features, *bundle.preprocessing.numeric_columns]:
                feature = inputs.feature(key) if key in bundle.preprocessing.features else None
                value = inputs.values.get(key)
                reference = feature.reference if feature is not None else None
                tabular.append(
                    {
                        "key": key,
                        "display": feature.display if feature is not None else key.capitalize(),
                        "kind": "numeric",
                        "value": value,
                        "unit": feature.unit if feature is not None else None,
                        "missing": value is None,
                        "reference_low": None if reference is None else reference[0],
                        "reference_high": None if reference is None else reference[1],
                        "abnormal": None
                        if reference is None or value is None
                        else not reference[0] <= value <= reference[1],
                        "attribution": float(rng.normal(0, 1e-4)),
                    }
                )
        tokens = None
        if presence["text"] and inputs.note_text:
            tokens = [
                {
                    "text": m.group(),
                    "start": m.start(),
                    "end": m.end(),
                    "attribution": float(rng.normal(0, 1e-4)),
                }
                for m in _WORD.finditer(inputs.note_text)
            ]
        # the image's placeholder Shapley value: large enough for the page to colour its map, except in every
        # third case, whose map the page greys
        scale = {"image": 0.5 if len(entries) % 3 else 1e-3}
        shapley = {
            m: float(rng.normal(0, scale.get(m, 1e-3))) if present else 0.0 for m, present in presence.items()
        }
        base = float(rng.normal(0, 1e-3))
        shapley.update({"base_value": base, "full_value": base + sum(shapley.values())})
        document = {
            "case_id": case_id,
            "method": PLACEHOLDER_METHOD,
            "probability": float(row["probability"]),
            "logit": float(row["logit"]),
            "gates": {m.value: float(row[f"gate_{m.value}"]) for m in MODALITIES},
            "presence": presence,
            "missing_modalities": [m for m, present in presence.items() if not present],
            "modality_totals": {
                m: (float(rng.normal(0, 1e-3)) if present else None) for m, present in presence.items()
            },
            "tabular": tabular,
            "tokens": tokens,
            "shapley": shapley,
            "files": files,
            "explanation_version": version,
            "schema_version": 1,
        }
        (folder / "explanation.json").write_text(json.dumps(document, indent=1), encoding="utf-8")
        entries.append({"case_id": case_id, "folder": folder.name, "files": {PLACEHOLDER_METHOD: files}})
    index = {
        "explanation_version": version,
        "schema_version": 1,
        "created": datetime.now(UTC).isoformat(),
        "methods": [PLACEHOLDER_METHOD],
        "cases": entries,
    }
    (root / INDEX).write_text(json.dumps(index, indent=1), encoding="utf-8")
    return version


#: A note holding markup, added to one case of the shared test run to check that notes are escaped.
MARKUP_NOTE = "<script>alert('x')</script> Patient <b>stable</b> & afebrile."
MARKUP_CASE = "C00003"


@dataclass(frozen=True)
class TestRun:
    """A run for tests: ``explained`` cases have placeholder explanations, ``unexplained`` have none;
    ``markup_case`` has :data:`MARKUP_NOTE` among its notes."""

    __test__ = False  # not a test class, whatever its name

    path: Path
    explained: list[str]
    unexplained: list[str]
    markup_case: str


def prepare_test_run(run_dir: str | Path, *, explain_every: int = 2) -> TestRun:
    """A built run made ready for tests: placeholder explanations for every ``explain_every``-th case
    (written once; kept when the run already has explanations)."""
    run = RunPaths(Path(run_dir))
    case_ids = run.read_predictions()["case_id"].tolist()
    explained = case_ids[::explain_every]
    if not (run.explanations / INDEX).is_file():
        write_placeholder_explanations(run.root, explained, seed=1)
    chosen = set(explained)
    return TestRun(run.root, explained, [c for c in case_ids if c not in chosen], MARKUP_CASE)


@pytest.fixture(scope="session")
def review_run(tmp_path_factory: pytest.TempPathFactory) -> TestRun:
    """The 2D sample run shared by the dashboard's tests, half its cases with placeholder explanations."""
    run = build_sample_run(
        tmp_path_factory.getbasetemp() / "review-run-2d", extra_notes={MARKUP_CASE: MARKUP_NOTE}
    )
    return prepare_test_run(run)


@pytest.fixture(scope="session")
def review_run_3d(tmp_path_factory: pytest.TempPathFactory) -> TestRun:
    """A 3D run (16³ volumes, 60 cases, one epoch, every case explained): the case page gets a slice slider
    and an overlay."""
    run = build_sample_run(tmp_path_factory.getbasetemp() / "review-run-3d", dims=3, n_cases=60)
    return prepare_test_run(run, explain_every=1)


def plant_external_evaluation(run_dir: str | Path, site: str, model_version: str) -> dict:
    """An external evaluation ``RUN/external/<site>/`` written through the run's own writers, as
    ``mmdx evaluate --name`` lays it out (its numbers made up, known to the test): the run's predictions
    with every probability halved, the first ten cases as the local sample. Returns what was written."""
    run = RunPaths(Path(run_dir))
    paths = run.external(site).create()
    frame = run.read_predictions().copy()
    frame["probability"] = frame["probability"] / 2
    frame["split"] = "test"
    frame.loc[frame.index[:10], "split"] = "val"
    frame["label"] = frame["label"].fillna(0)
    scored = frame[frame["split"] == "test"]
    interval = {"estimate": 0.81, "low": 0.74, "high": 0.88}
    metrics = {
        "site": site,
        "model_version": model_version,
        "splits": {"test": {"n": len(scored), "n_positive": int(scored["label"].sum()), "auroc": 0.81}},
        "intervals": {"auroc": interval, "ece": {"estimate": 0.05, "low": 0.03, "high": 0.08}},
        "bayes_auroc": 0.9,
    }
    scores = {
        name: {"estimate": value, "low": value - 0.1, "high": value + 0.1}
        for name, value in (("citl", -0.01), ("calibration_slope", 0.95), ("ece", 0.04))
    }
    recalibration = {
        "recommended": "closed_test",
        "original": {"scores": scores, "ece_perfect": {"mean": 0.03}},
        "methods": {
            "logistic": {"status": "ok", "scores": scores, "ece_perfect": {"mean": 0.03}},
            "closed_test": {
                "status": "ok",
                "selected": "intercept",
                "scores": scores,
                "ece_perfect": {"mean": 0.03},
            },
            "prevalence_labelled": {"status": "not_available", "reason": "test"},
        },
    }
    drift = {"status": "ok", "flags": ["prevalence 0.35 at training, 0.20 here"]}
    paths.write_predictions(frame)
    paths.write_metrics(metrics)
    paths.write_drift(drift)
    paths.write_recalibration(recalibration)
    return {"predictions": frame, "metrics": metrics, "recalibration": recalibration, "drift": drift}
