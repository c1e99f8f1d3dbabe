"""``mmdx explain``: attributions per modality for a run's cases, with faithfulness and sanity checks."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from mmdx import __version__
from mmdx.bundle import load_bundle
from mmdx.errors import MmdxError, did_you_mean
from mmdx.explain.artifacts import (
    EXPLANATION_SCHEMA_VERSION,
    ExplanationWriter,
    explanation_version,
    write_case,
)
from mmdx.explain.attribution import DEFAULT_STEPS, CaseExplanation, explain, resolve_method
from mmdx.explain.faithfulness import convergence_summary, deletion_curves, randomisation_check
from mmdx.explain.inputs import air_value, cohort_explain_inputs, make_baselines
from mmdx.explain.shapley import modality_shapley
from mmdx.explain.truth import case_scores, load_truth, summarise_scores
from mmdx.predict import prepare_inputs
from mmdx.run import RunPaths

HELP = """\
Explain a run's predictions and write RUN/explanations/: for every selected case an image attribution map
on the original image grid (NIfTI, same affine as the image, so any viewer overlays it) and on the model's
grid (.npy), and explanation.json with an attribution per tabular feature (raw value, unit, reference range),
per note word (character spans into the note), a total per modality, exact modality Shapley values and the
Integrated Gradients convergence delta; index.json lists the cases, summary.json holds the checks: deletion
curves against random removal, the model-randomisation test, the convergence deltas and, on synthetic
cohorts, scores against the planted ground truth.

