"""The training loop: plain PyTorch, one code path for CPU, CUDA (bf16 autocast) and DistributedDataParallel.

What it does each epoch: shuffle with a seed derived from (seed, epoch); drop present modalities at random
(modality dropout, never all of a case's modalities) so the fusion learns to cope with missing ones;
weight the positive class by the training prevalence; clip gradients; warm up then follow a cosine learning
rate; evaluate AUROC on the validation split; keep the best weights; write a checkpoint; stop early when
validation AUROC has not improved for ``patience`` epochs (with ``train.early_stopping: branches``, also
not while any encoder's own head still improves its validation AUROC). Each epoch also records the
validation AUROC of every encoder's own head (the auxiliary heads), when the model has them.

Hooks for the training strategies of :mod:`mmdx.training.strategies`: per-parameter-group learning-rate
scales (``param_groups``), a :class:`StepHook` called between the backward pass and the optimiser step
(gradient modulation), and random image augmentation (``augment``).

Resuming: every random stream is re-seeded from (seed, epoch) at the start of an epoch, and the checkpoint
holds model, optimizer and counters, so a run killed at any point and resumed from its last checkpoint
ends exactly where an uninterrupted run ends (on the CPU, where kernels are deterministic).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from mmdx.config import LoaderConfig, TrainConfig
from mmdx.data.dataset import collate
from mmdx.errors import MmdxError
from mmdx.keys import Keys
from mmdx.metrics import auroc
from mmdx.training.checkpoint import load_checkpoint, save_checkpoint
from mmdx.training.distributed import DistContext, autocast
from mmdx.training.inference import branch_aurocs, predict_dataset, to_device

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoints/last"
BEST_WEIGHTS = "checkpoints/best.safetensors"


class TrainingDiverged(MmdxError):
    """The loss became NaN or infinite."""


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_auroc: float
    val_loss: float
    lr: float
    seconds: float
    samples_per_second: float
    data_wait_share: float
    branch_val_auroc: dict[str, float] = field(default_factory=dict)
    stage: str = "fused"


@dataclass
class FitResult:
    """How :meth:`Trainer.fit` ended: the best epoch (by validation AUROC), how many ran, and why it stopped."""

    best_epoch: int
    best_val_auroc: float
    epochs_run: int
    stopped: str  # "early_stopping" | "epochs" | "max_steps"
    history: list[EpochRecord] = field(default_factory=list)
    strategy: str = "joint"
    branches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**asdict(self), "history": [asdict(h) for h in self.history]}


def best_branch_scores(history: list[EpochRecord]) -> dict[str, dict[str, Any]]:
    """Per modality, the best validation AUROC its own head reached in ``history`` and at which epoch (of
    which stage)."""
    best: dict[str, dict[str, Any]] = {}
    for record in history:
        for modality, score in record.branch_val_auroc.items():
            if score is None or math.isnan(score):
                continue
            if modality not in best or score > best[modality]["val_auroc"]:
                best[modality] = {"val_auroc": score, "epoch": record.epoch, "stage": record.stage}
    return best


class StepHook(Protocol):
    """Called after ``loss.backward()`` and before gradient clipping and the optimiser step."""

    def __call__(
        self,
        model: torch.nn.Module,
        output: Any,
        batch: dict,
        labels: torch.Tensor,
        generator: torch.Generator,
    ) -> None: ...


def modality_dropout(presence: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Drop each present modality with probability ``p``; a case never loses all of them.

    ``presence``: ``[B, M]`` bool. Cases where every present modality was drawn for dropping keep their
    original presence, so no training case is left without evidence.
    """
    if p <= 0:
        return presence
    drop = torch.rand(presence.shape, generator=generator) < p
    kept = presence & ~drop.to(presence.device)
    emptied = kept.sum(dim=1) == 0
    return torch.where(emptied[:, None], presence, kept)


