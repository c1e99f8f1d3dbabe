"""Image attribution methods side by side on true-positive lesion cases: localisation, sanity, cost.

Run from the repository root (one PyTorch thread; a run evaluated on the cohort to score)::

    .venv/bin/python -m benchmarks.image_attribution RUN --cohort DIR --split all --limit 80 \\
        --methods ig gradcam@stage0 gradcam@stage1 gradcam@stage2 layercam gradcam_pp smoothgrad_sq \\
        gradient_shap gaussian_occlusion --json out.json

``RUN`` holds a bundle and ``predictions.parquet`` for ``--cohort`` (``mmdx evaluate RUN --cohort DIR``); a
larger cohort from the same generator gives more lesion cases than a training cohort's test split. Every
method (``name`` or ``name@stage`` for the Grad-CAM family; ``+`` joins stages; ``:blur`` after it for a
blurred-image baseline instead of air) explains the same
true-positive lesion cases (label 1, predicted positive at the bundle's threshold, a planted lesion). Per
case: mass of the positive attribution inside the lesion and its lift over the lesion's share of the image,
the pointing game (one model voxel of tolerance), and on the first ``--check-cases`` cases the
model-randomisation Spearman (absolute and signed), the anatomy score (Spearman of ``|map|`` with the input
intensity) for the trained and the randomised model, and the image deletion AUC against random order.
Means come with 95% percentile-bootstrap intervals over cases (1,000 resamples, seed 0); the difference to
the first method is paired. ``--text-tabular`` adds the note and value scores of the methods that
attribute them (``ig``, and ``ig_expected`` for Integrated Gradients over training baselines of the values).
Seconds per case count the attribution call only (batches of ``--batch-size``), not the checks.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmdx.bundle import load_bundle
from mmdx.data.dataset import ImageCache, MultimodalDataset, build_case_table
from mmdx.data.plan import declared_modality, plan_cohort_images
from mmdx.data.validation import validate_cohort
from mmdx.explain.attribution import explain, resolve_method
from mmdx.explain.faithfulness import bootstrap_mean, deletion_curves, randomisation_check
from mmdx.explain.inputs import IMAGE_BASELINES, Baselines, air_value, cohort_explain_inputs, make_baselines
from mmdx.explain.truth import case_scores, load_truth
from mmdx.predict import CohortInputs
from mmdx.run import RunPaths


def paired_difference(a: list[float | None], b: list[float | None], seed: int = 0) -> dict[str, Any]:
    """Mean of ``a - b`` over the cases both have, with a paired 95% bootstrap interval."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    return bootstrap_mean([x - y for x, y in pairs], seed)


def parse_method(text: str) -> tuple[str, str, dict[str, Any]]:
    """``gradcam@stage0`` -> (label, method name, options); ``:blur`` after a method (``gaussian_occlusion:blur``)
    explains against a Gaussian-blurred copy of the image instead of air (``image_baseline``)."""
    spec, _, baseline = text.partition(":")
    if baseline and baseline not in IMAGE_BASELINES:
        raise SystemExit(f"{text}: the image baseline after ':' is one of {', '.join(IMAGE_BASELINES)}")
    extra = {"image_baseline": baseline} if baseline else {}
    name, _, layer = spec.partition("@")
    if name == "ig_expected":
        return text, "integrated_gradients", {"tabular_baseline": "training", **extra}
    options = {"cam_layer": layer} if layer else {}
    return text, resolve_method(name), {**options, **extra}


def select_cases(
    run: RunPaths, truth: dict, split: str, limit: int | None, every: bool = False, skip: int = 0
) -> list[str]:
    """The cases to explain, in the predictions' order: after the first ``skip`` eligible ones, ``limit``."""
    predictions = run.read_predictions()
    if split != "all":
        predictions = predictions[predictions["split"] == split]
    if every:
        chosen = [c for c in predictions["case_id"] if c in truth][skip:]
        return chosen[:limit] if limit else chosen
    chosen = [
        c
        for c, label, predicted in zip(
            predictions["case_id"], predictions["label"], predictions["predicted"], strict=True
        )
        if label == 1 and int(predicted) == 1 and (truth.get(c) or {}).get("lesion")
    ][skip:]
    return chosen[:limit] if limit else chosen