The explained output is the calibrated logit (logit / temperature) of the positive class. Baselines: air for
the image (or --image-baseline blur), the training median for tabular values (missing indicators unchanged),
[PAD] for every note token but [CLS]/[SEP]. Needs predictions.parquet (run 'mmdx evaluate RUN' first).
"""

METHOD_CHOICES = {
    "ig": ["integrated_gradients"],
    "occlusion": ["occlusion"],
    "both": ["integrated_gradients", "occlusion"],
}
SUFFIX = {"integrated_gradients": "", "occlusion": "_occlusion"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "explain",
        help="attributions per modality, Shapley values and sanity checks",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run directory (from mmdx train, with mmdx evaluate done)")
    p.add_argument(
        "--cases", nargs="+", metavar="ID", help="case ids to explain (default: the split's cases)"
    )
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"], help="default: test")
    p.add_argument("--method", default="ig", choices=list(METHOD_CHOICES), help="default: ig")
    p.add_argument("--limit", type=int, help="explain at most N cases (in predictions order)")
    p.add_argument(
        "--batch-size", type=int, help="cases per attribution call (default 8 for 2D images, 1 for 3D)"
    )
    p.add_argument(
        "--internal-batch-size",
        type=int,
        help="inputs per forward pass inside Integrated Gradients / occlusion (default: sized to the image "
        "grid, e.g. 8 for 64^3 volumes; lower it if a 3D case does not fit in memory)",
    )
    p.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help=f"integration steps (default {DEFAULT_STEPS})"
    )
    p.add_argument("--image-baseline", default="air", choices=["air", "blur"], help="default: air")
    p.add_argument(
        "--occlusion-window", type=int, help="occlusion patch side in model voxels (default: side/8)"
    )
    p.add_argument(
        "--check-cases",
        type=int,
        default=32,
        help="cases used for the deletion curves and the randomisation test (default 32; 0 skips them)",
    )
    p.add_argument("--cohort", help="cohort directory (default: the one the run was trained on)")
    p.add_argument("--workers", type=int, default=2, help="processes decoding images (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random orders and the randomised model")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


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
    progress: bool = True,
) -> dict:
    """Explain a run's cases and write ``RUN/explanations/``; returns the summary document."""
    _check_positive("--batch-size", batch_size)
    _check_positive("--internal-batch-size", internal_batch_size)
    _check_positive("--steps", n_steps)
    run = RunPaths(Path(run_dir))
    run.require("bundle", "predictions")
    bundle = load_bundle(run.bundle)
    methods = [resolve_method(m) for m in METHOD_CHOICES.get(method, [method])]
    predictions = pd.read_parquet(run.predictions)
    chosen = select_cases(predictions, cases, split, limit)
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

    model = bundle.model
    temperature = float(bundle.calibration.temperature_)
    image_config = bundle.preprocessing.image_config
    image_value = air_value(image_config.window) if image_config is not None else 0.0
    if batch_size is None:
        batch_size = 1 if image_config is not None and image_config.dims == 3 else 8
    settings = {
        "n_steps": n_steps,
        "integration": "gausslegendre",
        "image_baseline": image_baseline,
        "occlusion_window": occlusion_window,
        "target": "positive",
        "output": "calibrated logit",
        "temperature": temperature,
        "merge_words": True,
    }
    version = explanation_version(bundle.version, methods, settings)
    rows = chosen.set_index("case_id")
    truth_warnings: list[str] = []
    truth = load_truth(cohort_dir, truth_warnings)
    checked_ids = set(chosen["case_id"][: max(0, check_cases)])
    # what the checks need after the loop: the checked cases' model-grid maps, every case's delta and scores
    kept: dict[str, list[CaseExplanation]] = {m: [] for m in methods}
    scores: dict[str, dict[str, dict]] = {m: {} for m in methods}
    seconds = dict.fromkeys(methods, 0.0)
    entries = []
    writer = ExplanationWriter(run.explanations)
    try:
        ids = list(chosen["case_id"])
        with tqdm(total=len(ids), desc="explaining", unit="case", disable=None if progress else True) as bar:
            for start in range(0, len(ids), batch_size):
                batch_ids = ids[start : start + batch_size]
                inputs = cohort_explain_inputs(bundle, prepared, [position[c] for c in batch_ids])
                baselines = make_baselines(inputs, image=image_baseline, image_value=image_value)
                shapley = modality_shapley(model, inputs.batch, temperature=temperature)
                files: dict[str, dict] = {c: {} for c in batch_ids}
                for name in methods:
                    began = time.perf_counter()
                    explanations = explain(
                        model,
                        inputs,
                        baselines,
                        method=name,
                        n_steps=n_steps,
                        internal_batch_size=internal_batch_size,
                        temperature=temperature,
                        occlusion_window=occlusion_window,
                    )
                    seconds[name] += time.perf_counter() - began
                    for i, explanation in enumerate(explanations):
                        case_id = explanation.case_id
                        folder = writer.case_folder(case_id)
                        extra = _case_fields(rows.loc[case_id], bundle.threshold)
                        files[case_id][name] = write_case(
                            folder, explanation, shapley.case_dict(i), extra, version, SUFFIX[name]
                        )
                        if truth is not None and case_id in truth:
                            scores[name][case_id] = case_scores(explanation, truth[case_id], cohort_dir)
                        kept[name].append(
                            replace(
                                explanation,
                                image_original=None,
                                image_map=explanation.image_map if case_id in checked_ids else None,
                            )
                        )
                for case_id in batch_ids:
                    entries.append(
                        {
                            "case_id": case_id,
                            "folder": writer.case_folder(case_id).name,
                            **_case_fields(rows.loc[case_id], bundle.threshold),
                            "probability": float(rows.loc[case_id, "probability"]),
                            "files": files[case_id],
                        }
                    )
                bar.update(len(batch_ids))

        labels = {c: _label(v) for c, v in zip(chosen["case_id"], chosen["label"], strict=True)}
        predicted = dict(zip(chosen["case_id"], chosen["predicted"].astype(int), strict=True))
        summary: dict = {
            "explanation_version": version,
            "model_version": bundle.version,
            "n_cases": len(chosen),
            "check_cases": len(checked_ids),
            "ground_truth_available": truth is not None,
            "ground_truth_warnings": truth_warnings,
            "seconds_per_case": {m: seconds[m] / max(1, len(chosen)) for m in methods},
            "settings": settings,
            "methods": {},
        }
        for name in methods:
            section: dict = {}
            if name == "integrated_gradients":
                section["convergence_delta"] = convergence_summary(kept[name])
            if truth is not None:
                section["ground_truth"] = summarise_scores(scores[name], labels, predicted)
            checked = [e for e in kept[name] if e.case_id in checked_ids]
            if checked:
                inputs = cohort_explain_inputs(bundle, prepared, [position[e.case_id] for e in checked])
                baselines = make_baselines(inputs, image=image_baseline, image_value=image_value)
                curves = deletion_curves(
                    model, inputs, checked, baselines, temperature=temperature, seed=seed
                )
                randomised = randomisation_check(
                    model,
                    inputs,
                    checked,
                    baselines,
                    seed=seed,
                    batch_size=batch_size,
                    n_steps=n_steps,
                    internal_batch_size=internal_batch_size,
                    temperature=temperature,
                    occlusion_window=occlusion_window,
                )
                section["deletion"] = {m: c.summary() for m, c in curves.items()}
                section["randomisation"] = randomised.summary()
            summary["methods"][name] = section
        index = {
            "explanation_version": version,
            "schema_version": EXPLANATION_SCHEMA_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "mmdx_version": __version__,
            "model_version": bundle.version,
            "methods": methods,
            "primary_method": methods[0],
            "settings": settings,
            "threshold": bundle.threshold,
            "cases": entries,
        }
        writer.commit(index, summary)
    except BaseException:
        writer.abort()
        raise
    return summary


