"""Cross-modal contrastive pretraining (``train.pretrain: contrastive``): warm-start the encoders before the
training strategy runs.

The image and the notes of one case describe the same patient, so an encoder can learn from the other
modality without labels: a small projection head (a two-layer MLP) maps each paired encoder's pooled vector
to ``train.contrastive.projection_dim`` dimensions, and a symmetric InfoNCE loss (as in CLIP, Radford et al.
2021) pulls the projections of the same case together and pushes those of the other cases of the batch
apart, at temperature ``train.contrastive.temperature``. The pairs are image↔text and, with
``train.contrastive.include_tabular``, image↔values and text↔values; a case lacking a modality drops out
of that modality's pairs only.

What it reads: every case of the **training split** that has both modalities of at least one pair, with or
without a label (labels are never read). A share of them (``train.contrastive.held_out``, drawn with the
run's seed) is kept aside; its contrastive loss after each epoch decides when to stop (after
``train.contrastive.patience`` epochs without a lower one) and which epoch's encoder weights are kept. The
validation and test splits are never seen, so the validation split stays untouched for the strategy's
early stopping and the calibration.

What it leaves: the encoders at the best held-out epoch's weights. The projection heads live only here and
are discarded; the model gains no parameter. :func:`pretrain_encoders` writes the pretrained encoders'
weights and the record of the pretraining to the two paths it is given (the run directory's
``checkpoints/pretrained_encoders.safetensors`` and ``checkpoints/pretrain.json``); a resumed run that finds
both loads them and does not pretrain again. Runs in one process.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from mmdx.config import LoaderConfig, TrainConfig
from mmdx.data.dataset import MultimodalDataset, collate
from mmdx.errors import ConfigError, MmdxError
from mmdx.keys import MODALITIES, Keys, Modality
from mmdx.training.augment import build_augmentation
from mmdx.training.inference import to_device

log = logging.getLogger(__name__)

METHOD = "contrastive"
#: every pair the loss may use, in this order; pairs with the tabular encoder need ``include_tabular``
PAIRS: tuple[tuple[Modality, Modality], ...] = (
    (Modality.IMAGE, Modality.TEXT),
    (Modality.IMAGE, Modality.TABULAR),
    (Modality.TEXT, Modality.TABULAR),
)
#: the inputs of each modality in a collated batch
_INPUT_KEYS = {
    Modality.IMAGE: (Keys.IMAGE,),
    Modality.TABULAR: (Keys.TABULAR, Keys.TABULAR_MISSING, Keys.CATEGORICAL),
    Modality.TEXT: (Keys.TEXT_IDS, Keys.TEXT_MASK),
}
#: fewest training cases with a pair that pretraining accepts (a held-out part needs a few of them)
MIN_CASES = 10


class PretrainingDiverged(MmdxError):
    """The contrastive loss became NaN or infinite."""


def pair_name(pair: tuple[Modality, Modality]) -> str:
    """``image-text``, ``image-tabular``, ``text-tabular``."""
    return f"{pair[0]}-{pair[1]}"


def modality_pairs(modalities: Iterable[str], include_tabular: bool) -> list[tuple[Modality, Modality]]:
    """The pairs of :data:`PAIRS` a model with ``modalities`` can pretrain on."""
    have = {str(m) for m in modalities}
    return [
        pair
        for pair in PAIRS
        if {str(pair[0]), str(pair[1])} <= have and (include_tabular or Modality.TABULAR not in pair)
    ]


def check_pretrain(config: TrainConfig, modalities: Iterable[str]) -> None:
    """Fail before training, in one line naming ``train.pretrain``, when a model with ``modalities`` has
    no pair of encoders for ``train.pretrain`` to pretrain."""
    if config.pretrain == "none":
        return
    modalities = [str(m) for m in modalities]
    if modality_pairs(modalities, config.contrastive.include_tabular):
        return
    raise ConfigError(
        f"train.pretrain {config.pretrain} pairs the image and text encoders (or either with the tabular "
        f"encoder when train.contrastive.include_tabular is true), but the model has only "
        f"{', '.join(modalities)}; add the missing encoder, set train.contrastive.include_tabular=true "
        "where the model has two encoders, or set train.pretrain=none"
    )


def info_nce(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """Symmetric InfoNCE of paired projections ``a [N, D]`` and ``b [N, D]`` (row ``i`` of each is the same
    case): the mean of the cross-entropies of picking ``b[i]`` for ``a[i]`` and ``a[i]`` for ``b[i]``
    among the ``N`` candidates, on cosine similarities divided by ``temperature``."""
    logits = nn.functional.normalize(a.float(), dim=-1) @ nn.functional.normalize(b.float(), dim=-1).T
    logits = logits / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target))


def retrieval_hits(a: Tensor, b: Tensor) -> int:
    """How many rows of ``a`` have their own row of ``b`` as the most similar (cosine), of ``N``."""
    similarity = nn.functional.normalize(a.float(), dim=-1) @ nn.functional.normalize(b.float(), dim=-1).T
    return int((similarity.argmax(dim=1) == torch.arange(a.shape[0], device=a.device)).sum())


class ProjectionHead(nn.Module):
    """A two-layer MLP from an encoder's pooled vector to the shared contrastive space."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        hidden = max(in_dim, out_dim)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@dataclass
