"""Batched prediction over a dataset, optionally with modalities removed at test time; with it, the
validation AUROC of each encoder's own head (:func:`branch_aurocs`)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmdx.data.dataset import collate
from mmdx.keys import MODALITIES, Keys, Modality
from mmdx.metrics import auroc
from mmdx.training.distributed import autocast


@dataclass
class Predictions:
    """Raw model outputs for a list of cases (before calibration)."""

    case_ids: list[str]
    labels: np.ndarray  # [N] float, NaN = unlabelled
    logits: np.ndarray  # [N]
    gates: np.ndarray  # [N, M]
    presence: np.ndarray  # [N, M] bool, as seen by the model (after any removal)
    seconds: float = 0.0
    aux_logits: np.ndarray | None = None  # [N, M] logits of the unimodal heads, None without them


def to_device(batch: dict, device: torch.device) -> dict:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
    }


def remove_modalities(presence: torch.Tensor, removed: Iterable[Modality | str]) -> torch.Tensor:
    """``presence [B, M]`` with the given modalities marked absent for every case."""
    out = presence.clone()
    for modality in removed:
        out[:, MODALITIES.index(Modality(modality))] = False
    return out


@torch.no_grad()
def predict_dataset(
    model: torch.nn.Module,
    dataset: Dataset,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    workers: int = 0,
    remove: Iterable[Modality | str] = (),
    precision: str = "auto",
) -> Predictions:
    """Run the model in eval mode over ``dataset``; ``remove`` masks modalities for every case."""
    device = torch.device(device)
    removed = list(remove)
    was_training = model.training
    model.eval()
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate
    )
    ids: list[str] = []
    labels, logits, gates, presence, aux = [], [], [], [], []
    start = time.perf_counter()
    for batch in loader:
        batch = to_device(batch, device)
        if removed:
            batch[Keys.PRESENCE] = remove_modalities(batch[Keys.PRESENCE], removed)
        with autocast(device, precision):
            out = model(batch)
        ids.extend(batch[Keys.CASE_ID])
        labels.append(batch[Keys.LABEL].float().cpu().numpy())
        logits.append(out.logits.float().cpu().numpy())
        gates.append(out.gates.float().cpu().numpy())
        presence.append(batch[Keys.PRESENCE].cpu().numpy())
        if getattr(out, "aux_logits", None) is not None:
            aux.append(out.aux_logits.float().cpu().numpy())
    model.train(was_training)
    n_mod = len(MODALITIES)
    return Predictions(
        case_ids=ids,
        labels=np.concatenate(labels) if labels else np.zeros(0),
        logits=np.concatenate(logits) if logits else np.zeros(0),
        gates=np.concatenate(gates) if gates else np.zeros((0, n_mod)),
        presence=np.concatenate(presence).astype(bool) if presence else np.zeros((0, n_mod), dtype=bool),
        seconds=time.perf_counter() - start,
        aux_logits=np.concatenate(aux) if aux and len(aux) == len(logits) else None,
    )


def branch_aurocs(predictions: Predictions) -> dict[str, float]:
    """Validation AUROC of each modality's own head: over the labelled cases that have the modality, the
    AUROC of its unimodal head's logit. Empty without heads; NaN where those cases hold one class only."""
    if predictions.aux_logits is None:
        return {}
    out: dict[str, float] = {}
    labelled = ~np.isnan(predictions.labels)
    for column, modality in enumerate(MODALITIES):
        chosen = labelled & predictions.presence[:, column]
        if not chosen.any():
            continue
        y = predictions.labels[chosen]
        score = predictions.aux_logits[chosen, column]
        out[str(modality)] = (
            auroc(y, 0.5 * (1.0 + np.tanh(score / 2.0))) if len(np.unique(y)) == 2 else float("nan")
        )
    return out
