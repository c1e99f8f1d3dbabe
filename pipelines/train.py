"""``mmdx train``: validate the cohort, fit preprocessing, train, calibrate, and write the model bundle.

The workflow is :func:`mmdx.workflows.train.train_run`; this module parses the arguments and prints.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = """\
Train a multimodal model. The cohort is validated first (the report goes into the run directory), the
tabular normaliser and the note tokenizer are fitted on the training split, and the model trains with early
stopping on validation AUROC. The best weights are then calibrated on the validation split (Platt scaling:
a temperature and an offset, the offset set so that the mean calibrated probability there equals the share
of positives among all labelled training and validation cases; train.calibration_prevalence=validation
fits it on the validation split alone, train.calibration=temperature fits the temperature only), an
operating threshold is chosen on the validation split, and the bundle is written to RUN/bundle. With
--set train.cross_validation_folds=5 the settings are also cross-validated on the training split: five more
models, each trained without a fifth of it, score the cases they did not see, and the cross-validated AUROC
(steadier than a small validation split's) goes into training.json and the model card (five more
trainings; RUN/out_of_fold.json keeps their predictions). The run's own model does not change.
With --set train.ensemble=3 three models train with the seeds seed, seed+1000 and seed+2000 (RUN/ensemble/
holds the second and third's checkpoints), each is calibrated on the validation split, and the bundle
predicts with the mean of their calibrated logits: three times the training time. With
--set train.ensemble_split=folds as well (configs/ct3d.yaml's default) the labelled training and validation
cases are dealt into three folds: each model trains without one and is calibrated on it, and the threshold,
validation metrics and cross-validated AUROC come from the out-of-fold predictions (RUN/out_of_fold.json).

Configs are YAML (configs/*.yaml); override any key with --set, e.g. --set train.epochs=5
--set model.fusion.name=concat. A misspelled key fails with its path and a suggestion.

Several processes: torchrun --nproc_per_node=2 -m pipelines.cli train --config ... (NCCL on GPUs, gloo on
CPUs; configs/ct3d_gpu.yaml). The staged strategy of configs/demo.yaml and configs/ct3d.yaml trains the
encoders' own stage in one process: under torchrun add --set train.strategy=joint. A killed run continues
from its last checkpoint with --resume.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model on a cohort",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, help="experiment config (YAML), e.g. configs/demo.yaml")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (repeatable)",
    )
    p.add_argument("--cohort", help="cohort directory (default: data.cohort of the config)")
    p.add_argument("--out", help="run directory (default: runs/<config name>)")
    p.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its last checkpoint"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from mmdx.config import load_config
    from mmdx.errors import MmdxError
    from mmdx.workflows.train import train_run
    from pipelines.progress import caching_progress

    config = load_config(args.config, args.overrides)
    cohort = args.cohort or config.data.cohort
    if not cohort:
        raise MmdxError("no cohort given: pass --cohort DIR or set data.cohort in the config")
    out = args.out or str(Path("runs") / config.name)
    main_process = os.environ.get("RANK", "0") == "0"  # torchrun: only the first process shows progress
    with caching_progress(disable=args.quiet or not main_process) as cache_progress:
        result = train_run(
            config, cohort, out, resume=args.resume, progress=not args.quiet, cache_progress=cache_progress
        )
    if result is not None:
        fit = result.fit
        folded = config.train.folded_ensemble
        calibration = (
            f"each member calibrated on {'the fold it did not train on' if folded else 'the validation split'}"
            if result.ensemble
            else f"temperature {result.temperature:.3f}, offset {result.offset:+.3f}"
        )
        print(
            f"trained {config.name}{' (first member)' if result.ensemble else ''}: best val AUROC "
            f"{fit.best_val_auroc:.4f} at epoch {fit.best_epoch} ({fit.epochs_run} epochs, stopped: "
            f"{fit.stopped}); {calibration}, threshold {result.threshold:.3f}"
        )
        if result.ensemble is not None:
            members = result.ensemble["members"]
            shown = ", ".join("n/a" if m["val_auroc"] is None else f"{m['val_auroc']:.4f}" for m in members)
            value = result.ensemble["val_auroc"]
            scored = "out-of-fold AUROC" if folded else "val AUROC"
            print(
                f"ensemble of {len(members)}: {scored} {'n/a' if value is None else f'{value:.4f}'} (members "
                f"{shown}{', each on its own fold' if folded else ''}); the bundle predicts with the mean of "
                "their calibrated logits"
            )
        if result.cross_validation is not None:
            folds = result.cross_validation
            print(
                f"cross-validated AUROC {folds['auroc']:.4f} ± {folds['auroc_sd']:.4f} ({folds['folds']} "
                f"folds over {folds['cases']} {'training and validation' if folded else 'training'} cases)"
            )
        for warning in result.warnings:
            print(f"warning: {warning}")
        print(f"run: {result.run.root}  (bundle: {result.run.bundle})")
    return 0