class PretrainEpoch:
    """One epoch: mean training loss, the held-out loss and top-1 retrieval accuracy (within batches of
    ``data.loader.batch_size``, every pair pooled), seconds, and the held-out loss of projections that
    carry nothing (``held_out_chance``: the mean over the same batches and pairs of the log of the number
    of candidates), against which the held-out loss is read."""

    epoch: int
    train_loss: float
    held_out_loss: float
    held_out_accuracy: float
    seconds: float
    held_out_chance: float = math.nan


@dataclass
class PretrainResult:
    """What pretraining did, as recorded in ``training.json`` (``pretrain``).

    Attributes:
        method: ``contrastive``.
        cases: training-split cases used: ``train``, ``held_out`` and, among all of them, ``unlabelled``.
        pairs: per pair (``image-text``, ...), the cases having both modalities: ``train`` and ``held_out``.
        best_epoch: the epoch whose encoder weights were kept (lowest held-out loss).
        epochs_run, stopped: how many epochs ran, and why it stopped (``early_stopping`` or ``epochs``).
        history: one :class:`PretrainEpoch` per epoch.
    """

    method: str
    cases: dict[str, int]
    pairs: dict[str, dict[str, int]]
    best_epoch: int
    epochs_run: int
    stopped: str
    history: list[PretrainEpoch] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> PretrainResult:
        history = [PretrainEpoch(**h) for h in document.get("history", [])]
        return cls(**{**document, "history": history})


def encode_modality(model: nn.Module, batch: dict, modality: Modality, rows: Tensor) -> Tensor:
    """The encoder of ``modality`` on the cases ``rows`` (bool ``[B]``) of ``batch`` only, so that the
    placeholder inputs of cases lacking the modality never reach it (nor its batch statistics)."""
    inputs = {key: batch[key][rows] for key in _INPUT_KEYS[modality] if batch.get(key) is not None}
    return model.encode(inputs)[modality]