def prepare_lazily(bundle, cohort_dir: Path) -> CohortInputs:
    """:func:`mmdx.predict.prepare_inputs` without warming an image cache: only the explained cases' images
    are read and resampled (the run's predictions already cover the cohort; images are not re-checked)."""
    cohort = validate_cohort(cohort_dir, workers=1, check_images=False)
    plan = bundle.image_plan
    if plan is not None:
        plan_cohort_images(cohort, plan=plan)
    table = build_case_table(cohort, bundle.preprocessing)
    cache = None if plan is None else ImageCache(plan, "none", None, declared_modality(cohort))
    return CohortInputs(cohort, table, MultimodalDataset(table, bundle.preprocessing, cache), cache)


def training_references(run: RunPaths, bundle, prepared, position: dict, n: int = 16) -> Baselines:
    predictions = run.read_predictions()
    train = [c for c in predictions.loc[predictions["split"] == "train", "case_id"] if c in position]
    picked = [train[i] for i in sorted(np.random.default_rng(0).permutation(len(train))[: 2 * n])]
    inputs = cohort_explain_inputs(bundle, prepared, [position[c] for c in picked])
    rows = [i for i in range(len(picked)) if bool(inputs.presence[i, 0])][:n]
    return Baselines(image_reference=inputs.image[rows], tabular_reference=inputs.tabular[:n])


def _hit(text: dict, status: str, key: str) -> float | None:
    """``text[status][key]`` of :func:`mmdx.explain.truth.text_scores` as 0/1, ``None`` where not scored."""
    value = (text.get(status) or {}).get(key)
    return None if value is None else float(value)


def _case_rows(explanations, truth, cohort_dir) -> list[dict[str, Any]]:
    rows = []
    for e in explanations:
        scores = case_scores(e, truth[e.case_id], cohort_dir)
        image = scores["image"] or {}
        text = scores["text"] or {}
        tab = scores["tabular"] or {}
        rows.append(
            {
                "case_id": e.case_id,
                "mass": image.get("mass_share"),
                "chance": image.get("chance"),
                "lift": image.get("lift"),
                "pointing": None if "pointing_hit" not in image else float(image["pointing_hit"]),
                "tabular_auc": tab.get("ranking_auc"),
                **{
                    f"{prefix}_{status}": _hit(text, status, key)
                    for prefix, key in (
                        ("text", "hit"),
                        ("phrase", "phrase_hit"),
                        ("signed_phrase", "signed_phrase_hit"),
                    )
                    for status in ("affirmed", "negated")
                },
                "phrase_chance_affirmed": (text.get("affirmed") or {}).get("phrase_chance"),
                **{f"quality_{k}": v for k, v in e.quality.items()},
            }
        )
    return rows


