"""The names every part of mmdx agrees on.

A case travels through mmdx as a dict; its keys come from :class:`Keys` and the modalities from
:class:`Modality`, never from bare strings scattered through the code.
"""

from __future__ import annotations

from enum import StrEnum


class Modality(StrEnum):
    """The three input modalities, in the fixed order used by presence masks and gate vectors."""

    IMAGE = "image"
    TABULAR = "tabular"
    TEXT = "text"


#: Order of modalities along the last axis of ``presence`` ``[B, M]`` and ``gates`` ``[B, M]``.
MODALITIES: tuple[Modality, ...] = (Modality.IMAGE, Modality.TABULAR, Modality.TEXT)


class CheckVerdict(StrEnum):
    """The verdict of a check measured with an interval against a threshold (the model-randomisation test)."""

    PASSED = "passed"  # the whole interval on the passing side
    FAILED = "failed"  # the whole interval on the failing side
    NOT_RESOLVED = "not resolved"  # the interval reaches across the threshold: too few cases to tell


class Keys(StrEnum):
    """Keys of a sample dict (one case) and of a collated batch.

    Shapes are given for a batch of ``B`` cases; a single sample drops the leading ``B``.
    """

    CASE_ID = "case_id"  # list[str]
    PATIENT_ID = "patient_id"  # list[str]
    SPLIT = "split"  # list[str]
    LABEL = "label"  # [B] float32, 0/1; NaN when unlabelled
    IMAGE = "image"  # [B, 1, H, W] or [B, 1, D, H, W] float32, intensity-normalised to ~[0, 1]
    LESION_MASK = "lesion_mask"  # same shape as IMAGE, ground truth of synthetic cohorts only
    TABULAR = "tabular"  # [B, F] float32, normalised values, 0 where missing
    TABULAR_MISSING = "tabular_missing"  # [B, F] float32, 1 where the feature is missing
    CATEGORICAL = "categorical"  # [B, C] int64 category indices, 0 = unknown/missing
    TEXT_IDS = "text_ids"  # [B, T] int64 token ids
    TEXT_MASK = "text_mask"  # [B, T] int64, 1 for real tokens, 0 for padding
    PRESENCE = "presence"  # [B, M] bool, modality order = MODALITIES
