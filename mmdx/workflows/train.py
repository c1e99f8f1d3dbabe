"""The train workflow: validate the cohort, fit preprocessing, train, calibrate, and write the model bundle.

:func:`train_run` is the whole of ``mmdx train``. It writes, through :class:`mmdx.run.RunPaths`, the
validation report, the fitted preprocessing (reused by ``--resume``), the trainer's checkpoints, the model
bundle (weights, resolved config, preprocessing, calibration and the model card) and ``training.json``.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from scipy.special import expit
from torch import nn

from mmdx import __version__
from mmdx.bundle import save_bundle
from mmdx.config import Config
from mmdx.data.dataset import (
    CaseTable,
    ImageCache,
    MultimodalDataset,
    Preprocessing,
    build_case_table,
    fit_preprocessing,
    plan_training_images,
)
from mmdx.data.drift import summarise_cohort
from mmdx.data.plan import CohortImagePlan, declared_modality, describe_warnings
from mmdx.data.splits import split_fingerprint
from mmdx.data.validation import ValidatedCohort, validate_cohort
from mmdx.errors import MmdxError
from mmdx.metrics import auroc, binary_metrics, choose_threshold, json_ready
from mmdx.models.classifier import build_model
from mmdx.models.factory import check_model_config, model_arguments, pretrained_tokenizer
from mmdx.run import RunPaths
from mmdx.training.calibration import (
    LOG_T_BOUNDS,
    MIN_VAL_CASES,
    MIN_VAL_PER_CLASS,
    TemperatureScaler,
    calibration_warnings,
    validation_slope,
)
from mmdx.training.contrastive import PretrainResult, check_pretrain, pretrain_encoders
from mmdx.training.cross_fit import FoldPlan, OutOfFold, assign_folds, check_folds, cross_validate
from mmdx.training.distributed import DistContext, init_distributed, shutdown_distributed
from mmdx.training.inference import Predictions, branch_aurocs, predict_dataset
from mmdx.training.strategies import STRATEGIES, TrainingJob, fit_with_strategy
from mmdx.training.trainer import BEST_WEIGHTS, FitResult, balanced_pos_weight

log = logging.getLogger(__name__)

#: ``progress(done, total)`` while the image cache is filled
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TrainResult:
    """What a finished training wrote, as summarised in ``RUN/training.json``.

    Attributes:
        run: the run directory; ``cohort``: the cohort trained on.
        fit: the trainer's result (best epoch, epochs run, why it stopped, history).
        val_metrics: metrics of the calibrated model on the validation split, at ``threshold`` (under
            ``train.ensemble_split: folds``: of the out-of-fold calibrated probabilities of every labelled
            training and validation case).
        threshold: the operating threshold on calibrated probabilities; ``temperature`` and ``offset``: the
            calibration (``probability = sigmoid(logit / temperature + offset)``).
        parameters: number of model parameters.
        warnings: why the calibration deserves little trust (a small validation split, a temperature at
            its bound); also in the model card.
        image_plan: the image preprocessing plan and its warnings by code (``None`` without images).
        cross_validation: with ``train.cross_validation_folds``, the folds' summary (the cross-validated
            AUROC and each fold's, best epochs, seconds).
        pretrain: what ``train.pretrain`` did before the strategy (``None`` for ``none``): epochs, the
            training and held-out loss per epoch, the cases per modality pair, the best epoch.
        ensemble: with ``train.ensemble`` K >= 2, each member's seed, best epoch, calibration and validation
            AUROC, and the ensemble's validation AUROC (``None`` for one model).
    """

    run: RunPaths
    cohort: Path
    fit: FitResult
    val_metrics: dict[str, Any]
    threshold: float
    temperature: float
    parameters: int
    warnings: list[str]
    image_plan: dict[str, Any] | None
    offset: float = 0.0
    cross_validation: dict[str, Any] | None = None
    pretrain: PretrainResult | None = None
    ensemble: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """The content of ``training.json``."""
        return {
            "run": str(self.run.root),
            "bundle": str(self.run.bundle),
            "cohort": str(self.cohort),
            "result": self.fit.to_dict(),
            "val": self.val_metrics,
            "threshold": float(self.threshold),
            "temperature": self.temperature,
            "offset": self.offset,
            "parameters": self.parameters,
            "warnings": self.warnings,
            "image_plan": self.image_plan,
            "cross_validation": self.cross_validation,
            "pretrain": self.pretrain.to_dict() if self.pretrain is not None else None,
            "ensemble": self.ensemble,
        }


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


def seed_everything(seed: int, deterministic: bool, threads: int | None, world_size: int = 1) -> None:
    """Seed Python, NumPy and torch, set torch's thread count, and ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads or default_threads(world_size))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def environment() -> dict[str, Any]:
    """Versions and hardware, for the model card."""
    import monai

    return {
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


@dataclass(frozen=True)
class _Splits:
    """Row indices of the case table: labelled training and validation cases, and the training split's
    unlabelled cases (read only by ``train.pretrain``)."""

    train: np.ndarray
    val: np.ndarray
    unlabelled_train: np.ndarray


def _splits(cohort: ValidatedCohort, table: CaseTable) -> _Splits:
    split = cohort.cases.set_index("case_id").loc[table.case_ids, "split"].to_numpy()
    labelled = ~np.isnan(table.labels)
    train_idx = np.flatnonzero((split == "train") & labelled)
    val_idx = np.flatnonzero((split == "val") & labelled)
    if len(train_idx) < 2 or len(val_idx) < 2:
        raise MmdxError(
            f"need labelled cases in both the train and val splits (found {len(train_idx)} and {len(val_idx)})"
        )
    return _Splits(train_idx, val_idx, np.flatnonzero((split == "train") & ~labelled))


def _validated_and_planned(
    cohort_dir: str | Path, run: RunPaths, config: Config, resume: bool, dist: DistContext
) -> tuple[ValidatedCohort, Preprocessing | None, CohortImagePlan | None]:
    """Validate the cohort, fit the image plan to its training images and check every image against it
    (the plan's warnings join the validation report, which is written); returns the cohort, the fitted
    preprocessing of the interrupted run when resuming, and the applied plan (``None`` without images)."""
    cohort = validate_cohort(cohort_dir, workers=config.data.validate_workers)
    if not cohort.report.usable:
        if dist.is_main:
            run.write_validation_report(cohort.report)
        raise MmdxError(f"no usable case in {cohort_dir}; see {run.validation_report}")
    # a resumed run must see exactly the inputs the interrupted one saw: reuse its fitted preprocessing
    previous = run.load_preprocessing() if resume else None
    images = plan_training_images(cohort, config, previous)
    if dist.is_main:
        run.write_validation_report(cohort.report)
        if images is not None:
            log.info("image plan: %s%s", images.plan.describe(), describe_warnings(images))
    if not cohort.report.usable:
        raise MmdxError(f"no usable case in {cohort_dir} under the image plan; see {run.validation_report}")
    return cohort, previous, images


def _preprocessing(
    run: RunPaths,
    cohort: ValidatedCohort,
    config: Config,
    previous: Preprocessing | None,
    images: CohortImagePlan | None,
    dist: DistContext,
) -> Preprocessing:
    if previous is not None:
        return previous
    preprocessing = fit_preprocessing(cohort, config, pretrained_tokenizer(config.model), images)
    if dist.is_main:
        run.save_preprocessing(preprocessing)
    return preprocessing


def _image_cache(
    preprocessing: Preprocessing,
    cohort: ValidatedCohort,
    config: Config,
    table: CaseTable,
    progress: Progress | None,
) -> ImageCache | None:
    if preprocessing.image_plan is None:
        return None
    cache = ImageCache(
        preprocessing.image_plan, config.data.cache.mode, config.data.cache.dir, declared_modality(cohort)
    )
    cache.warm(
        table.image_paths,
        workers=max(1, config.data.loader.workers or os.cpu_count() or 1),
        progress=progress,
    )
    return cache


def _pretrain(
    config: Config,
    job: TrainingJob,
    table: CaseTable,
    splits: _Splits,
    preprocessing: Preprocessing,
    cache: ImageCache | None,
    run: RunPaths,
) -> PretrainResult | None:
    """``train.pretrain`` on the training split's cases, labelled or not (never the validation split);
    ``None`` for ``none``."""
    if config.train.pretrain == "none":
        return None
    if job.dist is not None and job.dist.distributed:
        raise MmdxError(
            f"train.pretrain {config.train.pretrain} runs in one process; run it without torchrun, or set "
            "train.pretrain=none for a distributed run"
        )
    cases = np.sort(np.concatenate([splits.train, splits.unlabelled_train]))
    return pretrain_encoders(
        job.model,
        config.train,
        config.data.loader,
        MultimodalDataset(table.subset(cases), preprocessing, cache),
        run.pretrained_encoders,
        run.pretrain_record,
        seed=config.seed,
        device=job.dist.device if job.dist is not None else None,
        resume=job.resume,
        progress=job.progress,
    )


def _calibrate(
    model: nn.Module,
    val_set: MultimodalDataset,
    config: Config,
    device: torch.device,
    development_labels: np.ndarray,
    fitted: bool = True,
    slope: bool = True,
) -> tuple[TemperatureScaler, float, dict[str, Any], list[str]]:
    """Fit the calibration and the operating threshold on the validation split; their validation metrics,
    and warnings when the split cannot support them (too small, one class, a temperature at its bound).
    ``development_labels``: the labels of the training and validation splits, whose class rate anchors
    Platt's offset under ``train.calibration_prevalence: development``. ``fitted=False``: the model's
    output is calibrated already (an ensemble of calibrated members); the calibration is the identity.
    ``slope``: also how precisely the split fixes the calibration slope (``calibration_slope`` in the
    metrics, a warning when not to within 0.9 to 1.1; off for an ensemble's members, whose mean is the model)."""
    scaler, val = _fit_scaler(model, val_set, config, device, development_labels, fitted)
    return (scaler, *_operating_point(val.labels, scaler.transform(val.logits), scaler, config, slope))


def _fit_scaler(
    model: nn.Module,
    val_set: MultimodalDataset,
    config: Config,
    device: torch.device,
    development_labels: np.ndarray,
    fitted: bool = True,
) -> tuple[TemperatureScaler, Predictions]:
    """The calibration of ``model`` fitted on ``val_set`` (the identity when not ``fitted``) and the model's
    predictions there."""
    val = predict_dataset(
        model, val_set, config.data.loader.eval_batch_size, device, precision=config.train.precision
    )
    scaler = TemperatureScaler(method=config.train.calibration if fitted else "ensemble")
    if config.train.calibrate and fitted:
        # both classes are in the development labels whenever the validation split has both (else the
        # fit keeps the logits as they are and never reads the class rate)
        anchor = config.train.calibration_prevalence == "development"
        scaler.fit(val.logits, val.labels, prevalence=float(np.mean(development_labels)) if anchor else None)
    return scaler, val


def _operating_point(
    labels: np.ndarray,
    val_prob: np.ndarray,
    scaler: TemperatureScaler,
    config: Config,
    slope: bool,
    out_of_fold: bool = False,
) -> tuple[float, dict[str, Any], list[str]]:
    """The operating threshold chosen on calibrated probabilities ``val_prob`` of cases with ``labels``
    (a fold ensemble's ``out_of_fold`` predictions, or the validation split's), the metrics there and the
    calibration's warnings."""
    rule = config.train.threshold
    if rule.rule == "fixed":
        threshold = rule.value
    else:
        threshold = choose_threshold(
            labels, val_prob, rule=rule.rule, target=rule.target if rule.rule == "sensitivity" else None
        )
    precision = validation_slope(labels, val_prob, seed=config.seed) if slope else None
    warnings = calibration_warnings(
        labels, scaler, config.train.calibrate, slope=precision, out_of_fold=out_of_fold
    )
    for warning in warnings:
        log.warning("%s", warning)
    metrics = binary_metrics(labels, val_prob, threshold)
    if precision is not None:
        metrics["calibration_slope"] = precision
    return float(threshold), json_ready(metrics), warnings


def _cross_validate(
    job: TrainingJob,
    run: RunPaths,
    config: Config,
    make_model: Callable[[], nn.Module],
    train_set: MultimodalDataset,
    dist: DistContext,
) -> OutOfFold | None:
    """With ``train.cross_validation_folds``, the cross-validation of the run's settings on its training
    split (reused by ``--resume`` once written to ``RUN/out_of_fold.json``)."""
    folds = config.train.cross_validation_folds
    if folds == 0:
        return None
    saved = run.read_out_of_fold() if job.resume else None
    if saved is not None:
        return OutOfFold.from_dict(saved)
    table = train_set.table
    plan = FoldPlan(
        make_model=make_model,
        subset=lambda positions: MultimodalDataset(table.subset(positions), train_set.prep, train_set.cache),
        labels=table.labels,
        case_ids=table.case_ids,
        folds=folds,
        batch_size=config.data.loader.eval_batch_size,
        precision=config.train.precision,
    )
    result = cross_validate(replace(job, progress=False), plan)
    if dist.is_main:
        run.write_out_of_fold(result.to_dict())
        summary = result.summary()
        log.info(
            "cross-validated AUROC over %d training cases: %.4f ± %.4f (%d folds)",
            summary["cases"],
            summary["auroc"],
            summary["auroc_sd"],
            folds,
        )
    return result


#: Member ``k`` of an ensemble trains with the seed ``seed + k * MEMBER_SEED_STRIDE`` (member 0 with the run's
#: own), so that runs with nearby seeds (0, 1, 2, ...) share no member.
MEMBER_SEED_STRIDE = 1000


@dataclass(frozen=True)
class _MemberCases:
    """The rows of the case table one model trains on (``train``) and early-stops and is calibrated on
    (``held_out``)."""

    train: np.ndarray
    held_out: np.ndarray


def _member_cases(config: Config, table: CaseTable, splits: _Splits) -> list[_MemberCases]:
    """Per ensemble member (one for a single model), its training and held-out rows: the training and
    validation splits for every member under ``train.ensemble_split: shared``; under ``folds``, the labelled
    training and validation rows dealt into K folds stratified by label (with the run's seed), member k
    holding out fold k."""
    members = config.train.ensemble
    if not config.train.folded_ensemble:
        return [_MemberCases(splits.train, splits.val)] * members
    development = np.concatenate([splits.train, splits.val])
    labels = table.labels[development]
    check_folds(
        labels,
        members,
        key="train.ensemble",
        cases="with train.ensemble_split: folds, the labelled training and validation cases",
        remedy="lower train.ensemble or set train.ensemble_split=shared",
    )
    fold = assign_folds(labels, members, config.seed)
    return [
        _MemberCases(np.sort(development[fold != k]), np.sort(development[fold == k])) for k in range(members)
    ]


def _member_job(
    job: TrainingJob, cases: _MemberCases, table: CaseTable, subset: Callable[[np.ndarray], Any]
) -> TrainingJob:
    """``job`` with the member's training and held-out cases (``subset(rows)`` builds a dataset)."""
    return replace(
        job,
        train_set=subset(cases.train),
        val_set=subset(cases.held_out),
        pos_weight=balanced_pos_weight(table.labels[cases.train]),
    )


def _train_members(
    config: Config,
    job: TrainingJob,
    make_model: Callable[[], nn.Module],
    run: RunPaths,
    dist: DistContext,
    member_jobs: Callable[[int], TrainingJob],
) -> list[tuple[int, Path, FitResult]]:
    """With ``train.ensemble`` K >= 2, members 1 .. K-1 trained like the run's model (member 0) with their
    own seeds, each in its own directory and on its own cases (``member_jobs(k)``: the job with member k's
    training and held-out sets); ``(seed, directory, fit)`` of each. ``--resume`` resumes each member from
    its last checkpoint."""
    out = []
    for index in range(1, config.train.ensemble):
        seed = config.seed + index * MEMBER_SEED_STRIDE
        directory = run.ensemble_member(index)
        if dist.is_main:
            directory.mkdir(parents=True, exist_ok=True)
            log.info("ensemble member %d of %d (seed %d)", index + 1, config.train.ensemble, seed)
        dist.barrier()
        seed_everything(seed, config.train.deterministic, config.train.threads, dist.world_size)
        member_job = replace(member_jobs(index), model=make_model(), out_dir=directory, seed=seed)
        fit = fit_with_strategy(member_job)
        dist.barrier()
        out.append((seed, directory, fit))
    return out


@dataclass(frozen=True)
class _Assembled:
    """The ensemble, its record (``training.json``, the model card) and every member's predictions on the
    (labelled) cases it held out: their table ``rows``, the ``member`` (its index), its ``calibrated`` logits
    and the ``labels`` (under ``train.ensemble_split: folds`` one prediction per labelled development case,
    from the member that did not train on it)."""

    model: nn.Module
    record: dict[str, Any]
    rows: np.ndarray
    member: np.ndarray
    calibrated: np.ndarray
    labels: np.ndarray
    warnings: list[str]


def member_warnings(
    scalers: list[TemperatureScaler],
    records: list[dict[str, Any]],
    folds: bool,
    calibrate: bool = True,
    held_out_labels: list[np.ndarray] | None = None,
) -> list[str]:
    """Warnings for the ensemble members whose temperature, fitted on their held-out cases (``folds``: each
    its own fold; else the validation split), lies at the bound of its search range: the ensemble's own
    calibration is the identity, so the single-model check never sees them. With ``folds`` and
    ``held_out_labels`` (each member's fold labels, 0/1), also the members whose fold is too small or too
    short of one class to calibrate on (the run's own check counts the out-of-fold cases of all folds
    together)."""
    where = "its fold" if folds else "the validation split"
    out = []
    for k, (scaler, record) in enumerate(zip(scalers, records, strict=True)):
        member = f"ensemble member {k + 1} (seed {record['seed']})"
        if calibrate and scaler.at_bound:
            out.append(
                f"{member}: the temperature {scaler.temperature_:.4g} fitted on {where} "
                f"({record['held_out_cases']} cases) lies at the bound of its search range "
                f"(e^{LOG_T_BOUNDS[0]:g} to e^{LOG_T_BOUNDS[1]:g}): those cases could not determine it, and the "
                "member's calibrated probabilities are unreliable"
            )
        if not (folds and held_out_labels is not None):
            continue
        labels = np.asarray(held_out_labels[k])
        positive = int((labels == 1).sum())
        negative = int(labels.size) - positive
        if labels.size < MIN_VAL_CASES or min(positive, negative) < MIN_VAL_PER_CLASS:
            out.append(
                f"{member} is early-stopped{' and calibrated' if calibrate else ''} on its fold of {labels.size} "
                f"labelled cases ({positive} positive, {negative} negative), where at least {MIN_VAL_CASES} cases and "
                f"{MIN_VAL_PER_CLASS} of each class are advisable: its stopping epoch and probabilities are uncertain "
                "-- more labelled cases, or a smaller train.ensemble"
            )
    return out


def _assemble(
    config: Config,
    first: nn.Module,
    first_fit: FitResult,
    member_fits: list[tuple[int, Path, FitResult]],
    make_model: Callable[[], nn.Module],
    cases: list[_MemberCases],
    subset: Callable[[np.ndarray], MultimodalDataset],
    dist: DistContext,
    development: np.ndarray,
) -> _Assembled:
    """The ensemble of the run's model and the trained members, each calibrated on its held-out cases (the
    validation split, or its fold) as a single model would be."""
    from mmdx.models.ensemble import EnsembleClassifier

    members, records = [first], []
    for _, directory, _ in member_fits:
        member = make_model()
        member.load_state_dict(load_file(str(directory / BEST_WEIGHTS)))
        members.append(member.eval().to(dist.device))
    seeds = [config.seed] + [seed for seed, _, _ in member_fits]
    fits = [first_fit] + [fit for _, _, fit in member_fits]
    scalers, rows, owner, calibrated, labels = [], [], [], [], []
    for k, (seed, member, fit, held) in enumerate(zip(seeds, members, fits, cases, strict=True)):
        scaler, predicted = _fit_scaler(member, subset(held.held_out), config, dist.device, development)
        scalers.append(scaler)
        y = predicted.labels  # held-out cases are labelled ones
        records.append(
            {
                "seed": seed,
                "best_epoch": fit.best_epoch,
                "epochs_run": fit.epochs_run,
                "train_cases": int(len(held.train)),
                "held_out_cases": int(len(held.held_out)),
                "val_auroc": float(auroc(y, expit(predicted.logits))) if 0 < y.sum() < len(y) else None,
                "temperature": scaler.temperature_,
                "offset": scaler.offset_,
            }
        )
        rows.append(held.held_out)
        owner.append(np.full(len(held.held_out), k))
        calibrated.append(scaler.calibrated_logit(predicted.logits))
        labels.append(predicted.labels)
    ensemble = EnsembleClassifier(
        members, [s.temperature_ for s in scalers], [s.offset_ for s in scalers]
    ).to(dist.device)
    record = {
        "split": config.train.ensemble_split,
        "members": records,
        "combination": "mean of the members' calibrated logits",
    }
    warnings = member_warnings(
        scalers, records, config.train.folded_ensemble, config.train.calibrate, held_out_labels=labels
    )
    for warning in warnings:
        log.warning("%s", warning)
    return _Assembled(
        ensemble.eval(),
        record,
        np.concatenate(rows),
        np.concatenate(owner),
        np.concatenate(calibrated),
        np.concatenate(labels),
        warnings,
    )


def _out_of_fold_calibration(
    assembled: _Assembled, config: Config
) -> tuple[TemperatureScaler, float, dict[str, Any], list[str]]:
    """Under ``train.ensemble_split: folds``: the ensemble's calibration (the identity: its members are
    calibrated), and the operating threshold, metrics and warnings on the out-of-fold calibrated
    probabilities of the labelled development cases (each from the member that held it out)."""
    probabilities = expit(assembled.calibrated)
    scaler = TemperatureScaler(method="ensemble")
    return (
        scaler,
        *_operating_point(assembled.labels, probabilities, scaler, config, slope=True, out_of_fold=True),
    )


def _ensemble_out_of_fold(assembled: _Assembled, table: CaseTable, fits: list[FitResult]) -> OutOfFold:
    """The cross-validation a fold ensemble gives for free: each development case's calibrated logit from
    the member that held it out (pooled AUROC is meaningful: the logits share one calibrated scale)."""
    order = np.argsort(assembled.rows)
    return OutOfFold(
        folds=len(fits),
        case_ids=[str(table.case_ids[row]) for row in assembled.rows[order]],
        fold=assembled.member[order],
        logits=assembled.calibrated[order],
        labels=assembled.labels[order],
        best_epochs=[int(fit.best_epoch) for fit in fits],
        seconds=[float(sum(epoch.seconds for epoch in fit.history)) for fit in fits],
    )


def _auroc_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def branch_summary(
    model: nn.Module, val_set: MultimodalDataset, config: Config, device: torch.device, fit: FitResult
) -> dict[str, dict[str, Any]]:
    """Per modality of the trained model, on the validation split: the AUROC of its encoder's own head
    (``own_val_auroc``, at the chosen weights; ``best_own_val_auroc`` over training) and the fused AUROC
    lost when the modality is removed from every case (``val_auroc_lost_when_removed``)."""
    precision = config.train.precision
    batch = config.data.loader.eval_batch_size
    intact = predict_dataset(model, val_set, batch, device, precision=precision)
    labelled = ~np.isnan(intact.labels)
    y = intact.labels[labelled]
    if len(np.unique(y)) < 2:
        return {}
    fused = auroc(y, 0.5 * (1.0 + np.tanh(intact.logits[labelled] / 2.0)))
    own = branch_aurocs(intact)
    out: dict[str, dict[str, Any]] = {}
    for modality in model.modalities:
        name = str(modality)
        lost = None
        if len(model.modalities) > 1:
            removed = predict_dataset(model, val_set, batch, device, remove=[modality], precision=precision)
            lost = fused - auroc(y, 0.5 * (1.0 + np.tanh(removed.logits[labelled] / 2.0)))
        out[name] = {
            "own_val_auroc": own.get(name),
            "best_own_val_auroc": (fit.branches.get(name) or {}).get("val_auroc"),
            "val_auroc_lost_when_removed": lost,
        }
    return out


def model_card(
    config: Config,
    cohort: ValidatedCohort,
    preprocessing: Preprocessing,
    model: nn.Module,
    fit: FitResult,
    splits: _Splits,
    calibration: tuple[TemperatureScaler, float, dict[str, Any], list[str]],
    seconds: float,
    branches: dict[str, dict[str, Any]] | None = None,
    folds: OutOfFold | None = None,
    ensemble: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The bundle's ``card.json``: task, cohort fingerprints, inputs, training (with the cross-validation
    when ``folds`` holds one), operating point, calibration warnings, intended use."""
    scaler, threshold, val_metrics, warnings = calibration
    folded = config.train.folded_ensemble
    chosen_on = "out-of-fold train+val" if folded else "val"
    n_params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    task = cohort.spec["task"]
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seed": config.seed,
        "task": task,
        "cohort": {
            "name": cohort.name,
            "path": str(cohort.root),
            "version": str(cohort.spec.get("version")),
            "fingerprint": cohort.fingerprint(),
            "split_fingerprint": split_fingerprint(cohort.cases["case_id"], cohort.cases["split"]),
            "subgroups": cohort.spec.get("subgroups", []),
        },
        "modalities": preprocessing.modalities,
        "inputs": {
            "image": preprocessing.image,
            "tabular": [{"key": f, "unit": preprocessing.units[f]} for f in preprocessing.features]
            + [{"key": c, "unit": "case table"} for c in preprocessing.numeric_columns]
            + [{"key": c, "unit": "category"} for c in preprocessing.normaliser.categorical_columns_],
            "text": "clinical notes joined in time order" if preprocessing.tokenizer is not None else None,
        },
        "parameters": {"total": n_params, "trainable": trainable},
        "training": {
            "strategy": fit.strategy,
            "early_stopping": config.train.early_stopping,
            "branches": json_ready(branches or {}),
            "best_epoch": fit.best_epoch,
            "epochs_run": fit.epochs_run,
            "stopped": fit.stopped,
            "train_cases": int(len(splits.train)),
            "val_cases": int(len(splits.val)),
            "seconds": round(seconds, 1),
            "cross_validation": folds.summary() if folds is not None else None,
            "ensemble": json_ready(ensemble) if ensemble is not None else None,
        },
        "operating_point": {
            "threshold": threshold,
            "rule": config.train.threshold.rule,
            "chosen_on": chosen_on,
        },
        "calibration": scaler.to_dict(),
        "warnings": warnings,
        "metrics": {"val": val_metrics},
        "environment": environment(),
        "intended_use": (
            f"Decision support: estimate the probability of '{task['positive']}' for patients "
            f"like those of cohort '{cohort.name}', from the modalities {', '.join(preprocessing.modalities)}. "
            "Predictions are for review by a clinician and do not replace clinical judgement."
        ),
        "out_of_scope": [
            "patients, scanners or sites unlike those of the training cohort",
            "use without clinician review",
            "tasks other than the labelled outcome",
        ],
    }


def train_run(
    config: Config,
    cohort_dir: str | Path,
    out: str | Path,
    resume: bool = False,
    progress: bool = True,
    cache_progress: Progress | None = None,
) -> TrainResult | None:
    """Train on ``cohort_dir`` into the run directory ``out``; returns what was written (also saved as
    ``RUN/training.json``), or None in the non-main processes of a distributed run.

    ``progress``: the trainer's progress bars; ``cache_progress(done, total)`` while images are cached.
    """
    check_model_config(config.model)
    STRATEGIES.get(config.train.strategy)  # an unknown strategy fails here, naming the choices
    check_pretrain(config.train, [m for m in ("image", "tabular", "text") if getattr(config.model, m)])
    run = RunPaths(Path(out))
    if run.holds_a_run() and not resume:
        raise MmdxError(
            f"{run.root} already holds a run; pass --resume to continue it or choose another --out"
        )
    dist = init_distributed(config.train.device)
    try:
        return _train(config, cohort_dir, run, resume, progress, cache_progress, dist)
    finally:
        shutdown_distributed()


def _train(
    config: Config,
    cohort_dir: str | Path,
    run: RunPaths,
    resume: bool,
    progress: bool,
    cache_progress: Progress | None,
    dist: DistContext,
) -> TrainResult | None:
    if dist.is_main:
        run.create()
    dist.barrier()
    seed_everything(config.seed, config.train.deterministic, config.train.threads, dist.world_size)
    started = time.perf_counter()

    cohort, previous, images = _validated_and_planned(cohort_dir, run, config, resume, dist)
    preprocessing = _preprocessing(run, cohort, config, previous, images, dist)
    table = build_case_table(cohort, preprocessing)
    splits = _splits(cohort, table)
    if config.train.cross_validation_folds:
        check_folds(table.labels[splits.train], config.train.cross_validation_folds)
    cases = _member_cases(config, table, splits)
    # the model is built before the images are cached: a config it cannot build fails in seconds, not after
    # an hour of resampling
    strategy = STRATEGIES.get(config.train.strategy)
    arguments = model_arguments(
        config.model, preprocessing, aux_heads=config.train.aux_loss_weight > 0 or strategy.branch_heads
    )
    model = build_model(**arguments)
    cache = _image_cache(preprocessing, cohort, config, table, cache_progress if dist.is_main else None)
    train_set = MultimodalDataset(table.subset(splits.train), preprocessing, cache)
    val_set = MultimodalDataset(table.subset(splits.val), preprocessing, cache)
    if dist.is_main:
        log.info(
            "model: %s parameters (%s trainable); %d train / %d val cases",
            f"{sum(p.numel() for p in model.parameters()):,}",
            f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,}",
            len(splits.train),
            len(splits.val),
        )
    job = TrainingJob(
        model,
        config.train,
        config.data.loader,
        train_set,
        val_set,
        run.root,
        seed=config.seed,
        dist=dist,
        progress=progress,
        pos_weight=balanced_pos_weight(table.labels[splits.train]),
        resume=resume,
    )
    pretrained = _pretrain(config, job, table, splits, preprocessing, cache, run)

    def subset(rows: np.ndarray) -> MultimodalDataset:
        return MultimodalDataset(table.subset(rows), preprocessing, cache)

    def member_jobs(index: int) -> TrainingJob:
        return _member_job(job, cases[index], table, subset) if config.train.folded_ensemble else job

    first_job = member_jobs(0)
    fit = fit_with_strategy(first_job)
    dist.barrier()
    member_fits = _train_members(config, job, lambda: build_model(**arguments), run, dist, member_jobs)
    folds = _cross_validate(job, run, config, lambda: build_model(**arguments), train_set, dist)
    if not dist.is_main:
        return None

    model.load_state_dict(load_file(str(run.root / BEST_WEIGHTS)))
    model.eval()
    development = table.labels[np.concatenate([splits.train, splits.val])]
    ensemble = None
    branch_model, branch_set = model, val_set
    if member_fits:
        assembled = _assemble(
            config,
            model,
            fit,
            member_fits,
            lambda: build_model(**arguments),
            cases,
            subset,
            dist,
            development,
        )
        ensemble = assembled.record
        if config.train.folded_ensemble:
            # the development cases are in the training data of every member but one: the ensemble's
            # validation metrics, threshold and branch summary come from cases a model did not train on
            calibration = _out_of_fold_calibration(assembled, config)
            folds = _ensemble_out_of_fold(assembled, table, [fit] + [f for _, _, f in member_fits])
            run.write_out_of_fold(folds.to_dict())
            branch_set = first_job.val_set
        else:
            calibration = _calibrate(assembled.model, val_set, config, dist.device, development, fitted=False)
            branch_model = assembled.model
        model = assembled.model
        calibration = (*calibration[:3], calibration[3] + assembled.warnings)
        ensemble["val_auroc"] = calibration[2].get("auroc")
        log.info(
            "ensemble of %d: %s AUROC %s (members %s)",
            len(ensemble["members"]),
            "out-of-fold" if config.train.folded_ensemble else "validation",
            _auroc_text(ensemble["val_auroc"]),
            ", ".join(_auroc_text(m["val_auroc"]) for m in ensemble["members"]),
        )
    else:
        calibration = _calibrate(model, val_set, config, dist.device, development)
    scaler, threshold, val_metrics, warnings = calibration
    branches = branch_summary(branch_model, branch_set, config, dist.device, fit)
    card = model_card(
        config,
        cohort,
        preprocessing,
        model,
        fit,
        splits,
        calibration,
        time.perf_counter() - started,
        branches,
        folds,
        ensemble,
    )
    summary = summarise_cohort(cohort, table, preprocessing.tabular_columns, splits.train)
    save_bundle(run.bundle, model, config, preprocessing, scaler, card, training_summary=summary)
    result = TrainResult(
        run=run,
        cohort=cohort.root,
        fit=fit,
        val_metrics=val_metrics,
        threshold=threshold,
        temperature=scaler.temperature_,
        offset=scaler.offset_,
        parameters=sum(p.numel() for p in model.parameters()),
        warnings=warnings,
        image_plan=images.summary() if images is not None else None,
        cross_validation=folds.summary() if folds is not None else None,
        pretrain=pretrained,
        ensemble=ensemble,
    )
    run.write_training_summary(result.summary())
    return result
