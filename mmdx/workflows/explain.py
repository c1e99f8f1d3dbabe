"""The explain workflow: attributions per modality for a run's cases, with faithfulness and sanity checks.

:func:`explain_run` is the whole of ``mmdx explain``: for every selected case it writes, through the run
directory's explanation writer (:mod:`mmdx.explain.artifacts`), the attributions of each method, the
modality Shapley values and the case's fields from ``predictions.parquet``; then ``index.json`` (the
cases, the settings, the version) and ``summary.json`` (deletion curves, the model-randomisation test,
convergence deltas and, on synthetic cohorts, scores against the planted ground truth).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mmdx import __version__
from mmdx.bundle import Bundle, load_bundle
from mmdx.errors import MmdxError, did_you_mean
from mmdx.explain.artifacts import (
    EXPLANATION_SCHEMA_VERSION,
    ExplanationWriter,
    explanation_version,
    write_case,
)
from mmdx.explain.attribution import (
    DEFAULT_STEPS,
    EXPLANATION_METHODS,
    IG_INTEGRATION,
    CaseExplanation,
    ExplanationMethod,
    explain,
    resolve_method,
)
from mmdx.explain.faithfulness import convergence_summary, deletion_curves, randomisation_check
from mmdx.explain.inputs import Baselines, air_value, cohort_explain_inputs, make_baselines
from mmdx.explain.selection import RULE, choose_image_method, measurement_from_sections
from mmdx.explain.shapley import modality_shapley
from mmdx.explain.truth import case_scores, load_truth, summarise_scores
from mmdx.predict import CohortInputs, prepare_inputs
from mmdx.run import RunPaths

log = logging.getLogger(__name__)

#: ``--method both``: every registered method, the first one primary
ALL_METHODS = "both"
#: The explained class: the positive one (the calibrated logit of the positive class).
TARGET = 1
#: Note attributions are reported per word rather than per sub-word token.
MERGE_WORDS = True
#: ``--image-method auto``: choose the method that draws image maps on the validation split
AUTO = "auto"
#: The chosen method's validation numbers carried into summary.json and every case's explanation.
CHECK_KEYS = (
    "randomisation_abs",
    "randomisation_interval",
    "verdict",
    "randomisation_signed",
    "anatomy_trained",
    "anatomy_randomised",
    "pointing_game",
    "mass_in_lesion",
    "mass_lift",
    "n_cases",
    "n_lesion_cases",
)
#: Training-split cases whose images (and values) are the baseline distribution of GradientShap.
REFERENCE_CASES = 16


def image_method_choices() -> list[str]:
    """The values of ``mmdx explain --image-method``: ``auto`` and every method that attributes the image."""
    return [AUTO] + [spec.short for spec in EXPLANATION_METHODS if "image" in spec.modalities]


#: ``progress(done, total)`` as cases are explained
Progress = Callable[[int, int], None]


def method_choices() -> list[str]:
    """The values of ``mmdx explain --method``: each method's short name, then ``both`` (all of them)."""
    return [spec.short for spec in EXPLANATION_METHODS] + [ALL_METHODS]


def methods_for(method: str) -> list[ExplanationMethod]:
    """The methods one ``--method`` value asks for (``both``: the two that attribute every modality,
    Integrated Gradients first, then occlusion)."""
    if method == ALL_METHODS:
        return [spec for spec in EXPLANATION_METHODS if set(spec.modalities) == {"image", "tabular", "text"}]
    return [EXPLANATION_METHODS.get(resolve_method(method))]


@dataclass(frozen=True)
class ExplainResult:
    """What ``mmdx explain`` wrote: the run and the content of ``explanations/summary.json``."""

    run: RunPaths
    summary: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.summary["explanation_version"])

    @property
    def n_cases(self) -> int:
        return int(self.summary["n_cases"])


