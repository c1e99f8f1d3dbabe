"""Training strategies: how the encoders and the fusion of a multimodal classifier are trained.

Trained jointly on one fused loss, a multimodal model tends to lean on whichever modality is learned
fastest (here the tabular values and the notes) and stops, by early stopping on the fused score, before
the slower encoder (the image) has learned what it can on its own: modality competition, or imbalance.
The strategies, chosen by ``train.strategy`` and registered in :data:`STRATEGIES`:

- ``joint``: everything trained together on the fused loss plus the auxiliary unimodal losses
  (:class:`~mmdx.training.trainer.Trainer`; the behaviour before strategies existed, unchanged).
- ``staged``: each encoder first trains alone with its own head, with its own early stopping on its own
  validation AUROC (:mod:`mmdx.training.staged`); the fusion then trains on top with the encoders and their
  heads fine-tuned at ``train.staged.finetune_lr_scale`` times the learning rate.
- ``ogm_ge``: joint training with on-the-fly gradient modulation and generalisation enhancement (after Peng
  et al., CVPR 2022): each step, an encoder whose own head is more confident on the true labels than the
  others' heads has its gradient scaled down and Gaussian noise added (:class:`GradientModulation`).

Orthogonal to the strategy, ``train.early_stopping: branches`` keeps training while any encoder's own head
still improves its validation AUROC. Every strategy records each encoder's own validation AUROC per epoch.
Before any strategy, ``train.pretrain: contrastive`` may warm-start the encoders by cross-modal contrastive
pretraining on the training split (:mod:`mmdx.training.contrastive`; the train workflow runs it).

To add a strategy, write its ``fit`` function here (or in its own module of ``mmdx/training/``) and register
a :class:`StrategySpec` below the others; the train workflow, the config key and the benchmarks pick it up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from mmdx.config import LoaderConfig, TrainConfig
from mmdx.errors import ConfigError
from mmdx.keys import MODALITIES, Keys
from mmdx.registry import Registry
from mmdx.training.augment import build_augmentation
from mmdx.training.distributed import DistContext
from mmdx.training.trainer import FitResult, Trainer, best_branch_scores


@dataclass(frozen=True)
class TrainingJob:
    """Everything a strategy trains with: the model (with a head per encoder when the strategy needs
    them), the ``train`` and ``data.loader`` sections, the labelled training and validation datasets, the
    run directory, the seed, the process's place in a distributed run, progress bars, the positive-class
    weight and whether to resume."""

    model: torch.nn.Module
    config: TrainConfig
    loader: LoaderConfig
    train_set: Dataset
    val_set: Dataset
    out_dir: Path
    seed: int = 0
    dist: DistContext | None = None
    progress: bool = True
    pos_weight: float | None = None
    resume: bool = False


@dataclass(frozen=True)
class StrategySpec:
    """One training strategy: its ``train.strategy`` name, the function that trains a :class:`TrainingJob`
    and returns the :class:`~mmdx.training.trainer.FitResult` (best weights in the trainer's
    ``best.safetensors``), a description, and whether it needs a unimodal head per encoder (trained with
    a positive ``train.aux_loss_weight``)."""

    name: str
    fit: Callable[[TrainingJob], FitResult]
    description: str
    branch_heads: bool = False


STRATEGIES: Registry[StrategySpec] = Registry("training strategy")


def trainer_for(job: TrainingJob, **kwargs: Any) -> Trainer:
    """A :class:`~mmdx.training.trainer.Trainer` for ``job`` (with ``train.augment``), plus ``kwargs``."""
    return Trainer(
        job.model,
        job.config,
        job.loader,
        job.train_set,
        job.val_set,
        job.out_dir,
        seed=job.seed,
        dist=job.dist,
        progress=job.progress,
        pos_weight=job.pos_weight,
        augment=build_augmentation(job.config.augment),
        **kwargs,
    )


def fit_joint(job: TrainingJob) -> FitResult:
    """Encoders and fusion together, on the fused loss plus the auxiliary unimodal losses."""
    return trainer_for(job).fit(resume=job.resume)


# ------------------------------------------------------------------------------------------------------
class GradientModulation:
    """OGM-GE as a step hook of the trainer: between the backward pass and the optimiser step, measure each
    encoder's confidence on the batch as the mean probability its own head gives the true label (over the
    cases that have the modality), ``s_m``; with ``rho_m = s_m / mean(s_other)``, an encoder ahead of the
    others (``rho_m > 1``) has its gradient multiplied by ``1 - tanh(alpha * rho_m)`` and, with ``noise``,
    Gaussian noise of the gradient's own standard deviation added (the generalisation enhancement).

    ``sums`` and ``steps``: the coefficients summed per modality over the steps so far (their mean says how
    much each encoder was slowed). The whole gradient of an encoder is scaled, its own head's loss included.
    """

    def __init__(self, alpha: float, noise: bool = True) -> None:
        self.alpha = float(alpha)
        self.noise = bool(noise)
        self.sums: dict[str, float] = {}
        self.steps = 0

    def confidence(self, aux_logits: torch.Tensor, labels: torch.Tensor, presence: torch.Tensor) -> dict:
        """Per present modality column, the mean probability of the true label under its own head."""
        prob = torch.sigmoid(aux_logits.detach().float())
        correct = torch.where(labels[:, None] > 0.5, prob, 1.0 - prob)
        out = {}
        for column, modality in enumerate(MODALITIES):
            chosen = presence[:, column]
            if chosen.any():
                out[str(modality)] = float(correct[chosen, column].mean())
        return out

    def modulation(self, scores: dict[str, float]) -> dict[str, float]:
        """The coefficient of each modality's gradient given the confidences ``scores``."""
        out = {}
        for modality, score in scores.items():
            others = [s for m, s in scores.items() if m != modality]
            if not others or sum(others) <= 0:
                out[modality] = 1.0
                continue
            rho = score / (sum(others) / len(others))
            out[modality] = 1.0 - math.tanh(self.alpha * rho) if rho > 1.0 else 1.0
        return out

    def __call__(
        self,
        model: torch.nn.Module,
        output: Any,
        batch: dict,
        labels: torch.Tensor,
        generator: torch.Generator,
    ) -> None:
        if output.aux_logits is None:
            return
        coefficients = self.modulation(self.confidence(output.aux_logits, labels, batch[Keys.PRESENCE]))
        for modality, k in coefficients.items():
            self.sums[modality] = self.sums.get(modality, 0.0) + k
            if k >= 1.0:
                continue
            for param in model.encoders[modality].parameters():
                if param.grad is None:
                    continue
                param.grad.mul_(k)
                if self.noise and param.grad.numel() > 1:
                    std = float(param.grad.std())
                    noise = torch.randn(param.grad.shape, generator=generator) * (std + 1e-8)
                    param.grad.add_(noise.to(param.grad.device, param.grad.dtype))
        self.steps += 1


