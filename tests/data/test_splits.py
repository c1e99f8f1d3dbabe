"""Patient-level splits: no patient in two splits, proportions respected, deterministic."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdx.data.splits import patient_level_split


@settings(max_examples=60, deadline=None)
@given(
    patients=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=200),
    seed=st.integers(min_value=0, max_value=10_000),
    labels_seed=st.integers(min_value=0, max_value=1),
)
def test_no_patient_in_two_splits(patients: list[int], seed: int, labels_seed: int) -> None:
    ids = [f"p{p}" for p in patients]
    labels = [float((p + labels_seed) % 3 == 0) for p in patients]
    splits = patient_level_split(ids, labels, seed=seed)
    seen: dict[str, set[str]] = {}
    for pid, split in zip(ids, splits, strict=True):
        seen.setdefault(pid, set()).add(split)
    assert all(len(s) == 1 for s in seen.values())
    assert set(splits) <= {"train", "val", "test"}


def test_fractions_and_stratification() -> None:
    ids = [f"p{i}" for i in range(2000)]
    labels = [float(i % 4 == 0) for i in range(2000)]
    splits = patient_level_split(ids, labels, seed=3)
    counts = Counter(splits)
    assert counts["train"] == pytest.approx(1400, abs=2)
    assert counts["test"] == pytest.approx(300, abs=2)
    for name in ("train", "val", "test"):
        prevalence = sum(lab for lab, s in zip(labels, splits, strict=True) if s == name) / counts[name]
        assert prevalence == pytest.approx(0.25, abs=0.01)


def test_deterministic_and_seed_dependent() -> None:
    ids = [f"p{i}" for i in range(100)]
    assert patient_level_split(ids, seed=1) == patient_level_split(ids, seed=1)
    assert patient_level_split(ids, seed=1) != patient_level_split(ids, seed=2)


def test_bad_fractions() -> None:
    with pytest.raises(ValueError, match="fractions"):
        patient_level_split(["a"], fractions={"train": -1, "val": 0, "test": 0})
