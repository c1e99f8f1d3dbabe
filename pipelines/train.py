"""``mmdx train``: validate the cohort, fit preprocessing, train, calibrate, and write the model bundle."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from tqdm import tqdm

from mmdx import __version__
from mmdx.bundle import save_bundle
from mmdx.config import Config, load_config
from mmdx.data.dataset import (
    ImageCache,
    MultimodalDataset,
    Preprocessing,
    build_case_table,
    fit_preprocessing,
    plan_training_images,
)
from mmdx.data.plan import declared_modality, describe_warnings
from mmdx.data.splits import split_fingerprint
from mmdx.data.validation import validate_cohort
from mmdx.errors import MmdxError
from mmdx.models.classifier import build_model
from mmdx.models.factory import check_model_config, model_arguments, pretrained_tokenizer
from mmdx.run import RunPaths
from mmdx.training.calibration import TemperatureScaler, calibration_warnings
from mmdx.training.distributed import init_distributed, shutdown_distributed
from mmdx.training.inference import predict_dataset
from mmdx.training.metrics import binary_metrics, choose_threshold, json_ready
from mmdx.training.trainer import BEST_WEIGHTS, Trainer, balanced_pos_weight

log = logging.getLogger(__name__)

HELP = """\
Train a multimodal model. The cohort is validated first (the report goes into the run directory), the
tabular normaliser and the note tokenizer are fitted on the training split, and the model trains with early
stopping on validation AUROC. The best weights are then calibrated (temperature scaling on the validation
split), an operating threshold is chosen on the validation split, and the bundle is written to RUN/bundle.