def random_flip(image: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Mirror each case's image along each spatial axis independently with probability ``p``.

    ``image``: ``[B, C, *spatial]``. A lesion stays a lesion when mirrored, so this augmentation is
    label-preserving for findings that can sit anywhere in the field of view; it is drawn from
    ``generator`` (CPU), so a seeded run is reproducible and a resumed run draws the same flips.
    """
    if p <= 0:
        return image
    spatial = image.dim() - 2
    draws = torch.rand((image.shape[0], spatial), generator=generator) < p
    for axis in range(spatial):
        chosen = draws[:, axis].to(image.device)
        if chosen.any():
            shape = (-1,) + (1,) * (image.dim() - 1)
            image = torch.where(chosen.view(shape), image.flip(2 + axis), image)
    return image


def auxiliary_loss(
    aux_logits: torch.Tensor, labels: torch.Tensor, presence: torch.Tensor, pos_weight
) -> torch.Tensor:
    """Mean BCE of the unimodal heads over the (case, modality) pairs present: ``aux_logits [B, M]``,
    ``labels [B]``, ``presence [B, M]``. Zero when nothing is present."""
    per_pair = torch.nn.functional.binary_cross_entropy_with_logits(
        aux_logits, labels[:, None].expand_as(aux_logits), pos_weight=pos_weight, reduction="none"
    )
    weight = presence.to(per_pair.dtype)
    return (per_pair * weight).sum() / weight.sum().clamp_min(1.0)


def balanced_pos_weight(labels: np.ndarray) -> float:
    """``n_negative / n_positive`` of the labelled cases (1 when a class is absent)."""
    labels = labels[~np.isnan(labels)]
    n_pos = float((labels == 1).sum())
    n_neg = float((labels == 0).sum())
    return n_neg / n_pos if n_pos > 0 and n_neg > 0 else 1.0


def _lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class _FitState:
    """Where training stands: epochs done, optimiser steps, best (validation AUROC, epoch), epochs without
    improvement, the history, and why it stopped (``epochs`` while it goes on)."""

    epoch: int = 0
    step: int = 0
    best: tuple[float, int] = (-math.inf, -1)
    bad_epochs: int = 0
    branch_best: dict[str, float] = field(default_factory=dict)
    history: list[EpochRecord] = field(default_factory=list)
    stopped: str = "epochs"


@dataclass
class _EpochRun:
    """What one epoch's pass measured: losses, cases seen, seconds waiting for data, the last rate."""

    started: float
    losses: list[float] = field(default_factory=list)
    seen: int = 0
    wait: float = 0.0
    seconds: float = 0.0
    lr: float = 0.0
    bar: Any = None


class Trainer:
    """Fit a :class:`~mmdx.models.classifier.MultimodalClassifier` on a training and a validation dataset.

    Args:
        model: the classifier (on any device; it is moved to ``dist.device``).
        config: the ``train`` section of the config.
        loader: the ``data.loader`` section (batch sizes, workers).
        train_set, val_set: datasets yielding sample dicts (:mod:`mmdx.data.dataset`); unlabelled cases
            must already be excluded.
        out_dir: the run directory; checkpoints go to ``out_dir/checkpoints``.
        seed: the run's seed.
        dist: the process's place in a distributed run (a world of one by default).
        progress: show a progress bar (main process only).
        param_groups: the optimiser's parameter groups, each a dict with ``params`` and ``lr_scale`` (its
            learning rate is ``lr_scale`` times the scheduled one); default: every trainable parameter at
            the scheduled rate.
        step_hook: called between the backward pass and the optimiser step (gradient modulation).
        augment: random image augmentation of the training batches (``None``: none).
        stage: the name the epochs are recorded under.
    """

    #: with loader workers, start the next epoch's batches loading before validating
    prefetch_next_epoch: bool = True

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainConfig,
        loader: LoaderConfig,
        train_set: Dataset,
        val_set: Dataset,
        out_dir: Path,
        seed: int = 0,
        dist: DistContext | None = None,
        progress: bool = True,
        pos_weight: float | None = None,
        param_groups: list[dict[str, Any]] | None = None,
        step_hook: StepHook | None = None,
        augment: Any = None,
        stage: str = "fused",
    ) -> None:
        self.config = config
        self.step_hook = step_hook
        self.augment = augment
        self.stage = stage
        self._branch_best: dict[str, float] = {}
        self.loader_config = loader
        self.dist = dist or DistContext()
        self.device = self.dist.device
        self.model = model.to(self.device)
        self.train_set = train_set
        self.val_set = val_set
        self.out_dir = Path(out_dir)
        self.seed = seed
        self.progress = progress and self.dist.is_main
        self.prefetch_next_epoch = self.prefetch_next_epoch and loader.workers > 0
        self.pos_weight = 1.0 if config.class_weighting == "none" else (pos_weight or 1.0)
        groups = param_groups or [{"params": [p for p in self.model.parameters() if p.requires_grad]}]
        self.lr_scales = [float(g.get("lr_scale", 1.0)) for g in groups]
        self.optimizer = torch.optim.AdamW(
            [{k: v for k, v in g.items() if k != "lr_scale"} for g in groups],
            lr=config.lr,
            weight_decay=config.weight_decay,
        )
        self.sampler = DistributedSampler(
            train_set, num_replicas=self.dist.world_size, rank=self.dist.rank, shuffle=True, seed=seed
        )
        self.train_loader = DataLoader(
            train_set,
            batch_size=loader.batch_size,
            sampler=self.sampler,
            num_workers=loader.workers,
            collate_fn=collate,
            persistent_workers=loader.workers > 0,
            pin_memory=self.device.type == "cuda",
            drop_last=len(train_set) // max(1, self.dist.world_size) > loader.batch_size,
        )
        self.steps_per_epoch = max(1, len(self.train_loader))
        total = config.epochs * self.steps_per_epoch
        self.total_steps = min(total, config.max_steps) if config.max_steps else total
        self.warmup_steps = int(round(config.warmup_epochs * self.steps_per_epoch))
        self.network: torch.nn.Module = self.model
        if self.dist.distributed:
            self.network = DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )

    # -------------------------------------------------------------------------------------------------
    def _state(self, epoch: int, step: int, best: tuple[float, int], bad_epochs: int, history: list) -> dict:
        return {
            "epoch": epoch,
            "step": step,
            "best_auroc": best[0],
            "best_epoch": best[1],
            "bad_epochs": bad_epochs,
            "branch_best": json.dumps(self._branch_best),
            "history": json.dumps([asdict(h) for h in history]),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def _restore(self, state: dict) -> tuple[int, int, tuple[float, int], int, list[EpochRecord]]:
        self.model.load_state_dict(state["model"])
        optim_state = state["optimizer"]
        # JSON turns integer keys of the optimizer's per-parameter state into strings
        optim_state["state"] = {int(k): v for k, v in optim_state["state"].items()}
        for group in optim_state["param_groups"]:
            group["params"] = [int(p) for p in group["params"]]
        self.optimizer.load_state_dict(optim_state)
        history = [EpochRecord(**h) for h in json.loads(state["history"])]
        best = (float(state["best_auroc"]), int(state["best_epoch"]))
        # a checkpoint written before the encoders' own heads were scored has no branch_best
        self._branch_best = json.loads(state.get("branch_best", "{}"))
        return int(state["epoch"]), int(state["step"]), best, int(state["bad_epochs"]), history

    def _save_best(self) -> None:
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        path = self.out_dir / BEST_WEIGHTS
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        save_file(state, str(path.with_suffix(".tmp")))
        path.with_suffix(".tmp").replace(path)

    def _validate(self) -> tuple[float, float, dict[str, float]]:
        preds = predict_dataset(
            self.model,
            self.val_set,
            batch_size=self.loader_config.eval_batch_size,
            device=self.device,
            precision=self.config.precision,
        )
        labelled = ~np.isnan(preds.labels)
        y, z = preds.labels[labelled], preds.logits[labelled]
        if y.size == 0:
            return float("nan"), float("nan"), {}
        loss = float(np.mean(np.logaddexp(0.0, z) - y * z))
        score = auroc(y, 1.0 / (1.0 + np.exp(-z))) if len(np.unique(y)) == 2 else float("nan")
        return score, loss, branch_aurocs(preds)

    # -------------------------------------------------------------------------------------------------
    def _start(self, resume: bool) -> _FitState:
        """A fresh state, or the last checkpoint's when resuming; says whether training is already over."""
        cfg = self.config
        state = _FitState()
        if resume:
            saved = load_checkpoint(self.out_dir / CHECKPOINT)
            if saved is None:
                log.warning(
                    "no complete checkpoint in %s; starting from scratch", (self.out_dir / CHECKPOINT).parent
                )
            else:
                state.epoch, state.step, state.best, state.bad_epochs, state.history = self._restore(saved)
                state.branch_best = self._branch_best
                log.info("resumed after epoch %d (step %d)", state.epoch, state.step)
        if state.epoch > 0 and state.bad_epochs >= cfg.patience and state.epoch >= cfg.min_epochs:
            state.stopped = "early_stopping"
        elif cfg.max_steps and state.step >= cfg.max_steps:
            state.stopped = "max_steps"
        return state

    def _loss(self, batch: dict, labels: torch.Tensor, pos_weight: torch.Tensor) -> tuple[torch.Tensor, Any]:
        cfg = self.config
        with autocast(self.device, cfg.precision):
            out = self.network(batch)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            out.logits.float(), labels, pos_weight=pos_weight
        )
        if out.aux_logits is not None and cfg.aux_loss_weight > 0:
            loss = loss + cfg.aux_loss_weight * auxiliary_loss(
                out.aux_logits.float(), labels, batch[Keys.PRESENCE], pos_weight
            )
        penalty = self.model.penalty() if hasattr(self.model, "penalty") else None
        if penalty is not None:
            loss = loss + penalty
        return loss, out

    def _diverged(self, loss: torch.Tensor, epoch: int, step: int) -> TrainingDiverged:
        checkpoint = self.out_dir / CHECKPOINT
        kept = load_checkpoint(checkpoint)
        where = f"epoch {kept['epoch']}" if kept else "none yet"
        return TrainingDiverged(
            f"the training loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; training "
            f"stopped. The last good checkpoint ({where}) is kept in {checkpoint.parent}. Lower "
            "train.lr, keep train.grad_clip on, or check the inputs for extreme values."
        )

    def _train_epoch(
        self, epoch: int, batches: Iterator, state: _FitState, pos_weight: torch.Tensor
    ) -> _EpochRun:
        """One pass over ``batches``: modality dropout, flips, the scheduled learning rate, one optimiser
        step per batch; stops early at ``train.max_steps``."""
        cfg = self.config
        dropout_rng = torch.Generator().manual_seed(self.seed * 7_919 + epoch * 31 + self.dist.rank)
        # the strategies' own random streams, apart from the one above so that joint training is unchanged
        hook_rng = torch.Generator().manual_seed(self.seed * 6_007 + epoch * 53 + self.dist.rank)
        if self.augment is not None:
            self.augment.set_random_state(self.seed * 4_813 + epoch * 17 + self.dist.rank)
        self.network.train()
        run = _EpochRun(started=time.perf_counter())
        bar = tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not self.progress,
            leave=False,
            dynamic_ncols=True,
        )
        run.bar = bar
        t_ready = time.perf_counter()
        for batch in batches:
            run.wait += time.perf_counter() - t_ready
            batch = to_device(batch, self.device)
            labels = batch[Keys.LABEL].float()
            batch[Keys.PRESENCE] = modality_dropout(batch[Keys.PRESENCE], cfg.modality_dropout, dropout_rng)
            if cfg.flip > 0 and batch.get(Keys.IMAGE) is not None:
                batch[Keys.IMAGE] = random_flip(batch[Keys.IMAGE], cfg.flip, dropout_rng)
            if self.augment is not None and batch.get(Keys.IMAGE) is not None:
                batch[Keys.IMAGE] = self.augment(batch[Keys.IMAGE])
            run.lr = cfg.lr * _lr_factor(state.step, self.total_steps, self.warmup_steps, cfg.schedule)
            for group, scale in zip(self.optimizer.param_groups, self.lr_scales, strict=True):
                group["lr"] = run.lr * scale
            loss, out = self._loss(batch, labels, pos_weight)
            if not torch.isfinite(loss):
                bar.close()
                raise self._diverged(loss, epoch, state.step)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.step_hook is not None:
                self.step_hook(self.model, out, batch, labels, hook_rng)
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            run.losses.append(float(loss.detach()))
            run.seen += int(labels.shape[0])
            state.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(run.losses[-20:]):.4f}", lr=f"{run.lr:.2e}")
            if cfg.max_steps and state.step >= cfg.max_steps:
                state.stopped = "max_steps"
                break
            t_ready = time.perf_counter()
        run.seconds = time.perf_counter() - run.started
        return run

    def _end_epoch(self, epoch: int, run: _EpochRun, state: _FitState) -> None:
        """Validate, record the epoch, keep the best weights, write the checkpoint, decide on stopping."""
        cfg = self.config
        val_auroc, val_loss, branches = self._validate()
        run.bar.set_postfix(loss=f"{np.mean(run.losses):.4f}", val_auroc=f"{val_auroc:.4f}")
        run.bar.close()
        record = EpochRecord(
            epoch=epoch + 1,
            train_loss=float(np.mean(run.losses)) if run.losses else float("nan"),
            val_auroc=val_auroc,
            val_loss=val_loss,
            lr=run.lr if run.losses else cfg.lr,
            seconds=run.seconds,
            samples_per_second=run.seen * self.dist.world_size / max(run.seconds, 1e-9),
            data_wait_share=run.wait / max(run.seconds, 1e-9),
            branch_val_auroc=branches,
            stage=self.stage,
        )
        state.history.append(record)
        summary = (
            f"epoch {epoch + 1}: loss {record.train_loss:.4f}  val AUROC {val_auroc:.4f}  "
            f"val loss {val_loss:.4f}  {record.samples_per_second:.0f} samples/s  "
            f"data wait {100 * record.data_wait_share:.0f}%"
        )
        if branches:
            summary += "  branches " + " ".join(f"{m} {v:.4f}" for m, v in branches.items())
        if self.progress:
            tqdm.write(summary)
        elif self.dist.is_main:
            log.info(summary)
        improved = not math.isnan(val_auroc) and val_auroc > state.best[0] + 1e-6
        if improved or state.best[1] < 0:
            state.best = (val_auroc if not math.isnan(val_auroc) else -math.inf, epoch + 1)
            state.bad_epochs = 0
            if self.dist.is_main:
                self._save_best()
        else:
            state.bad_epochs += 1
        branch_improved = self._branches_improved(branches, state)
        if branch_improved and cfg.early_stopping == "branches":
            state.bad_epochs = 0
        if self.dist.is_main:
            save_checkpoint(
                self._state(epoch + 1, state.step, state.best, state.bad_epochs, state.history),
                self.out_dir / CHECKPOINT,
            )
        self.dist.barrier()
        if state.stopped == "epochs" and state.bad_epochs >= cfg.patience and epoch + 1 >= cfg.min_epochs:
            state.stopped = "early_stopping"

    def _branches_improved(self, branches: dict[str, float], state: _FitState) -> bool:
        """Whether any encoder's own head beat its best validation AUROC so far (and remember the best)."""
        improved = False
        for modality, score in branches.items():
            if math.isnan(score):
                continue
            if score > state.branch_best.get(modality, -math.inf) + 1e-6:
                state.branch_best[modality] = score
                improved = True
        self._branch_best = state.branch_best
        return improved

    def fit(self, resume: bool = False) -> FitResult:
        """Train until ``train.epochs``, early stopping or ``train.max_steps``; a checkpoint each epoch, the
        best weights (by validation AUROC) in ``best.safetensors``."""
        cfg = self.config
        state = self._start(resume)
        self._branch_best = state.branch_best
        pos_weight = torch.tensor(self.pos_weight, device=self.device)
        # With loader workers, the next epoch's iterator is started before validation so that its first
        # batches load while the model validates; the sampler's order depends on the epoch alone, so this
        # changes no result.
        prefetched: Iterator | None = None
        for epoch in range(state.epoch, cfg.epochs):
            if state.stopped != "epochs":
                break
            torch.manual_seed(self.seed * 100_003 + epoch)
            if prefetched is None:
                self.sampler.set_epoch(epoch)
                prefetched = iter(self.train_loader)
            batches, prefetched = prefetched, None
            run = self._train_epoch(epoch, batches, state, pos_weight)
            if self.prefetch_next_epoch and state.stopped == "epochs" and epoch + 1 < cfg.epochs:
                self.sampler.set_epoch(epoch + 1)
                prefetched = iter(self.train_loader)
            self._end_epoch(epoch, run, state)
        return FitResult(
            best_epoch=state.best[1],
            best_val_auroc=state.best[0],
            epochs_run=len(state.history),
            stopped=state.stopped,
            history=state.history,
            strategy=cfg.strategy,
            branches=best_branch_scores(state.history),
        )