def select_cases(
    predictions: pd.DataFrame, cases: Sequence[str] | None, split: str, limit: int | None
) -> pd.DataFrame:
    """The rows of ``predictions`` to explain: the given ids (in that order) or the split's cases."""
    if cases:
        known = set(predictions["case_id"].astype(str))
        for case_id in cases:
            if case_id not in known:
                raise MmdxError(
                    f"case {case_id!r} is not in predictions.parquet{did_you_mean(case_id, known)}; "
                    "give ids of cases the run has predicted ('mmdx evaluate RUN' predicts every usable case)"
                )
        chosen = predictions.set_index("case_id").loc[list(dict.fromkeys(cases))].reset_index()
    elif split == "all":
        chosen = predictions
    else:
        chosen = predictions[predictions["split"] == split]
        if chosen.empty:
            splits = ", ".join(sorted(predictions["split"].astype(str).unique()))
            raise MmdxError(
                f"no case of split '{split}' in predictions.parquet (splits present: {splits}); use --split"
            )
    if limit is not None:
        if limit < 1:
            raise MmdxError(f"--limit must be at least 1, got {limit}")
        chosen = chosen.head(limit)
    return chosen.reset_index(drop=True)


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise MmdxError(f"{name} must be at least 1, got {value}")


def _label(value: Any) -> int | None:
    return None if pd.isna(value) else int(value)


def _case_fields(row: pd.Series, threshold: float) -> dict[str, Any]:
    """Fields of a case taken from predictions.parquet, written next to its attributions."""
    return {
        "split": str(row["split"]),
        "label": _label(row["label"]),
        "predicted": int(row["predicted"]),
        "threshold": threshold,
        "modalities": str(row.get("modalities", "")),
    }


