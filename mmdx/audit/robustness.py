"""The robustness section: the model re-run on the evaluation split with its inputs degraded.

Three kinds of degradation, each against the intact inputs:

* **a modality removed** at test time for every case (the fusion masks it, as when it is missing);
* **image noise**: Gaussian noise of standard deviation ``sigma`` added to the intensity-normalised image
  (``[0, 1]`` spans the HU window), clipped back to ``[0, 1]``, on the cases that have an image;
* **tabular missingness**: a random ``fraction`` of each case's observed vital signs and lab values made
  missing (value 0, missing indicator 1) -- as the normaliser encodes a value that was never measured. A
  case left with no observed value loses its tabular modality, as validation would have decided. Numeric
  and categorical case columns (age, sex, site) are left alone: they are demographics, not measurements.

Every random draw comes from a generator seeded by ``(seed, degradation, level, case)``, so the section is
reproducible and independent of batching. AUROC is given with a stratified bootstrap interval and its change
from the intact inputs with a paired bootstrap interval (both models on the same resampled cases).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from mmdx.audit.sections import (
    AUDIT_SECTIONS,
    AuditInputs,
    Column,
    Section,
    SectionSpec,
    SectionUnavailable,
    evaluation_arrays,
    labelled_split,
)
from mmdx.bundle import Bundle
from mmdx.data.dataset import MultimodalDataset
from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES, Keys, Modality
from mmdx.metrics import auroc, brier, operating_point_metrics
from mmdx.statistics import bootstrap_ci, paired_bootstrap_difference

DEFAULT_NOISE_LEVELS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
DEFAULT_MISSINGNESS_LEVELS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
#: re-run logits further than ``atol + rtol * |logit|`` from predictions.parquet mean that the cohort, the
#: preprocessing code or the model changed since 'mmdx evaluate' (float32 round-off is orders smaller)
REPRODUCTION_ATOL = 1e-4
REPRODUCTION_RTOL = 1e-4
#: a branch whose own head reaches at least this AUROC ...
UNDER_USED_ALONE = 0.6
#: ... while the fused model loses less than this when the modality is removed is flagged as under-used
UNDER_USED_LOST = 0.01

_IMAGE = MODALITIES.index(Modality.IMAGE)
_TABULAR = MODALITIES.index(Modality.TABULAR)


class Degradation(StrEnum):
    INTACT = "intact"
    MODALITY_REMOVED = "modality_removed"
    IMAGE_NOISE = "image_noise"
    TABULAR_MISSINGNESS = "tabular_missingness"


@dataclass(frozen=True)
class Perturbation:
    """One test-time condition: ``level`` is the noise ``sigma`` or the missing fraction, 0 otherwise."""

    kind: Degradation
    level: float = 0.0
    modality: Modality | None = None

    @property
    def label(self) -> str:
        if self.kind is Degradation.MODALITY_REMOVED:
            return f"{self.modality} removed"
        if self.kind is Degradation.IMAGE_NOISE:
            return f"image noise sigma={self.level:g}"
        if self.kind is Degradation.TABULAR_MISSINGNESS:
            return f"{self.level:.0%} of tabular values missing"
        return "intact inputs"


def check_levels(levels: Sequence[float], name: str) -> tuple[float, ...]:
    """``levels`` sorted without repeats, each checked to lie in (0, 1] (a noise standard deviation in units
    of the intensity range, or a fraction); raises :class:`MmdxError` naming the first bad one."""
    out = []
    for level in levels:
        value = float(level)
        if not (np.isfinite(value) and 0.0 < value <= 1.0):
            raise MmdxError(f"{name} levels must be > 0 and <= 1; received {level!r}")
        out.append(value)
    return tuple(sorted(set(out)))


def perturbations(
    modalities: Sequence[str], noise_levels: Sequence[float], missingness_levels: Sequence[float]
) -> list[Perturbation]:
    """The conditions for a model reading ``modalities``: intact first, then each modality removed, image
    noise (when the model reads images) and tabular missingness (when it reads vital signs and labs)."""
    noise = check_levels(noise_levels, "image noise")
    missing = check_levels(missingness_levels, "tabular missingness")
    read = [m for m in MODALITIES if m.value in modalities]
    out = [Perturbation(Degradation.INTACT)]
    out += [Perturbation(Degradation.MODALITY_REMOVED, modality=m) for m in read]
    if Modality.IMAGE in read:
        out += [Perturbation(Degradation.IMAGE_NOISE, s) for s in noise]
    if Modality.TABULAR in read:
        out += [Perturbation(Degradation.TABULAR_MISSINGNESS, f) for f in missing]
    return out


def add_image_noise(image: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """``image`` ``[1, *spatial]`` in [0, 1] plus N(0, sigma^2) noise per voxel, clipped to [0, 1]."""
    noise = torch.randn(image.shape, generator=generator, dtype=image.dtype) * sigma
    return (image + noise).clamp_(0.0, 1.0)


def drop_tabular_values(
    values: torch.Tensor, missing: torch.Tensor, n_features: int, fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Make ``round(fraction * k)`` of the ``k`` observed features among the first ``n_features`` columns
    missing (value 0, indicator 1), chosen uniformly at random.

    ``values``, ``missing``: ``[F]`` normalised values and missing indicators of one case. Returns the new
    pair and the number of features still observed.
    """
    values, missing = values.clone(), missing.clone()
    observed = torch.nonzero(missing[:n_features] == 0).flatten()
    k = int(round(fraction * observed.numel()))
    if k:
        chosen = observed[torch.randperm(observed.numel(), generator=generator)[:k]]
        values[chosen] = 0.0
        missing[chosen] = 1.0
    return values, missing, int(observed.numel()) - k


