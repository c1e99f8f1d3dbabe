"""The first stage of the ``staged`` strategy: every encoder trains alone with its own head.

Each step sums, over the model's modalities still training, the loss of each encoder's own head (its
auxiliary head) on the cases that have the modality; the fusion gets no gradient. Gradients are clipped per
encoder, so the encoders do not influence each other at all: this is one unimodal model per modality,
trained side by side over the same batches. After each epoch every encoder's own validation AUROC is
measured; an encoder keeps the weights of its best epoch and stops (its parameters get no more gradient)
once it has not improved for ``train.staged.branch_patience`` epochs (not before ``train.min_epochs``), or
at ``train.staged.branch_epochs`` (or ``train.epochs`` when that is lower). With
``train.staged.wait_for_signal`` (the default) the patience counts only once the encoder's best own AUROC
has risen above chance on its validation cases (:func:`mmdx.statistics.chance_auroc`): an encoder whose
validation AUROC stays near 0.5 for the first epochs is not stopped before it starts to learn (a 3D image
encoder that trains on fewer cases can take longer than the patience to find a lesion of a few voxels).

The stage ends by loading each encoder's best weights and writing them, with the stage's history, to
``checkpoints/branches.safetensors`` and ``checkpoints/branches.json``; a resumed run that finds them
skips the stage. Runs in one process (the fusion stage may be distributed).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from mmdx.data.dataset import collate
from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES, Keys
from mmdx.statistics import chance_auroc
from mmdx.training.augment import build_augmentation
from mmdx.training.inference import Predictions, branch_aurocs, predict_dataset, to_device
from mmdx.training.trainer import EpochRecord, _lr_factor

if TYPE_CHECKING:
    from mmdx.training.strategies import TrainingJob

log = logging.getLogger(__name__)

BRANCH_WEIGHTS = "checkpoints/branches.safetensors"
BRANCH_HISTORY = "checkpoints/branches.json"
STAGE = "branches"


def _branch_state(model: torch.nn.Module, modality: str) -> dict[str, torch.Tensor]:
    prefixes = (f"encoders.{modality}.", f"aux_heads.{modality}.")
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(prefixes)}


def _load_finished(job: TrainingJob) -> list[EpochRecord] | None:
    weights, history = job.out_dir / BRANCH_WEIGHTS, job.out_dir / BRANCH_HISTORY
    if not (job.resume and weights.is_file() and history.is_file()):
        return None
    job.model.load_state_dict(load_file(str(weights)), strict=False)
    log.info("the encoders' own stage is already done (%s); continuing with the fusion", weights)
    return [EpochRecord(**h) for h in json.loads(history.read_text(encoding="utf-8"))]


def _save_finished(job: TrainingJob, history: list[EpochRecord]) -> None:
    if job.dist is not None and not job.dist.is_main:
        return
    state = {
        k: v.detach().cpu().contiguous()
        for k, v in job.model.state_dict().items()
        if k.startswith(("encoders.", "aux_heads."))
    }
    weights, record = job.out_dir / BRANCH_WEIGHTS, job.out_dir / BRANCH_HISTORY
    weights.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    save_file(state, str(weights.with_suffix(".tmp")))
    weights.with_suffix(".tmp").replace(weights)
    record.write_text(json.dumps([asdict(h) for h in history]), encoding="utf-8")


class _BranchStage:
    """The loop of the stage; see the module docstring."""

    def __init__(self, job: TrainingJob) -> None:
        self.job = job
        self.cfg = job.config
        self.model = job.model
        self.device = job.dist.device if job.dist is not None else torch.device("cpu")
        self.model.to(self.device)
        self.modalities = [str(m) for m in self.model.modalities]
        self.columns = {m: MODALITIES.index(m) for m in self.modalities}
        self.params = {
            m: [p for p in (*self.model.encoders[m].parameters(), *self.model.aux_heads[m].parameters())]
            for m in self.modalities
        }
        self.optimizer = torch.optim.AdamW(
            [{"params": self.params[m]} for m in self.modalities],
            lr=self.cfg.lr,
            weight_decay=self.cfg.weight_decay,
        )
        generator = torch.Generator().manual_seed(job.seed)
        self.loader = DataLoader(
            job.train_set,
            batch_size=job.loader.batch_size,
            shuffle=True,
            generator=generator,
            num_workers=job.loader.workers,
            collate_fn=collate,
            drop_last=len(job.train_set) > job.loader.batch_size,
        )
        self.steps_per_epoch = max(1, len(self.loader))
        #: ``train.epochs`` bounds every stage, so a short run (``--set train.epochs=1``) stays short
        self.max_epochs = min(self.cfg.staged.branch_epochs, self.cfg.epochs)
        self.total_steps = self.max_epochs * self.steps_per_epoch
        self.warmup_steps = int(round(self.cfg.warmup_epochs * self.steps_per_epoch))
        self.augment = build_augmentation(self.cfg.augment)
        self.pos_weight = torch.tensor(
            1.0 if self.cfg.class_weighting == "none" else (job.pos_weight or 1.0), device=self.device
        )
        self.best: dict[str, float] = {}
        self.best_state: dict[str, dict[str, torch.Tensor]] = {}
        self.bad: dict[str, int] = {m: 0 for m in self.modalities}
        self.active = set(self.modalities)
        self.step = 0

    def _loss(self, batch: dict, labels: torch.Tensor) -> torch.Tensor:
        out = self.model(batch)
        presence = batch[Keys.PRESENCE]
        total = out.logits.sum() * 0.0
        for modality in self.active:
            column = self.columns[modality]
            weight = presence[:, column].float()
            per_case = torch.nn.functional.binary_cross_entropy_with_logits(
                out.aux_logits[:, column].float(), labels, pos_weight=self.pos_weight, reduction="none"
            )
            total = total + (per_case * weight).sum() / weight.sum().clamp_min(1.0)
        penalty = self.model.penalty(self.active)  # a stopped encoder is left as it is
        return total if penalty is None else total + penalty

    def _train_epoch(self, epoch: int) -> tuple[list[float], int, float]:
        torch.manual_seed(self.job.seed * 100_003 + epoch)
        if self.augment is not None:
            self.augment.set_random_state(self.job.seed * 4_813 + epoch * 17)
        self.model.train()
        losses, seen, started = [], 0, time.perf_counter()
        lr = self.cfg.lr
        for batch in self.loader:
            batch = to_device(batch, self.device)
            labels = batch[Keys.LABEL].float()
            if self.augment is not None and batch.get(Keys.IMAGE) is not None:
                batch[Keys.IMAGE] = self.augment(batch[Keys.IMAGE])
            lr = self.cfg.lr * _lr_factor(self.step, self.total_steps, self.warmup_steps, self.cfg.schedule)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss = self._loss(batch, labels)
            if not torch.isfinite(loss):
                raise MmdxError(
                    f"the encoders' own training loss became {loss.item()} at epoch {epoch + 1}; lower "
                    "train.lr or check the inputs for extreme values"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.grad_clip:
                for modality in self.active:
                    torch.nn.utils.clip_grad_norm_(self.params[modality], self.cfg.grad_clip)
            self.optimizer.step()
            losses.append(float(loss.detach()))
            seen += int(labels.shape[0])
            self.step += 1
        self._lr = lr
        return losses, seen, time.perf_counter() - started

    def _end_epoch(self, epoch: int, scores: dict[str, float], chance: dict[str, float]) -> None:
        for modality in sorted(self.active):
            score = scores.get(modality, math.nan)
            if not math.isnan(score) and score > self.best.get(modality, -math.inf) + 1e-6:
                self.best[modality] = score
                self.best_state[modality] = _branch_state(self.model, modality)
                self.bad[modality] = 0
            elif not (
                self.cfg.staged.wait_for_signal
                and self.best.get(modality, -math.inf) <= chance.get(modality, -math.inf)
            ):
                self.bad[modality] += 1
            if self.bad[modality] >= self.cfg.staged.branch_patience and epoch + 1 >= self.cfg.min_epochs:
                self.active.discard(modality)
                log.info(
                    "%s encoder stops after epoch %d (best own validation AUROC %.4f)",
                    modality,
                    epoch + 1,
                    self.best.get(modality, math.nan),
                )

    def run(self) -> list[EpochRecord]:
        history: list[EpochRecord] = []
        # the chance level of each head, from the first epoch's validation cases
        chance: dict[str, float] = {}
        for epoch in range(self.max_epochs):
            if not self.active:
                break
            losses, seen, seconds = self._train_epoch(epoch)
            preds = predict_dataset(
                self.model,
                self.job.val_set,
                batch_size=self.job.loader.eval_batch_size,
                device=self.device,
                precision=self.cfg.precision,
            )
            scores = branch_aurocs(preds)
            chance = chance or _chance_levels(preds)
            history.append(
                EpochRecord(
                    epoch=epoch + 1,
                    train_loss=float(np.mean(losses)) if losses else math.nan,
                    val_auroc=math.nan,  # the fusion is not trained in this stage
                    val_loss=math.nan,
                    lr=self._lr,
                    seconds=seconds,
                    samples_per_second=seen / max(seconds, 1e-9),
                    data_wait_share=0.0,
                    branch_val_auroc=scores,
                    stage=STAGE,
                )
            )
            if self.job.progress:
                log.info(
                    "encoders' own epoch %d: %s",
                    epoch + 1,
                    " ".join(f"{m} {scores.get(m, math.nan):.4f}" for m in self.modalities),
                )
            self._end_epoch(epoch, scores, chance)
        for state in self.best_state.values():
            self.model.load_state_dict(state, strict=False)
        return history


def _chance_levels(preds: Predictions) -> dict[str, float]:
    """Per modality, the AUROC above which its own head shows signal on the labelled validation cases that
    have the modality (:func:`mmdx.statistics.chance_auroc`)."""
    labelled = ~np.isnan(preds.labels)
    out = {}
    for column, modality in enumerate(MODALITIES):
        y = preds.labels[labelled & preds.presence[:, column]]
        out[str(modality)] = chance_auroc(int((y == 1).sum()), int((y == 0).sum()))
    return out


def fit_branches(job: TrainingJob) -> list[EpochRecord]:
    """Train every encoder of ``job.model`` alone with its own head (see the module docstring); returns
    the stage's history (``stage`` ``branches``) and leaves each encoder at its best epoch's weights."""
    if getattr(job.model, "aux_heads", None) is None:
        raise MmdxError("the staged strategy needs a head per encoder; build the model with aux_heads=True")
    if job.dist is not None and job.dist.distributed:
        raise MmdxError(
            "train.strategy staged trains the encoders' own stage in one process; run it without "
            "torchrun, or choose train.strategy joint or ogm_ge for a distributed run"
        )
    finished = _load_finished(job)
    if finished is not None:
        return finished
    history = _BranchStage(job).run()
    _save_finished(job, history)
    return history