Configs are YAML (configs/*.yaml); override any key with --set, e.g. --set train.epochs=5
--set model.fusion.name=concat. A misspelled key fails with its path and a suggestion.

Several processes: torchrun --nproc_per_node=2 -m pipelines.cli train --config ... (NCCL on GPUs, gloo on
CPUs). A killed run continues from its last checkpoint with --resume.
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


def default_threads(world_size: int = 1) -> int:
    """PyTorch threads per training process when ``train.threads`` is not set: half the CPU cores this
    process may use, shared among the processes of a distributed run, at least one.

    On a CPU that other work shares (data-loader workers, a second run, the dashboard), OpenMP threads that
    spin-wait for each other make a step many times slower: benchmarks/profile_step.py measured a demo step
    at 4.3 s with both cores of a busy 2-core machine and 0.34 s with one thread. Half the cores leaves that
    headroom; a dedicated machine can set ``train.threads`` to all of them.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // 2 // max(1, world_size))


def _seed_everything(seed: int, deterministic: bool, threads: int | None, world_size: int = 1) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads or default_threads(world_size))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def environment() -> dict:
    """Versions and hardware, for the model card."""
    import monai

    info = {
        "mmdx": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def train_run(
    config: Config, cohort_dir: str | Path, out: str | Path, resume: bool = False, progress: bool = True
) -> dict:
    """The whole training workflow; returns a summary (also saved as RUN/training.json)."""
    check_model_config(config.model)
    run = RunPaths(Path(out))
    if run.root.exists() and any(run.root.iterdir()) and not resume:
        raise MmdxError(
            f"{run.root} already holds a run; pass --resume to continue it or choose another --out"
        )
    dist = init_distributed(config.train.device)
    try:
        if dist.is_main:
            run.create()
        dist.barrier()
        _seed_everything(config.seed, config.train.deterministic, config.train.threads, dist.world_size)
        started = time.perf_counter()

        cohort = validate_cohort(cohort_dir, workers=config.data.validate_workers)
        # a resumed run must see exactly the inputs the interrupted one saw: reuse its fitted preprocessing
        fitted = run.root / "preprocessing"
        previous = (
            Preprocessing.load(fitted) if resume and (fitted / "preprocessing.json").is_file() else None
        )
        images = plan_training_images(cohort, config, previous)
        if dist.is_main:
            cohort.report.write(run.validation_report)
            if images is not None:
                log.info("image plan: %s%s", images.plan.describe(), describe_warnings(images))
        if not cohort.report.usable:
            raise MmdxError(f"no usable case in {cohort_dir}; see {run.validation_report}")
        if previous is not None:
            prep = previous
        else:
            prep = fit_preprocessing(cohort, config, pretrained_tokenizer(config.model), images)
            if dist.is_main:
                fitted.mkdir(exist_ok=True, mode=0o700)
                prep.save(fitted)
        table = build_case_table(cohort, prep)
        split = cohort.cases.set_index("case_id").loc[table.case_ids, "split"].to_numpy()
        labelled = ~np.isnan(table.labels)
        train_idx = np.flatnonzero((split == "train") & labelled)
        val_idx = np.flatnonzero((split == "val") & labelled)
        if len(train_idx) < 2 or len(val_idx) < 2:
            raise MmdxError(
                f"need labelled cases in both the train and val splits (found {len(train_idx)} and {len(val_idx)})"
            )
        cache = None
        if prep.image_config is not None:
            cache = ImageCache(
                prep.image_config, config.data.cache.mode, config.data.cache.dir, declared_modality(cohort)
            )
        if cache is not None:
            with tqdm(
                desc="caching images", unit="image", disable=not (progress and dist.is_main), leave=False
            ) as bar:
                cache.warm(
                    table.image_paths,
                    workers=max(1, config.data.loader.workers or os.cpu_count() or 1),
                    progress=lambda done, total: (setattr(bar, "total", total), bar.update(done - bar.n)),
                )
        train_set = MultimodalDataset(table.subset(train_idx), prep, cache)
        val_set = MultimodalDataset(table.subset(val_idx), prep, cache)

        architecture = model_arguments(config.model, prep, aux_heads=config.train.aux_loss_weight > 0)
        model = build_model(**architecture)
        n_params = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if dist.is_main:
            log.info(
                "model: %s parameters (%s trainable); %d train / %d val cases",
                f"{n_params:,}",
                f"{trainable:,}",
                len(train_idx),
                len(val_idx),
            )
        trainer = Trainer(
            model,
            config.train,
            config.data.loader,
            train_set,
            val_set,
            run.root,
            seed=config.seed,
            dist=dist,
            progress=progress,
            pos_weight=balanced_pos_weight(table.labels[train_idx]),
        )
        result = trainer.fit(resume=resume)
        dist.barrier()
        if not dist.is_main:
            return {}

        model.load_state_dict(load_file(str(run.root / BEST_WEIGHTS)))
        model.eval()
        val = predict_dataset(
            model, val_set, config.data.loader.eval_batch_size, dist.device, precision=config.train.precision
        )
        scaler = TemperatureScaler()
        if config.train.calibrate:
            scaler.fit(val.logits, val.labels)
        val_prob = scaler.transform(val.logits)
        rule = config.train.threshold
        if rule.rule == "fixed":
            threshold = rule.value
        else:
            threshold = choose_threshold(
                val.labels,
                val_prob,
                rule=rule.rule,
                target=rule.target if rule.rule == "sensitivity" else None,
            )
        val_metrics = json_ready(binary_metrics(val.labels, val_prob, threshold))
        warnings = calibration_warnings(val.labels, scaler, config.train.calibrate)
        for warning in warnings:
            log.warning("%s", warning)
        card = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seed": config.seed,
            "task": cohort.spec["task"],
            "cohort": {
                "name": cohort.name,
                "path": str(cohort.root),
                "version": str(cohort.spec.get("version")),
                "fingerprint": cohort.fingerprint(),
                "split_fingerprint": split_fingerprint(cohort.cases["case_id"], cohort.cases["split"]),
                "subgroups": cohort.spec.get("subgroups", []),
            },
            "modalities": prep.modalities,
            "inputs": {
                "image": prep.image,
                "tabular": [{"key": f, "unit": prep.units[f]} for f in prep.features]
                + [{"key": c, "unit": "case table"} for c in prep.numeric_columns]
                + [{"key": c, "unit": "category"} for c in prep.normaliser.categorical_columns_],
                "text": "clinical notes joined in time order" if prep.tokenizer is not None else None,
            },
            "parameters": {"total": n_params, "trainable": trainable},
            "training": {
                "best_epoch": result.best_epoch,
                "epochs_run": result.epochs_run,
                "stopped": result.stopped,
                "train_cases": int(len(train_idx)),
                "val_cases": int(len(val_idx)),
                "seconds": round(time.perf_counter() - started, 1),
            },
            "operating_point": {"threshold": float(threshold), "rule": rule.rule, "chosen_on": "val"},
            "calibration": scaler.to_dict(),
            "warnings": warnings,
            "metrics": {"val": val_metrics},
            "environment": environment(),
            "intended_use": (
                f"Decision support: estimate the probability of '{cohort.spec['task']['positive']}' for patients "
                f"like those of cohort '{cohort.name}', from the modalities {', '.join(prep.modalities)}. "
                "Predictions are for review by a clinician and do not replace clinical judgement."
            ),
            "out_of_scope": [
                "patients, scanners or sites unlike those of the training cohort",
                "use without clinician review",
                "tasks other than the labelled outcome",
            ],
        }
        save_bundle(run.bundle, model, config, prep, scaler, card)
        summary = {
            "run": str(run.root),
            "bundle": str(run.bundle),
            "cohort": str(cohort.root),
            "result": result.to_dict(),
            "val": val_metrics,
            "threshold": float(threshold),
            "temperature": scaler.temperature_,
            "parameters": n_params,
            "warnings": warnings,
            "image_plan": images.summary() if images is not None else None,
        }
        run.training.write_text(json.dumps(json_ready(summary), indent=1), encoding="utf-8")
        return summary
    finally:
        shutdown_distributed()


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    cohort = args.cohort or config.data.cohort
    if not cohort:
        raise MmdxError("no cohort given: pass --cohort DIR or set data.cohort in the config")
    out = args.out or str(Path("runs") / config.name)
    summary = train_run(config, cohort, out, resume=args.resume, progress=not args.quiet)
    if summary:
        r = summary["result"]
        print(
            f"trained {config.name}: best val AUROC {r['best_val_auroc']:.4f} at epoch {r['best_epoch']} "
            f"({r['epochs_run']} epochs, stopped: {r['stopped']}); temperature {summary['temperature']:.3f}, "
            f"threshold {summary['threshold']:.3f}"
        )
        for warning in summary["warnings"]:
            print(f"warning: {warning}")
        print(f"run: {summary['run']}  (bundle: {summary['bundle']})")
    return 0
