"""Cross-validation on the training split: K models, each trained without one fold, score the fold they left out.

The validation AUROC of a small cohort is noisy (89 validation cases in the demo: seeds of one config differ
by more than configs do), so it cannot tell training settings apart. With ``train.cross_validation_folds: K``
the train workflow, after training the run's model, splits the labelled training cases into K folds
stratified by label and trains K more models with the run's own strategy and settings, each on K − 1 folds
(early stopping on the same validation split as the run's model), and predicts the fold it did not see. The
cross-validated AUROC is the mean over folds of each fold model's AUROC on its own held-out fold (pooling
the folds' logits would mix K logit scales). The fold models are discarded; their logits are kept in
``RUN/out_of_fold.json`` and the estimate in ``training.json`` and the model card.

The logits are not used to calibrate the run's model: pooled with the validation split they gave worse
calibration on unseen cases than the validation split alone in every run measured (BENCHMARKS.md,
"Cross-validation on the training split"), since each fold model's logits have a scale of their own. The
preprocessing (value normalisation, tokenizer, image plan) is the run's, fitted on the whole training split
without labels; the folds share it.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from scipy.special import expit
from torch.utils.data import Dataset

from mmdx.errors import ConfigError, MmdxError
from mmdx.metrics import auroc
from mmdx.training.inference import predict_dataset
from mmdx.training.strategies import TrainingJob, fit_with_strategy
from mmdx.training.trainer import BEST_WEIGHTS, balanced_pos_weight

log = logging.getLogger(__name__)

#: the folder under the run directory where the fold models train (removed once each fold is done)
FOLDS_DIR = "folds"


def check_folds(
    labels: np.ndarray,
    folds: int,
    key: str = "train.cross_validation_folds",
    cases: str = "the training split",
    remedy: str = "lower train.cross_validation_folds or set it to 0 (no cross-validation)",
) -> None:
    """Fail in one line, before anything trains, when a class of ``labels`` has fewer cases than ``folds``
    (every fold needs one of each); the message names the setting ``key``, the ``cases`` and the ``remedy``."""
    labels = np.asarray(labels)
    for value in (0, 1):
        count = int(np.sum(labels == value))
        if count < folds:
            raise ConfigError(
                f"{key} {folds}: {cases} holds {count} case(s) of class {value}, fewer than the folds; {remedy}"
            )


def assign_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold in ``[0, folds)`` for each of ``labels`` ``[N]`` (0/1), stratified: each class is shuffled
    with ``seed`` and dealt out in turn, so every fold holds ``n_class / folds`` (± 1) of each class."""
    labels = np.asarray(labels)
    check_folds(labels, folds)
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), dtype=int)
    for value in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == value))
        out[members] = np.arange(len(members)) % folds
    return out


