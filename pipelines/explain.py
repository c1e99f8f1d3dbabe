"""``mmdx explain``: attributions per modality for a run's cases, with faithfulness and sanity checks.

The workflow is :func:`mmdx.workflows.explain.explain_run`; this module parses the arguments and prints.
"""

from __future__ import annotations

import argparse

HELP = """\
Explain a run's predictions and write RUN/explanations/: for every selected case an image attribution map
on the original image grid (NIfTI, same affine as the image, so any viewer overlays it) and on the model's
grid (.npy), and explanation.json with an attribution per tabular feature (raw value, unit, reference range),
per note word (character spans into the note), a total per modality, exact modality Shapley values and the
Integrated Gradients convergence delta; index.json lists the cases, summary.json holds the checks: deletion
curves against random removal, the model-randomisation test, the convergence deltas and, on synthetic
cohorts, scores against the planted ground truth.

The explained output is the calibrated logit (logit / temperature) of the positive class. Baselines: air for
the image (or --image-baseline blur), for tabular values 16 training cases (expected gradients; the
training median with --tabular-baseline median; missing indicators unchanged), [PAD] for every note token
but [CLS]/[SEP]. Needs predictions.parquet (run 'mmdx evaluate RUN' first).

The image map of the primary method is drawn by --image-method. 'auto' (the default) measures every image
method on validation cases and takes, among those that pass the model-randomisation test, the one with the
best pointing game and lesion mass (see mmdx.explain.selection); the choice, with every candidate's
numbers, is kept in RUN/image_method_choice.json and reused while model and settings stay the same. When
no method passes, the choice says so, and so do the audit report and the dashboard.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from mmdx.explain.attribution import DEFAULT_STEPS
    from mmdx.workflows.explain import image_method_choices, method_choices

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
    p.add_argument("--method", default="ig", choices=method_choices(), help="default: ig")
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
    p.add_argument(
        "--image-method",
        default="auto",
        choices=image_method_choices(),
        help="the method that draws the image maps of the primary method (default auto: see above)",
    )
    p.add_argument(
        "--cam-layer",
        help="Grad-CAM family: the image encoder's stage(s) to read, e.g. stage1 or stage0+stage1 "
        "(averaged; multiscale_cam multiplies them, finest first) (default: the encoder's own choice)",
    )
    p.add_argument(
        "--tabular-baseline",
        default="training",
        choices=["median", "training"],
        help="Integrated Gradients' reference for the values: the training cases themselves (default: expected "
        "gradients over 16 cases of the training split, which rank the causal values better; see BENCHMARKS.md) "
        "or the training median",
    )
    p.add_argument(
        "--choice-cases", type=int, default=16, help="validation cases that --image-method auto measures"
    )


def _method_options(args: argparse.Namespace) -> dict:
    options = {}
    if args.cam_layer:
        options["cam_layer"] = args.cam_layer
    if args.tabular_baseline == "training":
        options["tabular_baseline"] = "training"
    return options


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mmdx.workflows.explain import explain_run

    with tqdm(desc="explaining", unit="case", disable=True if args.quiet else None) as bar:
        result = explain_run(
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
            image_method=args.image_method,
            method_options=_method_options(args),
            choice_cases=args.choice_cases,
            progress=lambda done, total: (setattr(bar, "total", total), bar.update(done - bar.n)),
        )
    summary = result.summary
    print(f"explanations: {result.run.explanations}  ({result.n_cases} cases, version {result.version})")
    drawn = summary.get("image_method") or {}
    if drawn.get("reason"):
        print(f"  image maps: {drawn['name']} ({drawn['reason']})")
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
