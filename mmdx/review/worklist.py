"""The worklist: a run's cases with calibrated risk, uncertainty, modalities and review status.

:func:`build_worklist` returns one row per case (a :class:`pandas.DataFrame` with the columns of
:data:`WORKLIST_COLUMNS`); :func:`filter_worklist` and :func:`sort_worklist` narrow and order it. The ground
truth label is deliberately absent: a reviewer who saw it could not judge the model independently.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd

from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES, Modality
from mmdx.review.access import authorize_case_reading
from mmdx.review.context import ReviewContext
from mmdx.review.explanations import explained_case_ids
from mmdx.review.uncertainty import NEAR_THRESHOLD_MARGIN, near_threshold, predictive_entropy
from mmdx.store import Principal, ReviewStatus

WORKLIST_COLUMNS: tuple[str, ...] = (
    "case_id",
    "probability",  # calibrated, positive class
    "predicted",  # "positive" / "negative" at the operating threshold
    "uncertainty",  # predictive entropy, bits
    "near_threshold",
    "modalities",  # e.g. "image + text"
    "has_image",
    "has_tabular",
    "has_text",
    "explained",
    "status",  # a ReviewStatus value
    "split",
    "group",  # "test", "unlabelled" (what a reviewer judges), "train", "val"
)

#: The groups of cases a reviewer is meant to judge, shown by default: the held-out test split and cases
#: without a label (new patients). Training and validation cases shaped the model; judging them says little.
REVIEW_GROUPS: tuple[str, ...] = ("test", "unlabelled")
#: Every group, in the order the worklist's filter offers them.
GROUPS: tuple[str, ...] = ("test", "unlabelled", "val", "train", "other")


class SortOrder(StrEnum):
    """Orders of the worklist. Ties are broken by case id, so the order is stable."""

    HIGHEST_RISK = "highest_risk"  # calibrated probability, highest first
    MOST_UNCERTAIN = "most_uncertain"  # predictive entropy, highest first, then closest to the threshold
    UNREVIEWED_FIRST = "unreviewed_first"  # unreviewed, disputed, by others, by me; highest risk within


SORT_LABELS: dict[SortOrder, str] = {
    SortOrder.HIGHEST_RISK: "Highest risk first",
    SortOrder.MOST_UNCERTAIN: "Most uncertain first",
    SortOrder.UNREVIEWED_FIRST: "Unreviewed first",
}

_STATUS_RANK = {
    ReviewStatus.UNREVIEWED: 0,
    ReviewStatus.DISPUTED: 1,
    ReviewStatus.REVIEWED_BY_OTHERS: 2,
    ReviewStatus.REVIEWED_BY_ME: 3,
}


def modalities_label(has: dict[Modality, bool] | dict[str, bool]) -> str:
    """``"image + tabular + text"``-style list of the present modalities, ``"none"`` when empty."""
    present = [m.value for m in MODALITIES if has.get(m, has.get(m.value, False))]
    return " + ".join(present) or "none"


def case_groups(split: pd.Series, label: pd.Series | None) -> np.ndarray:
    """Each case's group: ``unlabelled`` without a label (whatever its split), else its split (``train``,
    ``val``, ``test``; ``other`` for anything else). The label's value is not used."""
    names = split.fillna("").astype(str).str.strip().str.lower().to_numpy()
    groups = np.where(np.isin(names, ["train", "val", "test"]), names, "other").astype(object)
    if label is not None:
        groups[pd.isna(label).to_numpy()] = "unlabelled"
    return groups


def default_filter() -> WorklistFilter:
    """What the worklist shows until the reviewer changes it: the groups of :data:`REVIEW_GROUPS`."""
    return WorklistFilter(groups=REVIEW_GROUPS)


def build_worklist(
    context: ReviewContext, principal: Principal, margin: float = NEAR_THRESHOLD_MARGIN
) -> pd.DataFrame:
    """One row per case of the run with the columns of :data:`WORKLIST_COLUMNS`, in predictions order.

    ``status`` is the principal's view of the case (:class:`~mmdx.store.ReviewStatus`); ``explained`` says
    whether ``RUN/explanations`` holds the case. Raises :class:`~mmdx.store.PermissionDenied` for a
    principal that may not read cases.
    """
    authorize_case_reading(context.store, principal, context.run_id)
    predictions = context.run.read_predictions()
    probability = predictions["probability"].to_numpy(dtype=np.float64)
    case_ids = predictions["case_id"].tolist()
    statuses = context.store.review_status(principal, context.run_id, case_ids)
    explained = explained_case_ids(context)
    has = {m: predictions[f"has_{m.value}"].to_numpy(dtype=bool) for m in MODALITIES}
    frame = pd.DataFrame(
        {
            "case_id": case_ids,
            "probability": probability,
            "predicted": np.where(probability >= context.threshold, "positive", "negative"),
            "uncertainty": predictive_entropy(probability),
            "near_threshold": near_threshold(probability, context.threshold, margin),
            "modalities": [
                modalities_label({m: bool(has[m][i]) for m in MODALITIES}) for i in range(len(case_ids))
            ],
            "has_image": has[Modality.IMAGE],
            "has_tabular": has[Modality.TABULAR],
            "has_text": has[Modality.TEXT],
            "explained": [c in explained for c in case_ids],
            "status": [statuses[c].value for c in case_ids],
            "split": predictions["split"].astype(str).to_numpy(),
            "group": case_groups(predictions["split"], predictions.get("label")),
        }
    )
    return frame[list(WORKLIST_COLUMNS)]