@dataclass(frozen=True)
class OutOfFold:
    """The out-of-fold logits of the training split from cross-validation: ``case_ids``, ``fold``,
    ``logits`` and ``labels`` ``[N]``; ``best_epochs`` and ``seconds`` per fold model."""

    folds: int
    case_ids: list[str]
    fold: np.ndarray
    logits: np.ndarray
    labels: np.ndarray
    best_epochs: list[int]
    seconds: list[float]

    def fold_aurocs(self) -> list[float]:
        """Each fold model's AUROC on the fold it left out (NaN where that fold holds one class)."""
        out = []
        for k in range(self.folds):
            labels = self.labels[self.fold == k]
            scores = expit(self.logits[self.fold == k])
            out.append(float(auroc(labels, scores)) if 0 < labels.sum() < len(labels) else float("nan"))
        return out

    def auroc(self) -> float:
        """The cross-validated AUROC: the mean of :meth:`fold_aurocs`."""
        return float(np.nanmean(self.fold_aurocs()))

    def summary(self) -> dict[str, Any]:
        """What ``training.json`` and the model card say of the folds (no per-case values)."""
        per_fold = self.fold_aurocs()
        return {
            "folds": self.folds,
            "cases": len(self.case_ids),
            "auroc": round(self.auroc(), 6),
            "auroc_sd": round(float(np.nanstd(per_fold, ddof=1)), 6),
            "fold_aurocs": [round(a, 6) for a in per_fold],
            "pooled_auroc": round(float(auroc(self.labels, expit(self.logits))), 6),
            "best_epochs": self.best_epochs,
            "seconds": [round(s, 1) for s in self.seconds],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "case_ids": list(self.case_ids),
            "fold": self.fold.tolist(),
            "logits": self.logits.tolist(),
            "labels": self.labels.tolist(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> OutOfFold:
        try:
            return cls(
                folds=int(state["folds"]),
                case_ids=[str(c) for c in state["case_ids"]],
                fold=np.asarray(state["fold"], dtype=int),
                logits=np.asarray(state["logits"], dtype=np.float64),
                labels=np.asarray(state["labels"], dtype=np.float64),
                best_epochs=[int(e) for e in state["best_epochs"]],
                seconds=[float(s) for s in state["seconds"]],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MmdxError(f"out-of-fold predictions: malformed record ({exc!r})") from None


@dataclass(frozen=True)
class FoldPlan:
    """What the K fold models are built from: ``make_model()`` a fresh, untrained model of the run's
    architecture; ``subset(positions)`` the run's training dataset restricted to those positions; ``labels``
    and ``case_ids`` of the training dataset; ``folds``; ``batch_size`` and ``precision`` of prediction."""

    make_model: Callable[[], torch.nn.Module]
    subset: Callable[[np.ndarray], Dataset]
    labels: np.ndarray
    case_ids: list[str]
    folds: int
    batch_size: int = 64
    precision: str = "auto"


def cross_validate(job: TrainingJob, plan: FoldPlan) -> OutOfFold:
    """Train ``plan.folds`` models like ``job`` (its strategy, settings and validation split), each without
    one fold of the training split, and return every training case's logit from the model that did not
    see it. Each fold trains in ``job.out_dir/folds/fold<k>``, removed once the fold is predicted; with
    ``job.resume`` an unfinished fold restarts from its checkpoint."""
    labels = np.asarray(plan.labels, dtype=np.float64)
    fold = assign_folds(labels, plan.folds, job.seed)
    logits = np.full(len(labels), np.nan)
    best_epochs: list[int] = []
    seconds: list[float] = []
    device = job.dist.device if job.dist is not None else torch.device("cpu")
    is_main = job.dist is None or job.dist.is_main
    for k in range(plan.folds):
        started = time.perf_counter()
        held_out, kept = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
        if is_main:
            log.info(
                "cross-validation: fold %d/%d (%d training cases, %d held out)",
                k + 1,
                plan.folds,
                len(kept),
                len(held_out),
            )
        seed = job.seed + 1 + k
        torch.manual_seed(seed)
        work = job.out_dir / FOLDS_DIR / f"fold{k}"
        fold_job = replace(
            job,
            model=plan.make_model(),
            train_set=plan.subset(kept),
            out_dir=work,
            seed=seed,
            pos_weight=balanced_pos_weight(labels[kept]),
        )
        fit = fit_with_strategy(fold_job)
        if job.dist is not None:
            job.dist.barrier()
        fold_job.model.load_state_dict(load_file(str(work / BEST_WEIGHTS)))
        predicted = predict_dataset(
            fold_job.model, plan.subset(held_out), plan.batch_size, device, precision=plan.precision
        )
        logits[held_out] = predicted.logits
        best_epochs.append(int(fit.best_epoch))
        seconds.append(time.perf_counter() - started)
        if job.dist is not None:
            job.dist.barrier()
        if is_main:
            shutil.rmtree(work, ignore_errors=True)
    if is_main:
        shutil.rmtree(job.out_dir / FOLDS_DIR, ignore_errors=True)
    return OutOfFold(plan.folds, list(plan.case_ids), fold, logits, labels, best_epochs, seconds)
