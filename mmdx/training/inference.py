"""Batched prediction over a dataset, optionally with modalities removed at test time."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmdx.data.dataset import collate
from mmdx.keys import MODALITIES, Keys, Modality
from mmdx.training.distributed import autocast


@dataclass
class Predictions:
    """Raw model outputs for a list of cases (before temperature scaling)."""

    case_ids: list[str]
    labels: np.ndarray  # [N] float, NaN = unlabelled
    logits: np.ndarray  # [N]
    gates: np.ndarray  # [N, M]
    presence: np.ndarray  # [N, M] bool, as seen by the model (after any removal)
    seconds: float = 0.0


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
    labels, logits, gates, presence = [], [], [], []
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
    model.train(was_training)
    n_mod = len(MODALITIES)
    return Predictions(
        case_ids=ids,
        labels=np.concatenate(labels) if labels else np.zeros(0),
        logits=np.concatenate(logits) if logits else np.zeros(0),
        gates=np.concatenate(gates) if gates else np.zeros((0, n_mod)),
        presence=np.concatenate(presence).astype(bool) if presence else np.zeros((0, n_mod), dtype=bool),
        seconds=time.perf_counter() - start,
    )