def fit_gradient_modulation(job: TrainingJob) -> FitResult:
    """Joint training with OGM-GE gradient modulation (``train.modulation``)."""
    _require_heads(job, "ogm_ge")
    hook = GradientModulation(job.config.modulation.alpha, job.config.modulation.noise)
    return trainer_for(job, step_hook=hook).fit(resume=job.resume)


def _require_heads(job: TrainingJob, name: str) -> None:
    if getattr(job.model, "aux_heads", None) is None or job.config.aux_loss_weight <= 0:
        raise ConfigError(
            f"train.strategy {name} reads each encoder's own head, which train.aux_loss_weight 0 leaves "
            "untrained; set train.aux_loss_weight above 0 (e.g. 0.5) or choose train.strategy joint"
        )


# ------------------------------------------------------------------------------------------------------
def encoder_parameter_groups(model: torch.nn.Module, finetune_lr_scale: float) -> list[dict[str, Any]]:
    """Two optimiser groups: the fusion at the full learning rate, the encoders and their heads at
    ``finetune_lr_scale`` times it."""
    branch, fusion = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (branch if name.startswith(("encoders.", "aux_heads.")) else fusion).append(param)
    groups = [{"params": fusion, "lr_scale": 1.0}]
    if branch:
        groups.append({"params": branch, "lr_scale": float(finetune_lr_scale)})
    return groups


def fit_staged(job: TrainingJob) -> FitResult:
    """Each encoder alone with its own head and early stopping, then the fusion on top (encoders fine-tuned
    at a lower learning rate); the history holds both stages (``stage`` ``branches`` then ``fused``)."""
    from mmdx.training.staged import fit_branches

    branch_history = fit_branches(job)
    groups = encoder_parameter_groups(job.model, job.config.staged.finetune_lr_scale)
    fused = trainer_for(job, param_groups=groups).fit(resume=job.resume)
    history = [*branch_history, *fused.history]
    return replace(fused, history=history, branches=best_branch_scores(history))


STRATEGIES.register(StrategySpec("joint", fit_joint, "encoders and fusion trained together (the default)"))
STRATEGIES.register(
    StrategySpec(
        "staged",
        fit_staged,
        "each encoder alone with its own head and early stopping, then the fusion on top with the encoders "
        "fine-tuned at a lower learning rate",
        branch_heads=True,
    )
)
STRATEGIES.register(
    StrategySpec(
        "ogm_ge",
        fit_gradient_modulation,
        "joint training with on-the-fly gradient modulation and generalisation enhancement (OGM-GE)",
        branch_heads=True,
    )
)


def fit_with_strategy(job: TrainingJob) -> FitResult:
    """Train ``job`` with the strategy ``job.config.strategy`` names."""
    spec = STRATEGIES.get(job.config.strategy)
    result = spec.fit(job)
    return replace(result, strategy=spec.name)