def split_held_out(
    presence: np.ndarray, pairs: list[tuple[Modality, Modality]], share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into ``presence [N, M]``) of the training and held-out cases: every case with at least
    one pair, a ``share`` of them (at least 2) held out at random with ``seed``."""
    has_pair = np.zeros(presence.shape[0], dtype=bool)
    for a, b in pairs:
        has_pair |= presence[:, MODALITIES.index(a)] & presence[:, MODALITIES.index(b)]
    eligible = np.flatnonzero(has_pair)
    if eligible.size < MIN_CASES:
        names = ", ".join(pair_name(p) for p in pairs)
        raise MmdxError(
            f"train.pretrain contrastive found {eligible.size} training cases with both modalities of a "
            f"pair ({names}); it needs at least {MIN_CASES}. Set train.pretrain=none"
        )
    order = np.random.default_rng(seed).permutation(eligible)
    n_held = max(2, int(round(share * eligible.size)))
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def _pair_counts(presence: np.ndarray, pairs: list[tuple[Modality, Modality]]) -> dict[str, int]:
    return {
        pair_name((a, b)): int((presence[:, MODALITIES.index(a)] & presence[:, MODALITIES.index(b)]).sum())
        for a, b in pairs
    }


class ContrastivePretraining:
    """The loop; see the module docstring. ``dataset``: the training split's cases (labelled or not)."""

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        loader: LoaderConfig,
        dataset: MultimodalDataset,
        seed: int = 0,
        device: torch.device | None = None,
    ) -> None:
        self.model = model
        self.cfg = config.contrastive
        self.grad_clip = config.grad_clip
        self.seed = seed
        self.device = device or torch.device("cpu")
        self.pairs = modality_pairs(model.modalities, self.cfg.include_tabular)
        self.modalities = [m for m in MODALITIES if any(m in pair for pair in self.pairs)]
        presence = np.asarray(dataset.table.presence, dtype=bool)
        train, held = split_held_out(presence, self.pairs, self.cfg.held_out, seed)
        labels = np.asarray(dataset.table.labels, dtype=np.float64)
        self.cases = {
            "train": int(train.size),
            "held_out": int(held.size),
            "unlabelled": int(np.isnan(labels[np.concatenate([train, held])]).sum()),
        }
        train_pairs, held_pairs = (
            _pair_counts(presence[train], self.pairs),
            _pair_counts(presence[held], self.pairs),
        )
        self.pair_counts = {n: {"train": train_pairs[n], "held_out": held_pairs[n]} for n in train_pairs}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 8_191 + 1)
            self.heads = nn.ModuleDict(
                {
                    str(m): ProjectionHead(model.encoders[str(m)].out_dim, self.cfg.projection_dim)
                    for m in self.modalities
                }
            )
        self.model.to(self.device)
        self.heads.to(self.device)
        self.params = [p for m in self.modalities for p in model.encoders[str(m)].parameters()]
        self.params += list(self.heads.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=self.cfg.lr, weight_decay=config.weight_decay)
        self.train_loader = DataLoader(
            Subset(dataset, train.tolist()),
            batch_size=loader.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed * 7_727 + 3),
            num_workers=loader.workers,
            collate_fn=collate,
            drop_last=train.size > loader.batch_size,
        )
        self.held_loader = DataLoader(
            Subset(dataset, held.tolist()), batch_size=loader.batch_size, shuffle=False, collate_fn=collate
        )
        self.augment = build_augmentation(config.augment)

    def batch_loss(self, batch: dict) -> tuple[Tensor | None, int, int]:
        """The mean InfoNCE over the batch's pairs (``None`` when no pair has two cases), and the top-1
        retrieval hits and trials (both directions) over those pairs."""
        presence = batch[Keys.PRESENCE]
        rows = {m: presence[:, MODALITIES.index(m)] for m in self.modalities}
        projected = {
            m: self.heads[str(m)](encode_modality(self.model, batch, m, rows[m]))
            for m in self.modalities
            if int(rows[m].sum()) >= 2
        }
        # position of each case among the cases that have the modality
        position = {m: torch.cumsum(rows[m].long(), 0) - 1 for m in projected}
        terms, hits, trials = [], 0, 0
        for a, b in self.pairs:
            if a not in projected or b not in projected:
                continue
            both = rows[a] & rows[b]
            if int(both.sum()) < 2:
                continue
            za, zb = projected[a][position[a][both]], projected[b][position[b][both]]
            terms.append(info_nce(za, zb, self.cfg.temperature))
            with torch.no_grad():
                hits += retrieval_hits(za, zb) + retrieval_hits(zb, za)
            trials += 2 * int(both.sum())
        return (torch.stack(terms).mean() if terms else None), hits, trials

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training cases; the mean loss."""
        torch.manual_seed(self.seed * 100_019 + epoch)
        if self.augment is not None:
            self.augment.set_random_state(self.seed * 4_817 + epoch * 19)
        self.model.train()
        self.heads.train()
        losses = []
        for batch in self.train_loader:
            batch = to_device(batch, self.device)
            if self.augment is not None and batch.get(Keys.IMAGE) is not None:
                batch[Keys.IMAGE] = self.augment(batch[Keys.IMAGE])
            loss, _, _ = self.batch_loss(batch)
            if loss is None:
                continue
            if not torch.isfinite(loss):
                raise PretrainingDiverged(
                    f"the contrastive pretraining loss became {loss.item()} at epoch {epoch + 1}; lower "
                    "train.contrastive.lr, raise train.contrastive.temperature, or check the inputs"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            self.optimizer.step()
            losses.append(float(loss.detach()))
        return float(np.mean(losses)) if losses else math.nan

    def chance(self, batch: dict) -> float:
        """The loss :meth:`batch_loss` gives ``batch`` when the projections carry nothing: the mean over
        its pairs of the log of the number of cases having both modalities (NaN without a pair)."""
        presence = batch[Keys.PRESENCE]
        counts = [
            int((presence[:, MODALITIES.index(a)] & presence[:, MODALITIES.index(b)]).sum())
            for a, b in self.pairs
        ]
        logs = [math.log(n) for n in counts if n >= 2]
        return float(np.mean(logs)) if logs else math.nan

    @torch.no_grad()
    def held_out(self) -> tuple[float, float, float]:
        """The held-out cases' mean loss, retrieval accuracy and chance loss (:meth:`chance`)."""
        self.model.eval()
        self.heads.eval()
        losses, chances, hits, trials = [], [], 0, 0
        for batch in self.held_loader:
            loss, batch_hits, batch_trials = self.batch_loss(to_device(batch, self.device))
            if loss is not None:
                losses.append(float(loss))
                chances.append(self.chance(batch))
                hits, trials = hits + batch_hits, trials + batch_trials
        if not losses:
            return math.nan, math.nan, math.nan
        return float(np.mean(losses)), (hits / trials if trials else math.nan), float(np.mean(chances))

    def _encoder_state(self) -> dict[str, Tensor]:
        prefixes = tuple(f"encoders.{m}." for m in self.modalities)
        return {
            k: v.detach().cpu().clone() for k, v in self.model.state_dict().items() if k.startswith(prefixes)
        }

    def run(self, progress: bool = False) -> PretrainResult:
        """Pretrain; leaves the encoders at the best held-out epoch's weights."""
        history: list[PretrainEpoch] = []
        best, best_epoch, bad, stopped = math.inf, 0, 0, "epochs"
        best_state = self._encoder_state()
        for epoch in range(self.cfg.epochs):
            started = time.perf_counter()
            train_loss = self.train_epoch(epoch)
            held_loss, accuracy, chance = self.held_out()
            seconds = time.perf_counter() - started
            history.append(PretrainEpoch(epoch + 1, train_loss, held_loss, accuracy, seconds, chance))
            if progress:
                log.info(
                    "contrastive pretraining epoch %d: loss %.4f, held-out loss %.4f (chance %.4f), "
                    "retrieval %.3f",
                    epoch + 1,
                    train_loss,
                    held_loss,
                    chance,
                    accuracy,
                )
            if not math.isnan(held_loss) and held_loss < best - 1e-6:
                best, best_epoch, bad = held_loss, epoch + 1, 0
                best_state = self._encoder_state()
            else:
                bad += 1
            if bad >= self.cfg.patience:
                stopped = "early_stopping"
                break
        self.model.load_state_dict(best_state, strict=False)
        return PretrainResult(
            METHOD, self.cases, self.pair_counts, best_epoch, len(history), stopped, history
        )


