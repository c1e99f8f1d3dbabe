"""``mmdx evaluate``: predictions for every case of the cohort, and metrics per split and per modality pattern.

The workflow is :func:`mmdx.workflows.evaluate.evaluate_run`; this module parses the arguments and prints.
"""

from __future__ import annotations

import argparse

HELP = """\
Predict every usable case of the cohort with the run's bundle and write RUN/predictions.parquet (case_id,
split, label, calibrated probability, per-modality gate values and presence) and RUN/metrics.json: AUROC,
AUPRC, Brier, ECE and sensitivity/specificity/PPV/NPV at the operating threshold for each split and for
each modality-presence pattern of the test split, calibration before and after the bundle's calibration, and the
test AUROC with each modality removed at test time. The cohort defaults to the one the run was trained on.

External validation: with --name SITE the cohort is another site's, and everything is written under
RUN/external/SITE/ (the run's own files are left untouched): predictions, metrics with bootstrap intervals,
the drift report against the training summary stored in the bundle (prevalence, per-feature distributions
within each class with Holm's correction, missingness, presence patterns, units, notes, images; a domain
classifier when the training cohort is at hand), and the effect of local recalibration (prevalence adjustment without labels; with --local-sample N labelled cases also
recalibration-in-the-large, logistic recalibration and, recommended, the closed testing procedure that keeps the
simplest of these the sample's likelihood-ratio tests do not reject). The chosen recalibration is saved as a new
versioned artefact in RUN/calibrations/SITE-v<k>/, which 'mmdx predict --calibration' applies.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="predict a cohort and compute metrics", description=HELP)
    p.add_argument("run", help="run directory (from mmdx train)")
    p.add_argument("--cohort", help="cohort directory (default: the cohort the run was trained on)")
    p.add_argument("--workers", type=int, default=2, help="processes decoding images (default 2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--name",
        metavar="SITE",
        help="evaluate as an external site: write under RUN/external/SITE/ and never touch the run's own files",
    )
    p.add_argument(
        "--local-sample",
        type=int,
        default=0,
        metavar="N",
        help="with --name: N labelled cases (whole patients) to recalibrate on; the others are scored (default 0)",
    )
    p.add_argument(
        "--recalibrate",
        choices=["prevalence", "prevalence_labelled", "intercept", "logistic", "closed_test"],
        help="with --name: the recalibration saved as an artefact (default, recommended: closed_test with "
        "--local-sample, the simplest of the label-free prevalence adjustment, recalibration-in-the-large and "
        "logistic recalibration that likelihood-ratio tests on the sample do not reject; else prevalence, "
        "which needs no labels)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="with --name: seed of the local sample and the bootstrap"
    )
    p.add_argument(
        "--resamples", type=int, default=1000, help="with --name: bootstrap replicates (default 1000)"
    )


def run(args: argparse.Namespace) -> int:
    from mmdx.errors import MmdxError
    from mmdx.workflows.evaluate import evaluate_run
    from pipelines.progress import caching_progress

    if args.name is None and (args.local_sample or args.recalibrate):
        raise MmdxError("--local-sample and --recalibrate belong to an external evaluation: add --name SITE")
    if args.name is not None:
        if not args.cohort:
            raise MmdxError("--name SITE evaluates another site's cohort: pass it with --cohort DIR")
        return _external(args)

    with caching_progress() as progress:
        result = evaluate_run(
            args.run,
            args.cohort,
            args.workers,
            args.batch_size,
            progress=progress,
        )
    metrics = result.metrics
    print(f"predictions: {result.predictions_path}\nmetrics: {result.metrics_path}")
    for split, m in metrics["splits"].items():
        print(
            f"  {split:5s} n={m['n']:4d}  AUROC {m['auroc']:.4f}  AUPRC {m['auprc']:.4f}  Brier {m['brier']:.4f}  "
            f"ECE {m['ece']:.4f}  sens {m['sensitivity']:.3f}  spec {m['specificity']:.3f}"
        )
    if "bayes_auroc" in metrics:
        print(f"  Bayes-optimal test AUROC of this synthetic cohort: {metrics['bayes_auroc']:.4f}")
    for name, value in metrics["modality_removed"].items():
        if name != "none":
            print(f"  test AUROC without {name}: {value['auroc']:.4f}")
    return 0


def _external(args: argparse.Namespace) -> int:
    from mmdx.workflows.external import evaluate_external
    from pipelines.progress import caching_progress

    with caching_progress() as progress:
        result = evaluate_external(
            args.run,
            args.cohort,
            args.name,
            local_sample=args.local_sample,
            method=args.recalibrate,
            seed=args.seed,
            n_resamples=args.resamples,
            workers=args.workers,
            batch_size=args.batch_size,
            progress=progress,
        )
    print(f"external evaluation '{args.name}': {result.paths.root} (the run's own files are unchanged)")
    metrics, intervals = result.metrics, result.metrics.get("intervals", {})
    for split, m in metrics["splits"].items():
        role = "scored" if split == "test" else "local sample"
        print(
            f"  {role:12s} n={m['n']:4d}  AUROC {m['auroc']:.4f}  Brier {m['brier']:.4f}  ECE {m['ece']:.4f}"
        )
    if "auroc" in intervals:
        a = intervals["auroc"]
        print(f"  AUROC {a['estimate']:.4f} (95% CI {a['low']:.4f}-{a['high']:.4f})")
    if "bayes_auroc" in metrics:
        print(f"  Bayes-optimal AUROC on the same cases: {metrics['bayes_auroc']:.4f}")
    drift = result.drift
    if drift.get("status") != "ok":
        print(f"  drift: not available: {drift['reason']}")
    else:
        print(f"  drift ({drift['correction']}): {len(drift['flags'])} flag(s)")
        domain = drift.get("domain_classifier") or {}
        if domain.get("available"):
            print(f"  training site vs this site, domain classifier AUROC {domain['auroc']:.3f}")
        for line in drift["flags"]:
            print(f"    - {line}")
    for method, entry in result.recalibration["methods"].items():
        if entry["status"] != "ok":
            print(f"  recalibration {method:20s} not available: {entry['reason']}")
            continue
        s = entry["scores"]
        if s is None:
            print(
                f"  recalibration {method:20s} intercept {entry['intercept']:+.3f} slope {entry['slope']:.3f} ({entry['reason']})"
            )
            continue
        recommended = " (recommended)" if method == result.recalibration.get("recommended") else ""
        chose = f" chose {entry['selected']}" if "selected" in entry else ""
        print(
            f"  recalibration {method:20s} CITL {s['citl']['estimate']:+.4f}  slope "
            f"{s['calibration_slope']['estimate']:.3f}  ECE {s['ece']['estimate']:.4f} "
            f"(perfect model: {entry['ece_perfect']['mean']:.4f}){chose}{recommended}"
        )
    if "not_saved" in result.recalibration:
        print(f"  {result.recalibration['not_saved']}")
    if result.artefact is not None:
        print(f"  saved recalibration: {result.artefact} (apply with 'mmdx predict --calibration')")
    return 0
