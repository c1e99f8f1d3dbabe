"""Reading a run's explanations (``RUN/explanations/``, written by ``mmdx explain``) for the dashboard.

Explanations may be absent for a case (only some cases were explained), absent for the whole run
(``mmdx explain`` was not run), or unreadable (a damaged file); the dashboard then says so and shows what
exists. :func:`load_explanation` never raises for any of these: it returns a :class:`LoadedExplanation`
whose ``status`` tells which.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from mmdx.explain.artifacts import ExplanationNotFound, ExplanationUnreadable
from mmdx.review.context import ReviewContext


class ExplanationStatus(StrEnum):
    AVAILABLE = "available"
    NOT_FOR_CASE = "not_for_case"  # the run has explanations, this case is not among them
    NONE_IN_RUN = "none_in_run"  # mmdx explain was not run
    UNREADABLE = "unreadable"  # a file exists but cannot be used


@dataclass(frozen=True)
class LoadedExplanation:
    """One case's explanation as read from disk.

    Attributes:
        status: see :class:`ExplanationStatus`; ``message`` says what happened in words for the reviewer.
        document: the parsed ``explanation.json`` (``None`` unless available).
        image_map: ``[*model_shape]`` float32 attribution per voxel of the model's grid, or ``None``.
        version: the ``explanation_version`` (a hash of model, method and settings), or ``None``.
        method: e.g. ``integrated_gradients``, or ``None``.
    """

    status: ExplanationStatus
    message: str
    document: dict[str, Any] | None = None
    image_map: np.ndarray | None = None
    version: str | None = None
    method: str | None = None


def explained_case_ids(context: ReviewContext) -> frozenset[str]:
    """Case ids listed in ``RUN/explanations/index.json``; empty when there is none or it is unreadable."""
    try:
        index = context.run.read_explanation_index()
        return frozenset(str(entry["case_id"]) for entry in index.get("cases", []))
    except (ExplanationNotFound, ExplanationUnreadable, TypeError, KeyError, AttributeError):
        return frozenset()


def load_explanation(context: ReviewContext, case_id: str) -> LoadedExplanation:
    """The explanation of one case, or the reason there is none. Callers authorize the principal first."""
    if not context.explanations_dir.is_dir():
        return LoadedExplanation(
            ExplanationStatus.NONE_IN_RUN,
            "This run has no explanations yet (run 'mmdx explain RUN'): attributions, contributions and "
            "highlights are not available. Prediction, image, values and notes are shown as they are.",
        )
    try:
        case = context.run.read_explanation_case(case_id)
    except ExplanationNotFound:
        return LoadedExplanation(
            ExplanationStatus.NOT_FOR_CASE,
            f"This case was not explained (run 'mmdx explain RUN --cases {case_id}'): attributions, "
            "contributions and highlights are not available for it.",
        )
    except ExplanationUnreadable as exc:
        return LoadedExplanation(
            ExplanationStatus.UNREADABLE,
            f"The explanation of this case ({exc.path.name}) cannot be used: {exc.why}. Regenerate it with "
            "'mmdx explain'.",
        )
    document = case.document
    version = document.get("explanation_version")
    return LoadedExplanation(
        ExplanationStatus.AVAILABLE,
        "",
        document=document,
        image_map=case.image_map,
        version=str(version) if version else None,
        method=str(document.get("method")) if document.get("method") else None,
    )