def pretrain_encoders(
    model: nn.Module,
    config: TrainConfig,
    loader: LoaderConfig,
    dataset: MultimodalDataset,
    weights: Path,
    record: Path,
    seed: int = 0,
    device: torch.device | None = None,
    resume: bool = False,
    progress: bool = False,
) -> PretrainResult:
    """Pretrain ``model``'s encoders on ``dataset`` (the training split's cases, labelled or not) and write
    the encoders' weights to ``weights`` and the :class:`PretrainResult` to ``record``. With ``resume`` and
    both files present, load them instead of pretraining again."""
    if resume and weights.is_file() and record.is_file():
        model.load_state_dict(load_file(str(weights)), strict=False)
        log.info("contrastive pretraining is already done (%s); continuing with the strategy", weights)
        return PretrainResult.from_dict(json.loads(record.read_text(encoding="utf-8")))
    result = ContrastivePretraining(model, config, loader, dataset, seed=seed, device=device).run(progress)
    prefixes = tuple(
        f"encoders.{a}."
        for pair in modality_pairs(model.modalities, config.contrastive.include_tabular)
        for a in pair
    )
    state = {
        k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k.startswith(prefixes)
    }
    weights.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    save_file(state, str(weights.with_suffix(".tmp")))
    weights.with_suffix(".tmp").replace(weights)
    record.write_text(json.dumps(result.to_dict(), indent=1), encoding="utf-8")
    return result