@dataclass
class _Job:
    """One explain run: the model and inputs, the settings as used, and what the case loop collects."""

    bundle: Bundle
    prepared: CohortInputs
    position: dict[str, int]
    methods: list[ExplanationMethod]
    chosen: pd.DataFrame
    n_steps: int
    image_baseline: str
    image_value: float
    occlusion_window: int | None
    batch_size: int
    internal_batch_size: int | None
    checked_ids: set[str]
    truth: dict | None
    truth_warnings: list[str]  # ground-truth lines skipped (not matching their schema), named
    cohort_dir: Path
    seed: int
    image_method: str | None = None  # the method drawing the primary method's image maps (None: its own)
    method_options: dict[str, Any] = field(default_factory=dict)
    references: Baselines | None = None  # training-split images and values (GradientShap's baselines)
    image_choice: dict[str, Any] | None = None
    # filled by the case loop: the checked cases' model-grid maps, every case's delta and scores
    kept: dict[str, list[CaseExplanation]] = field(default_factory=dict)
    scores: dict[str, dict[str, dict]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def temperature(self) -> float:
        return float(self.bundle.calibration.temperature_)

    @property
    def offset(self) -> float:
        return float(self.bundle.calibration.offset_)

    def settings(self) -> dict[str, Any]:
        """The settings the attributions were computed with, as recorded in index.json and summary.json."""
        return {
            "n_steps": self.n_steps,
            "integration": IG_INTEGRATION,
            "image_baseline": self.image_baseline,
            "occlusion_window": self.occlusion_window,
            "target": "positive" if TARGET == 1 else "negative",
            "output": "calibrated logit",
            "temperature": self.temperature,
            # only where there is one: explanations of a bundle without an offset keep their version
            **({"offset": self.offset} if self.offset else {}),
            "merge_words": MERGE_WORDS,
            "image_method": self.image_method or (self.methods[0].name if self.methods else None),
            "method_options": dict(self.method_options),
        }

    def inputs_and_baselines(self, case_ids: Sequence[str]) -> tuple:
        inputs = cohort_explain_inputs(self.bundle, self.prepared, [self.position[c] for c in case_ids])
        baselines = make_baselines(inputs, image=self.image_baseline, image_value=self.image_value)
        if self.references is not None:
            baselines = replace(
                baselines,
                image_reference=self.references.image_reference,
                tabular_reference=self.references.tabular_reference,
            )
        return inputs, baselines

    def explain_kwargs(self) -> dict[str, Any]:
        """The settings every attribution call of this run shares."""
        return {
            "n_steps": self.n_steps,
            "internal_batch_size": self.internal_batch_size,
            "temperature": self.temperature,
            "offset": self.offset,
            "occlusion_window": self.occlusion_window,
            "method_options": {"seed": self.seed, **self.method_options},
        }


def _prepare(
    bundle: Bundle, chosen: pd.DataFrame, cohort_dir: str | Path | None, workers: int
) -> tuple[Path, CohortInputs, dict[str, int]]:
    cohort_dir = Path(cohort_dir or bundle.card["cohort"]["path"])
    if not cohort_dir.is_dir():
        raise MmdxError(f"cohort {cohort_dir} not found; pass --cohort DIR")
    prepared = prepare_inputs(bundle, cohort_dir, workers=workers)
    position = {case_id: i for i, case_id in enumerate(prepared.table.case_ids)}
    absent = [c for c in chosen["case_id"] if c not in position]
    if absent:
        raise MmdxError(
            f"{len(absent)} case(s) of predictions.parquet are not usable in {cohort_dir} any more (e.g. "
            f"{absent[0]}); the cohort changed since 'mmdx evaluate' -- run it again"
        )
    return cohort_dir, prepared, position


def _explain_batch(job: _Job, writer: ExplanationWriter, batch_ids: list[str], version: str) -> None:
    rows = job.chosen.set_index("case_id")
    inputs, baselines = job.inputs_and_baselines(batch_ids)
    shapley = modality_shapley(job.bundle.model, inputs.batch, temperature=job.temperature, offset=job.offset)
    files: dict[str, dict] = {c: {} for c in batch_ids}
    for k, spec in enumerate(job.methods):
        began = time.perf_counter()
        explanations = explain(
            job.bundle.model,
            inputs,
            baselines,
            method=spec.name,
            target=TARGET,
            merge_words=MERGE_WORDS,
            image_method=job.image_method if k == 0 else None,
            **job.explain_kwargs(),
        )
        job.seconds[spec.name] += time.perf_counter() - began
        for i, explanation in enumerate(explanations):
            case_id = explanation.case_id
            extra = _case_fields(rows.loc[case_id], job.bundle.threshold)
            if k == 0:
                extra["image_map_check"] = _image_method_record(job)
            files[case_id][spec.name] = write_case(
                writer.case_folder(case_id), explanation, shapley.case_dict(i), extra, version, spec.suffix
            )
            if job.truth is not None and case_id in job.truth:
                job.scores[spec.name][case_id] = case_scores(explanation, job.truth[case_id], job.cohort_dir)
            job.kept[spec.name].append(
                replace(
                    explanation,
                    image_original=None,
                    image_map=explanation.image_map if case_id in job.checked_ids else None,
                )
            )
    for case_id in batch_ids:
        job.entries.append(
            {
                "case_id": case_id,
                "folder": writer.case_folder(case_id).name,
                **_case_fields(rows.loc[case_id], job.bundle.threshold),
                "probability": float(rows.loc[case_id, "probability"]),
                "files": files[case_id],
            }
        )


def _method_section(job: _Job, spec: ExplanationMethod, labels: dict, predicted: dict) -> dict[str, Any]:
    """summary.json's results of one method: convergence, ground truth, deletion curves, randomisation."""
    section: dict[str, Any] = {}
    kept = job.kept[spec.name]
    if spec.integrates:
        section["convergence_delta"] = convergence_summary(kept)
    if job.truth is not None:
        section["ground_truth"] = summarise_scores(job.scores[spec.name], labels, predicted)
    checked = [e for e in kept if e.case_id in job.checked_ids]
    if checked:
        inputs, baselines = job.inputs_and_baselines([e.case_id for e in checked])
        model = job.bundle.model
        curves = deletion_curves(
            model, inputs, checked, baselines, temperature=job.temperature, offset=job.offset, seed=job.seed
        )
        randomised = randomisation_check(
            model,
            inputs,
            checked,
            baselines,
            seed=job.seed,
            batch_size=job.batch_size,
            **job.explain_kwargs(),
        )
        section["deletion"] = {m: c.summary() for m, c in curves.items()}
        section["randomisation"] = randomised.summary()
    return section


def _summary(job: _Job, version: str) -> dict[str, Any]:
    chosen = job.chosen
    labels = {c: _label(v) for c, v in zip(chosen["case_id"], chosen["label"], strict=True)}
    predicted = dict(zip(chosen["case_id"], chosen["predicted"].astype(int), strict=True))
    names = [spec.name for spec in job.methods]
    return {
        "explanation_version": version,
        "model_version": job.bundle.version,
        "n_cases": len(chosen),
        "check_cases": len(job.checked_ids),
        "ground_truth_available": job.truth is not None,
        "ground_truth_warnings": job.truth_warnings,
        "seconds_per_case": {m: job.seconds[m] / max(1, len(chosen)) for m in names},
        "settings": job.settings(),
        "methods": {spec.name: _method_section(job, spec, labels, predicted) for spec in job.methods},
        "image_method": _image_method_record(job),
    }


def _image_method_record(job: _Job) -> dict[str, Any]:
    """Which method drew the primary image maps, whether it passed, and how it was chosen."""
    name = job.image_method or job.methods[0].name
    choice = job.image_choice
    if choice is None:
        return {
            "name": name,
            "chosen_by": "--image-method",
            "passed": None,
            "any_passed": None,
            "reason": None,
        }
    row = next((c for c in choice.get("candidates") or [] if c.get("method") == name), {})
    ensemble = (job.bundle.card.get("training") or {}).get("ensemble") or {}
    folded = ensemble.get("split") == "folds"
    return {
        "name": name,
        "chosen_by": "rule on the validation split"
        + (
            f" (a fold ensemble: {len(ensemble.get('members') or []) - 1} of its members trained on these cases)"
            if folded
            else ""
        ),
        "passed": choice.get("passed"),
        "any_passed": choice.get("any_passed"),
        "reason": choice.get("reason"),
        "rule": choice.get("rule"),
        "checks": {key: row.get(key) for key in CHECK_KEYS},
    }


def _index(job: _Job, version: str) -> dict[str, Any]:
    names = [spec.name for spec in job.methods]
    return {
        "explanation_version": version,
        "schema_version": EXPLANATION_SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "mmdx_version": __version__,
        "model_version": job.bundle.version,
        "methods": names,
        "primary_method": names[0],
        "image_method": job.image_method or names[0],
        "settings": job.settings(),
        "threshold": job.bundle.threshold,
        "cases": job.entries,
    }


def explain_run(
    run_dir: str | Path,
    cases: Sequence[str] | None = None,
    split: str = "test",
    method: str = "ig",
    limit: int | None = None,
    batch_size: int | None = None,
    internal_batch_size: int | None = None,
    n_steps: int = DEFAULT_STEPS,
    image_baseline: str = "air",
    occlusion_window: int | None = None,
    check_cases: int = 32,
    cohort_dir: str | Path | None = None,
    workers: int = 2,
    seed: int = 0,
    progress: Progress | None = None,
    image_method: str | None = None,
    method_options: dict[str, Any] | None = None,
    choice_cases: int = 16,
) -> ExplainResult:
    """Explain a run's cases and write ``RUN/explanations/``; see the module docs for what is written.

    ``method``: a method's short name (``ig``, ``occlusion``) or ``both``; ``batch_size``: cases per
    attribution call (default 8 for 2D images, 1 for 3D); ``check_cases``: how many of the cases the
    deletion curves and the randomisation test use; ``progress(done, total)`` as cases are explained.
    ``image_method``: the method that draws the primary method's image maps: a method's name, ``auto``
    (chosen by the rule of :mod:`mmdx.explain.selection` on ``choice_cases`` validation cases, reused from
    ``image_method_choice.json`` when the run holds one for this model and these settings), or ``None``
    (the primary method's own). ``method_options``: the methods' own settings (``cam_layer``, ...).
    """
    _check_positive("--batch-size", batch_size)
    _check_positive("--internal-batch-size", internal_batch_size)
    _check_positive("--steps", n_steps)
    run = RunPaths(Path(run_dir))
    run.require("bundle", "predictions")
    bundle = load_bundle(run.bundle)
    methods = methods_for(method)
    chosen = select_cases(run.read_predictions(), cases, split, limit)
    if image_method not in (None, AUTO):
        image_method = resolve_method(image_method)
        if "image" not in EXPLANATION_METHODS.get(image_method).modalities:
            raise MmdxError(
                f"--image-method {image_method} does not attribute the image; choose from "
                f"{', '.join(image_method_choices())}"
            )
    cohort_dir, prepared, position = _prepare(bundle, chosen, cohort_dir, workers)
    image_config = bundle.preprocessing.image_config
    truth_warnings: list[str] = []
    truth = load_truth(cohort_dir, truth_warnings)
    if batch_size is None:
        batch_size = 1 if image_config is not None and image_config.dims == 3 else 8
    predictions = run.read_predictions()
    job = _Job(
        bundle=bundle,
        prepared=prepared,
        position=position,
        methods=methods,
        chosen=chosen,
        n_steps=n_steps,
        image_baseline=image_baseline,
        image_value=air_value(image_config.window) if image_config is not None else 0.0,
        occlusion_window=occlusion_window,
        batch_size=batch_size,
        internal_batch_size=internal_batch_size,
        checked_ids=set(chosen["case_id"][: max(0, check_cases)]),
        truth=truth,
        truth_warnings=truth_warnings,
        cohort_dir=cohort_dir,
        seed=seed,
        kept={m.name: [] for m in methods},
        scores={m.name: {} for m in methods},
        seconds={m.name: 0.0 for m in methods},
        method_options=dict(method_options or {}),
    )
    if (
        image_method in (AUTO, "gradient_shap")
        or any(m.name == "gradient_shap" for m in methods)
        or job.method_options.get("tabular_baseline") == "training"
    ):
        job.references = _references(job, predictions)
    if job.method_options.get("tabular_baseline") == "training" and (
        job.references is None or job.references.tabular_reference is None
    ):
        log.warning(
            "--tabular-baseline training: predictions.parquet has no training case with values; the values are "
            "explained against the training median"
        )
        job.method_options.pop("tabular_baseline")
    if image_method == AUTO:
        job.image_choice = _choose_image_method(job, run, predictions, choice_cases)
        image_method = job.image_choice["chosen"] if job.image_choice else None
    job.image_method = image_method
    version = explanation_version(bundle.version, [m.name for m in methods], job.settings())
    writer = run.explanation_writer()
    try:
        ids = list(chosen["case_id"])
        for start in range(0, len(ids), batch_size):
            _explain_batch(job, writer, ids[start : start + batch_size], version)
            if progress is not None:
                progress(min(start + batch_size, len(ids)), len(ids))
        summary = _summary(job, version)
        writer.commit(_index(job, version), summary)
    except BaseException:
        writer.abort()
        raise
    return ExplainResult(run, summary)


def _references(job: _Job, predictions: pd.DataFrame) -> Baselines | None:
    """GradientShap's baseline distribution: up to :data:`REFERENCE_CASES` training-split cases with an
    image (seeded); ``None`` when the split has none."""
    train = [c for c in predictions.loc[predictions["split"] == "train", "case_id"] if c in job.position]
    if not train:
        return None
    import numpy as np

    rng = np.random.default_rng(job.seed)
    picked = [train[i] for i in sorted(rng.permutation(len(train))[: 2 * REFERENCE_CASES])]
    inputs = cohort_explain_inputs(job.bundle, job.prepared, [job.position[c] for c in picked])
    with_image = inputs.presence[:, 0].cpu().numpy().astype(bool)
    rows = [i for i in range(len(picked)) if with_image[i]][:REFERENCE_CASES]
    image = inputs.image[rows] if inputs.image is not None and rows else None
    tabular = inputs.tabular[:REFERENCE_CASES] if inputs.tabular is not None else None
    return Baselines(image_reference=image, tabular_reference=tabular)


def _choice_case_ids(job: _Job, predictions: pd.DataFrame, choice_cases: int) -> list[str]:
    """Validation cases for the choice: lesion cases first (true positives first) when the cohort has ground
    truth, then the others, up to ``choice_cases``."""
    val = predictions[predictions["split"] == "val"]
    ids = [c for c in val["case_id"] if c in job.position]
    if job.truth is not None:
        label = dict(zip(val["case_id"], val["label"], strict=True))
        predicted = dict(zip(val["case_id"], val["predicted"], strict=True))

        def rank(case_id: str) -> int:
            record = job.truth.get(case_id) or {}
            lesion = bool(record.get("lesion"))
            positive = label.get(case_id) == 1 and predicted.get(case_id) == 1
            return 0 if lesion and positive else 1 if lesion else 2

        ids = sorted(ids, key=rank)
    return ids[: max(0, choice_cases)]


def _choose_image_method(
    job: _Job, run: RunPaths, predictions: pd.DataFrame, choice_cases: int
) -> dict | None:
    """Apply the documented rule (:mod:`mmdx.explain.selection`) on validation cases; reuse the run's
    recorded choice when it was made by this rule for this model version and these settings."""
    candidates = [spec for spec in EXPLANATION_METHODS if "image" in spec.modalities]
    settings = {
        **job.settings(),
        "image_method": AUTO,
        "choice_cases": choice_cases,
        "candidates": [spec.name for spec in candidates],
        "cam_layer": _cam_layer(job),
    }
    recorded = run.read_image_method_choice()
    if (
        recorded
        and recorded.get("model_version") == job.bundle.version
        and recorded.get("settings") == _json_like(settings)
        and recorded.get("rule") == RULE
        and recorded.get("chosen") in EXPLANATION_METHODS.names()
    ):
        return recorded
    ids = _choice_case_ids(job, predictions, choice_cases)
    if not ids:
        log.warning(
            "--image-method auto: predictions.parquet has no validation case to apply the rule on; the primary "
            "method draws the image maps (run 'mmdx evaluate RUN' on the training cohort, or name a method)"
        )
        return None
    rows = predictions.set_index("case_id").loc[ids]
    labels = {c: _label(v) for c, v in rows["label"].items()}
    predicted = {c: int(v) for c, v in rows["predicted"].items()}
    measured = [_measure(job, spec, ids, labels, predicted) for spec in candidates]
    choice = {
        **choose_image_method(measured),
        "model_version": job.bundle.version,
        "settings": _json_like(settings),
        "case_ids": ids,
        "ground_truth": job.truth is not None,
    }
    run.write_image_method_choice(choice)
    return choice


def _cam_layer(job: _Job) -> dict[str, str] | None:
    """The stage(s) each class-activation map reads for this model and these options."""
    from mmdx.explain.image_methods import CAM_VARIANTS, cam_layer_names, multiscale_cam_layers

    if "image" not in job.bundle.model.modalities:
        return None
    model, chosen = job.bundle.model, job.method_options.get("cam_layer")
    stages = {v: "+".join(cam_layer_names(model, chosen, v)) for v in CAM_VARIANTS}
    return {**stages, "multiscale_cam": "+".join(multiscale_cam_layers(model, chosen))}


def _json_like(value: Any) -> Any:
    import json

    from mmdx.metrics import json_ready

    return json.loads(json.dumps(json_ready(value)))


def _measure(job: _Job, spec: ExplanationMethod, ids: list[str], labels: dict, predicted: dict):
    """One candidate's randomisation, anatomy and ground-truth scores on the validation cases ``ids``."""
    explanations = []
    scores: dict[str, dict] = {}
    seconds = 0.0
    model = job.bundle.model
    for start in range(0, len(ids), job.batch_size):
        inputs, baselines = job.inputs_and_baselines(ids[start : start + job.batch_size])
        began = time.perf_counter()
        batch = explain(model, inputs, baselines, method=spec.name, target=TARGET, **job.explain_kwargs())
        seconds += time.perf_counter() - began
        for explanation in batch:
            if job.truth is not None and explanation.case_id in job.truth:
                scores[explanation.case_id] = case_scores(
                    explanation, job.truth[explanation.case_id], job.cohort_dir
                )
            explanations.append(replace(explanation, image_original=None))
    inputs, baselines = job.inputs_and_baselines(ids)
    randomised = randomisation_check(
        model,
        inputs,
        explanations,
        baselines,
        seed=job.seed,
        batch_size=job.batch_size,
        **job.explain_kwargs(),
    )
    truth = summarise_scores(scores, labels, predicted) if job.truth is not None else None
    return measurement_from_sections(spec.name, randomised.summary(), truth, len(ids), seconds / len(ids))
