"""Patient-level train/val/test splits: all cases of one patient land in the same split."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS: Mapping[str, float] = {"train": 0.7, "val": 0.15, "test": 0.15}


def patient_level_split(
    patient_ids: Sequence[str],
    labels: Sequence[float | None] | None = None,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> list[str]:
    """Assign every case a split so that no patient appears in two splits.

    Patients are shuffled with ``seed`` and dealt to the splits in proportion to ``fractions``; when labels
    are given, patients with any positive case and the others are dealt separately, so that each split gets
    about the same prevalence (stratification at patient level).

    Returns one split name per input case, in input order.
    """
    total = sum(fractions.get(s, 0.0) for s in SPLITS)
    if total <= 0 or any(fractions.get(s, 0.0) < 0 for s in SPLITS):
        raise ValueError(f"split fractions must be non-negative and sum to > 0, got {dict(fractions)}")
    shares = np.array([fractions.get(s, 0.0) / total for s in SPLITS])
    patients = list(dict.fromkeys(patient_ids))
    positive: dict[str, bool] = dict.fromkeys(patients, False)
    if labels is not None:
        for pid, label in zip(patient_ids, labels, strict=True):
            if label is not None and label == label and float(label) == 1.0:
                positive[pid] = True
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for stratum in (True, False):
        members = sorted(p for p in patients if positive[p] == stratum)
        order = rng.permutation(len(members))
        bounds = np.round(np.cumsum(shares) * len(members)).astype(int)
        for rank, idx in enumerate(order):
            split_index = int(np.searchsorted(bounds, rank, side="right"))
            assignment[members[idx]] = SPLITS[min(split_index, len(SPLITS) - 1)]
    return [assignment[p] for p in patient_ids]


def split_fingerprint(case_ids: Iterable[str], splits: Iterable[str]) -> str:
    """SHA-256 of the sorted ``case_id:split`` lines: equal for two tables that split the same cases alike."""
    rows = sorted(f"{c}:{s}" for c, s in zip(case_ids, splits, strict=True))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()