class PerturbedDataset(Dataset):
    """A view of a :class:`~mmdx.data.dataset.MultimodalDataset` with one :class:`Perturbation` applied to
    each sample; sample ``i`` is perturbed by a generator seeded from ``(seed, perturbation, i)``."""

    def __init__(
        self, base: MultimodalDataset, perturbation: Perturbation, n_features: int, seed: int
    ) -> None:
        self.base = base
        self.perturbation = perturbation
        self.n_features = n_features
        self.seed = seed
        self._kind = list(Degradation).index(perturbation.kind)

    def __len__(self) -> int:
        return len(self.base)

    def _generator(self, index: int) -> torch.Generator:
        level = int(round(self.perturbation.level * 1_000_000))
        state = np.random.SeedSequence([self.seed, self._kind, level, index]).generate_state(2, np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def __getitem__(self, index: int) -> dict:
        sample = dict(self.base[index])
        kind = self.perturbation.kind
        presence = sample[Keys.PRESENCE].clone()
        if kind is Degradation.IMAGE_NOISE and Keys.IMAGE in sample and presence[_IMAGE]:
            sample[Keys.IMAGE] = add_image_noise(
                sample[Keys.IMAGE], self.perturbation.level, self._generator(index)
            )
        elif kind is Degradation.TABULAR_MISSINGNESS and presence[_TABULAR]:
            values, missing, left = drop_tabular_values(
                sample[Keys.TABULAR],
                sample[Keys.TABULAR_MISSING],
                self.n_features,
                self.perturbation.level,
                self._generator(index),
            )
            sample[Keys.TABULAR], sample[Keys.TABULAR_MISSING] = values, missing
            if left == 0 and self.n_features > 0:
                presence[_TABULAR] = False
        sample[Keys.PRESENCE] = presence
        return sample


def _affected(table_presence: np.ndarray, perturbation: Perturbation) -> int:
    """Cases whose inputs the perturbation changes: those that have the modality it acts on."""
    if perturbation.kind is Degradation.INTACT:
        return 0
    if perturbation.kind is Degradation.MODALITY_REMOVED:
        column = MODALITIES.index(Modality(perturbation.modality))
    else:
        column = _IMAGE if perturbation.kind is Degradation.IMAGE_NOISE else _TABULAR
    return int(np.count_nonzero(table_presence[:, column]))


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def robustness_section(
    bundle: Bundle,
    cohort_dir: str | Path | None,
    frame: pd.DataFrame,
    split: str,
    *,
    noise_levels: Sequence[float] = DEFAULT_NOISE_LEVELS,
    missingness_levels: Sequence[float] = DEFAULT_MISSINGNESS_LEVELS,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    batch_size: int = 64,
    workers: int = 1,
    threads: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Re-run the bundle's model on the labelled cases of ``split`` under every :func:`perturbations`
    condition; AUROC, its change from the intact inputs, Brier score and the operating point of each.

    ``cohort_dir``: the cohort to read the inputs from (default: the one recorded in the bundle's card);
    when it is not reachable the section is not available. ``threads``: torch intra-op threads for the
    re-runs (restored afterwards; None leaves torch's setting).
    """
    from mmdx.predict import predict_with_removed, prepare_inputs  # validation, image decoding: only here

    evaluation_arrays(frame, split)
    recorded = (bundle.card.get("cohort") or {}).get("path")
    chosen = cohort_dir if cohort_dir is not None else recorded
    if chosen is None or not Path(chosen).is_dir():
        raise SectionUnavailable(
            f"the cohort {chosen or '(none recorded)'} is not reachable, so the model cannot be re-run on "
            "degraded inputs; pass --cohort DIR"
        )
    conditions = perturbations(bundle.preprocessing.modalities, noise_levels, missingness_levels)
    inputs = prepare_inputs(bundle, chosen, workers=workers)
    part = labelled_split(frame, split)
    position = {case_id: i for i, case_id in enumerate(inputs.table.case_ids)}
    absent = [c for c in part[Keys.CASE_ID] if c not in position]
    if absent:
        raise SectionUnavailable(
            f"{len(absent)} case(s) of split '{split}' in predictions.parquet are not usable in {chosen} any "
            "more (the cohort changed since 'mmdx evaluate'); run 'mmdx evaluate RUN' again"
        )
    table = inputs.table.subset([position[c] for c in part[Keys.CASE_ID]])
    base = MultimodalDataset(table, bundle.preprocessing, inputs.cache)
    y = part[Keys.LABEL].to_numpy(dtype=np.float64).astype(np.int64)
    threshold = bundle.threshold
    n_features = len(bundle.preprocessing.features)
    rows: list[dict[str, Any]] = []
    intact_p: np.ndarray | None = None
    intact: Any = None
    reproduction = None
    with (
        _torch_threads(threads),
        tqdm(total=len(conditions), desc="robustness", unit="condition", disable=not progress) as bar,
    ):
        for perturbation in conditions:
            bar.set_postfix_str(perturbation.label)
            removed = perturbation.modality if perturbation.kind is Degradation.MODALITY_REMOVED else None
            dataset: Dataset = base
            if perturbation.kind in (Degradation.IMAGE_NOISE, Degradation.TABULAR_MISSINGNESS):
                dataset = PerturbedDataset(base, perturbation, n_features, seed)
            predictions = predict_with_removed(bundle.model, dataset, removed, batch_size)
            p = np.asarray(bundle.calibration.transform(predictions.logits), dtype=np.float64)
            row: dict[str, Any] = {
                "kind": perturbation.kind.value,
                "modality": perturbation.modality.value if perturbation.modality else None,
                "level": perturbation.level,
                "label": perturbation.label,
                "n": int(y.size),
                "n_affected": _affected(table.presence, perturbation),
                "auroc": bootstrap_ci(auroc, y, p, n_resamples, alpha, seed=seed).to_dict(),
                "brier": brier(y, p),
            }
            point = operating_point_metrics(y, p, threshold)
            row["sensitivity"] = point["sensitivity"]
            row["specificity"] = point["specificity"]
            if perturbation.kind is Degradation.INTACT:
                intact_p, intact = p, predictions
                expected = part[Column.LOGIT].to_numpy(dtype=np.float64)
                difference = np.abs(predictions.logits.astype(np.float64) - expected)
                reproduction = {
                    "max_abs_logit_difference": float(difference.max()),
                    "atol": REPRODUCTION_ATOL,
                    "rtol": REPRODUCTION_RTOL,
                    "reproduced": bool(
                        np.all(difference <= REPRODUCTION_ATOL + REPRODUCTION_RTOL * np.abs(expected))
                    ),
                }
                row["auroc_change"] = None
                row["mean_abs_probability_change"] = 0.0
            else:
                assert intact_p is not None  # the intact condition always comes first
                row["auroc_change"] = paired_bootstrap_difference(
                    auroc, y, p, intact_p, n_resamples, alpha, seed=seed
                ).to_dict()
                row["mean_abs_probability_change"] = float(np.mean(np.abs(p - intact_p)))
            rows.append(row)
            bar.update(1)
    degraded = [
        r for r in rows if r["auroc_change"] is not None and r["auroc_change"]["estimate"] is not None
    ]
    worst = min(degraded, key=lambda r: r["auroc_change"]["estimate"], default=None)
    return {
        "split": split,
        "cohort": str(chosen),
        "alpha": alpha,
        "n_resamples": n_resamples,
        "seed": seed,
        "threshold": threshold,
        "n": int(y.size),
        "modalities": list(bundle.preprocessing.modalities),
        "noise_levels": list(check_levels(noise_levels, "image noise")),
        "missingness_levels": list(check_levels(missingness_levels, "tabular missingness")),
        "noise_method": (
            "Gaussian noise of standard deviation sigma added to the intensity-normalised image ([0, 1] spans "
            "the HU window) of each case with an image, clipped to [0, 1]"
        ),
        "missingness_method": (
            "a random fraction of each case's observed vital signs and lab values set missing (value 0, "
            "missing indicator 1); a case left with none loses its tabular modality; demographic columns kept"
        ),
        "reproduction": reproduction,
        "conditions": rows,
        "branches": branch_contributions(bundle, y, intact, rows, n_resamples, alpha, seed),
        "largest_auroc_drop": (
            {"label": worst["label"], "change": worst["auroc_change"]["estimate"]}
            if worst is not None
            else None
        ),
    }


def _lost(change: dict[str, Any] | None) -> dict[str, Any] | None:
    """The AUROC lost (intact minus removed) from a removal row's ``auroc_change`` (removed minus intact)."""
    if change is None:
        return None
    flip = {
        k: (None if v is None else 0.0 - v) for k, v in change.items() if k in ("estimate", "low", "high")
    }
    return {**change, "estimate": flip["estimate"], "low": flip["high"], "high": flip["low"]}


def branch_contributions(
    bundle: Bundle,
    y: np.ndarray,
    intact: Any,
    rows: list[dict[str, Any]],
    n_resamples: int,
    alpha: float,
    seed: int,
) -> list[dict[str, Any]]:
    """Per modality of the model: the AUROC of its encoder's own head on the cases that have it (``alone``,
    ``None`` for a model without such heads), the fused AUROC lost when it is removed (``lost_when_removed``,
    from the removal condition), its own validation AUROC recorded at training, and ``under_used``: alone at
    least :data:`UNDER_USED_ALONE` (and its interval above chance) while removing it costs the fused model
    less than :data:`UNDER_USED_LOST`."""
    recorded = ((bundle.card.get("training") or {}).get("branches")) or {}
    removal = {r["modality"]: r for r in rows if r["kind"] == Degradation.MODALITY_REMOVED.value}
    aux = getattr(intact, "aux_logits", None)
    out = []
    for modality in bundle.preprocessing.modalities:
        column = MODALITIES.index(Modality(modality))
        alone = None
        if aux is not None:
            have = intact.presence[:, column]
            if have.any() and len(np.unique(y[have])) == 2:
                own = 0.5 * (1.0 + np.tanh(aux[have, column].astype(np.float64) / 2.0))
                alone = bootstrap_ci(auroc, y[have], own, n_resamples, alpha, seed=seed).to_dict()
        lost = _lost((removal.get(modality) or {}).get("auroc_change"))
        under_used = (
            alone is not None
            and lost is not None
            and alone["estimate"] is not None
            and lost["estimate"] is not None
            and alone["estimate"] >= UNDER_USED_ALONE
            and (alone["low"] or 0.0) > 0.5
            and lost["estimate"] < UNDER_USED_LOST
        )
        out.append(
            {
                "modality": str(modality),
                "n_with_modality": int(intact.presence[:, column].sum()),
                "alone": alone,
                "lost_when_removed": lost,
                "own_val_auroc": (recorded.get(str(modality)) or {}).get("own_val_auroc"),
                "under_used": bool(under_used),
            }
        )
    return out


def _build(inputs: AuditInputs) -> dict[str, Any]:
    o = inputs.options
    if not o.robustness:
        raise SectionUnavailable("skipped on request (--no-robustness)")
    return robustness_section(
        inputs.bundle,
        inputs.cohort_dir,
        inputs.frame,
        o.split,
        noise_levels=o.noise_levels,
        missingness_levels=o.missingness_levels,
        n_resamples=o.n_resamples,
        alpha=o.alpha,
        seed=o.seed,
        batch_size=o.batch_size,
        workers=o.workers,
        threads=o.threads,
        progress=inputs.progress,
    )


AUDIT_SECTIONS.register(SectionSpec(Section.ROBUSTNESS, "robustness (re-running the model)", _build))