def run_method(label, name, options, context, ids) -> dict[str, Any]:
    bundle, prepared, position, truth, cohort_dir, references, args = context
    model, temperature = bundle.model, float(bundle.calibration.temperature_)
    offset = float(bundle.calibration.offset_)
    air = air_value(bundle.preprocessing.image_config.window)
    image_baseline = options.get("image_baseline", "air")
    kwargs = {
        "temperature": temperature,
        "offset": offset,
        "n_steps": args.steps,
        "method_options": {"seed": 0, **{k: v for k, v in options.items() if k != "image_baseline"}},
    }
    seconds, explanations = 0.0, []
    for start in range(0, len(ids), args.batch_size):
        chunk = ids[start : start + args.batch_size]
        inputs = cohort_explain_inputs(bundle, prepared, [position[c] for c in chunk])
        baselines = replace(
            make_baselines(inputs, image=image_baseline, image_value=air),
            image_reference=references.image_reference,
            tabular_reference=references.tabular_reference,
        )
        began = time.perf_counter()
        explanations += explain(model, inputs, baselines, method=name, **kwargs)
        seconds += time.perf_counter() - began
    rows = _case_rows(explanations, truth, cohort_dir)
    checked = ids[: args.check_cases]
    inputs = cohort_explain_inputs(bundle, prepared, [position[c] for c in checked])
    baselines = replace(
        make_baselines(inputs, image=image_baseline, image_value=air),
        image_reference=references.image_reference,
        tabular_reference=references.tabular_reference,
    )
    kept = [replace(e, image_original=None) for e in explanations[: len(checked)]]
    randomised = randomisation_check(
        model, inputs, kept, baselines, seed=0, batch_size=args.batch_size, **kwargs
    )
    curves = deletion_curves(model, inputs, kept, baselines, temperature=temperature, offset=offset, seed=0)
    ours, chance = curves["image"].auc()
    out = {
        "label": label,
        "method": name,
        "options": options,
        "n_cases": len(ids),
        "n_checked": len(checked),
        "seconds_per_case": seconds / max(1, len(ids)),
        "mass": bootstrap_mean([r["mass"] for r in rows]),
        "chance": bootstrap_mean([r["chance"] for r in rows]),
        "lift": bootstrap_mean([r["lift"] for r in rows]),
        "pointing": bootstrap_mean([r["pointing"] for r in rows]),
        "randomisation_abs": bootstrap_mean(randomised.absolute["image"]),
        "randomisation_signed": bootstrap_mean(randomised.signed["image"]),
        "anatomy_trained": bootstrap_mean(randomised.anatomy_trained),
        "anatomy_randomised": bootstrap_mean(randomised.anatomy_randomised),
        "anatomy_drop": paired_difference(randomised.anatomy_trained, randomised.anatomy_randomised)
        if len(randomised.anatomy_trained) == len(randomised.anatomy_randomised)
        else None,
        "deletion_auc": bootstrap_mean(list(ours)),
        "deletion_auc_random": bootstrap_mean(list(chance)),
        "deletion_random_minus_ours": paired_difference(list(chance), list(ours)),
        "tabular_auc": bootstrap_mean([r["tabular_auc"] for r in rows]),
        "text_affirmed": bootstrap_mean([r["text_affirmed"] for r in rows]),
        "phrase_affirmed": bootstrap_mean([r["phrase_affirmed"] for r in rows]),
        "text_negated": bootstrap_mean([r["text_negated"] for r in rows]),
        "phrase_negated": bootstrap_mean([r["phrase_negated"] for r in rows]),
        "signed_phrase_affirmed": bootstrap_mean([r["signed_phrase_affirmed"] for r in rows]),
        "signed_phrase_negated": bootstrap_mean([r["signed_phrase_negated"] for r in rows]),
        "phrase_chance_affirmed": bootstrap_mean([r["phrase_chance_affirmed"] for r in rows]),
        "rows": rows,
    }
    for key in {k for r in rows for k in r if k.startswith("quality_")}:
        out[key] = bootstrap_mean([r.get(key) for r in rows])
    return out