@dataclass(frozen=True)
class WorklistFilter:
    """Which cases to keep; an empty collection means "no restriction".

    Attributes:
        statuses: review statuses to keep (:class:`~mmdx.store.ReviewStatus` values).
        require_modalities: modalities a case must have (all of them).
        predicted: ``"positive"`` and/or ``"negative"``.
        splits: ``train`` / ``val`` / ``test``.
        groups: values of the ``group`` column (:data:`GROUPS`; :data:`REVIEW_GROUPS` by default on the page).
        near_threshold_only: keep only cases within the near-threshold band.
        explained_only: keep only cases with an explanation.
        case_id_contains: case-insensitive substring of the case id.
    """

    statuses: Collection[str] = field(default_factory=tuple)
    require_modalities: Collection[str] = field(default_factory=tuple)
    predicted: Collection[str] = field(default_factory=tuple)
    splits: Collection[str] = field(default_factory=tuple)
    groups: Collection[str] = field(default_factory=tuple)
    near_threshold_only: bool = False
    explained_only: bool = False
    case_id_contains: str = ""


def filter_worklist(frame: pd.DataFrame, selection: WorklistFilter) -> pd.DataFrame:
    """The rows of a worklist that pass ``selection`` (order kept)."""
    keep = np.ones(len(frame), dtype=bool)
    if selection.statuses:
        known = {s.value for s in ReviewStatus}
        unknown = set(map(str, selection.statuses)) - known
        if unknown:
            raise MmdxError(f"unknown review status(es) {sorted(unknown)}; choose from {sorted(known)}")
        keep &= frame["status"].isin([str(s) for s in selection.statuses]).to_numpy()
    for modality in selection.require_modalities:
        modality = Modality(str(modality))
        keep &= frame[f"has_{modality.value}"].to_numpy(dtype=bool)
    if selection.predicted:
        keep &= frame["predicted"].isin([str(p) for p in selection.predicted]).to_numpy()
    if selection.splits:
        keep &= frame["split"].isin([str(s) for s in selection.splits]).to_numpy()
    if selection.groups:
        keep &= frame["group"].isin([str(g) for g in selection.groups]).to_numpy()
    if selection.near_threshold_only:
        keep &= frame["near_threshold"].to_numpy(dtype=bool)
    if selection.explained_only:
        keep &= frame["explained"].to_numpy(dtype=bool)
    needle = selection.case_id_contains.strip().lower()
    if needle:
        keep &= frame["case_id"].str.lower().str.contains(needle, regex=False).to_numpy()
    return frame[keep]


def sort_worklist(
    frame: pd.DataFrame, order: SortOrder | str, threshold: float, explained_first: bool = False
) -> pd.DataFrame:
    """The worklist in the given :class:`SortOrder`; ``threshold`` breaks ties among equally uncertain cases
    (the one closer to the threshold first). ``explained_first``: cases with an explanation before the
    others, each part in that order (the page's default)."""
    order = SortOrder(order)
    work = frame.assign(
        _risk=-frame["probability"].to_numpy(dtype=np.float64),
        _uncertain=-frame["uncertainty"].to_numpy(dtype=np.float64),
        _distance=np.abs(frame["probability"].to_numpy(dtype=np.float64) - threshold),
        _status=frame["status"].map(lambda s: _STATUS_RANK[ReviewStatus(s)]).to_numpy(dtype=np.int64),
    )
    keys = {
        SortOrder.HIGHEST_RISK: ["_risk", "case_id"],
        SortOrder.MOST_UNCERTAIN: ["_uncertain", "_distance", "case_id"],
        SortOrder.UNREVIEWED_FIRST: ["_status", "_risk", "case_id"],
    }[order]
    if explained_first:
        work = work.assign(_unexplained=~frame["explained"].to_numpy(dtype=bool))
        keys = ["_unexplained", *keys]
    helpers = [c for c in work.columns if c.startswith("_")]
    return work.sort_values(keys, kind="stable").drop(columns=helpers)