def _label(value) -> int | None:
    return None if pd.isna(value) else int(value)


def _case_fields(row: pd.Series, threshold: float) -> dict:
    """Fields of a case taken from predictions.parquet, written next to its attributions."""
    return {
        "split": str(row["split"]),
        "label": _label(row["label"]),
        "predicted": int(row["predicted"]),
        "threshold": threshold,
        "modalities": str(row.get("modalities", "")),
    }


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run(args: argparse.Namespace) -> int:
    summary = explain_run(
        args.run,
        cases=args.cases,
        split=args.split,
        method=args.method,
        limit=args.limit,
        batch_size=args.batch_size,
        internal_batch_size=args.internal_batch_size,
        n_steps=args.steps,
        image_baseline=args.image_baseline,
        occlusion_window=args.occlusion_window,
        check_cases=args.check_cases,
        cohort_dir=args.cohort,
        workers=args.workers,
        seed=args.seed,
        progress=not args.quiet,
    )
    paths = RunPaths(Path(args.run))
    print(
        f"explanations: {paths.explanations}  ({summary['n_cases']} cases, "
        f"version {summary['explanation_version']})"
    )
    for name, section in summary["methods"].items():
        print(f"  {name}: {summary['seconds_per_case'][name]:.2f} s per case")
        delta = section.get("convergence_delta", {})
        if delta.get("n_cases"):
            print(f"    convergence |delta|: median {delta['abs_median']:.2e}, max {delta['abs_max']:.2e}")
        for modality, curve in section.get("deletion", {}).items():
            if curve.get("n_cases"):
                print(
                    f"    deletion AUC {modality:8s} attribution {curve['auc_attribution']:.3f}  "
                    f"random {curve['auc_random']:.3f}  (n={curve['n_cases']})"
                )
        randomised = section.get("randomisation", {})
        for modality in ("image", "tabular", "text"):
            value = randomised.get(modality, {})
            if value.get("n_cases"):
                print(
                    f"    randomised-model Spearman |attr| {modality:8s} {_fmt(value['spearman_abs_mean'])}"
                )
        truth = section.get("ground_truth")
        if truth:
            lesion = truth["image"]["lesion_cases"]
            print(
                f"    truth: lesion mass {_fmt(lesion['mass_share_in_lesion'])} (chance "
                f"{_fmt(lesion['mass_share_chance'])}), pointing {_fmt(lesion['pointing_game'])}; "
                "tabular AUC "
                f"{_fmt(truth['tabular']['ranking_auc_causal_vs_noncausal'])}; text top word in affirmed "
                f"{_fmt(truth['text']['affirmed']['top_word_in_phrase'])}, negated "
                f"{_fmt(truth['text']['negated']['top_word_in_phrase'])}"
            )
    return 0