def _fmt(cell: dict | None, digits: int = 3) -> str:
    if not cell or cell.get("mean") is None:
        return "n/a"
    return f"{cell['mean']:.{digits}f} [{cell['low']:.{digits}f}, {cell['high']:.{digits}f}]"


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        ("mass in lesion", "mass"),
        ("chance (lesion share)", "chance"),
        ("lift over chance", "lift"),
        ("pointing game", "pointing"),
        ("randomisation \\|Spearman\\|", "randomisation_abs"),
        ("randomisation signed Spearman", "randomisation_signed"),
        ("anatomy score, trained", "anatomy_trained"),
        ("anatomy score, randomised", "anatomy_randomised"),
        ("deletion AUC image (random − ours)", "deletion_random_minus_ours"),
        ("difference in pointing to the first method", "pointing_vs_first"),
        ("difference in mass to the first method", "mass_vs_first"),
        ("tabular: causal-feature ranking AUC", "tabular_auc"),
        ("text: top word in an affirmed planted sentence", "text_affirmed"),
        ("text: top phrase is an affirmed planted sentence", "phrase_affirmed"),
        ("text: top word in a negated planted sentence", "text_negated"),
        ("text: top phrase is a negated planted sentence", "phrase_negated"),
        ("text: most positive phrase is an affirmed planted sentence", "signed_phrase_affirmed"),
        ("text: most negative phrase is a negated planted sentence", "signed_phrase_negated"),
    ]
    head = "| score | " + " | ".join(r["label"] for r in results) + " |"
    lines = [head, "|---" * (len(results) + 1) + "|"]
    for title, key in rows:
        lines.append(f"| {title} | " + " | ".join(_fmt(r.get(key)) for r in results) + " |")
    lines.append(
        "| n cases (checks) | " + " | ".join(f"{r['n_cases']} ({r['n_checked']})" for r in results) + " |"
    )
    lines.append("| s per case | " + " | ".join(f"{r['seconds_per_case']:.2f}" for r in results) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run")
    parser.add_argument("--cohort", help="cohort of the run's predictions (default: the training cohort)")
    parser.add_argument("--split", default="all")
    parser.add_argument("--limit", type=int, default=80)
    parser.add_argument(
        "--skip", type=int, default=0, help="leave out the first N eligible cases (score the next --limit)"
    )
    parser.add_argument("--check-cases", type=int, default=30)
    parser.add_argument("--methods", nargs="+", default=["ig", "gradcam", "layercam"])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    parser.add_argument(
        "--every-case",
        action="store_true",
        help="every case of the split, not only true-positive lesion cases",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    run = RunPaths(Path(args.run))
    bundle = load_bundle(run.bundle)
    cohort_dir = Path(args.cohort or bundle.card["cohort"]["path"])
    truth = load_truth(cohort_dir) or {}
    ids = select_cases(run, truth, args.split, args.limit, args.every_case, args.skip)
    prepared = prepare_lazily(bundle, cohort_dir)
    position = {c: i for i, c in enumerate(prepared.table.case_ids)}
    ids = [c for c in ids if c in position]
    # the images the evaluation could not read count as absent (validation's image checks are skipped here)
    predictions = run.read_predictions()
    for case_id in predictions.loc[~predictions["has_image"].astype(bool), "case_id"]:
        if case_id in position:
            prepared.table.presence[position[case_id], 0] = False
    references = training_references(run, bundle, prepared, position)
    context = (bundle, prepared, position, truth, cohort_dir, references, args)
    kind = "cases" if args.every_case else "true-positive lesion cases"
    print(f"{len(ids)} {kind} of {cohort_dir} ({args.split})", flush=True)
    results = []
    for text in args.methods:
        label, name, options = parse_method(text)
        result = run_method(label, name, options, context, ids)
        if results:
            first = results[0]["rows"]
            for key in ("pointing", "mass"):
                result[f"{key}_vs_first"] = paired_difference(
                    [r[key] for r in result["rows"]], [r[key] for r in first]
                )
        results.append(result)
        print(
            f"{label}: pointing {_fmt(result['pointing'])} mass {_fmt(result['mass'])} lift {_fmt(result['lift'], 1)} "
            f"rand {_fmt(result['randomisation_abs'])} anatomy {_fmt(result['anatomy_trained'])} -> "
            f"{_fmt(result['anatomy_randomised'])} {result['seconds_per_case']:.2f} s/case",
            flush=True,
        )
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
