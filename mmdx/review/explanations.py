"""Reading a run's explanations (``RUN/explanations/``, written by ``mmdx explain``) for the dashboard.

Explanations may be absent for a case (only some cases were explained), absent for the whole run
(``mmdx explain`` was not run), or unreadable (a damaged file); the dashboard then says so and shows what
exists. :func:`load_explanation` never raises for any of these: it returns a :class:`LoadedExplanation`
whose ``status`` tells which.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from mmdx.explain.artifacts import INDEX, case_folder_name
from mmdx.review.context import ReviewContext

EXPLANATION_FILE = "explanation.json"
IMAGE_MAP_KEY = "image_model_grid"


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
    path = context.explanations_dir / INDEX
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        return frozenset(str(entry["case_id"]) for entry in index.get("cases", []))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return frozenset()


def _unreadable(path: Path, why: str) -> LoadedExplanation:
    return LoadedExplanation(
        ExplanationStatus.UNREADABLE,
        f"The explanation of this case ({path.name}) cannot be used: {why}. Regenerate it with 'mmdx explain'.",
    )


def load_explanation(context: ReviewContext, case_id: str) -> LoadedExplanation:
    """The explanation of one case, or the reason there is none. Callers authorize the principal first."""
    root = context.explanations_dir
    if not root.is_dir():
        return LoadedExplanation(
            ExplanationStatus.NONE_IN_RUN,
            "This run has no explanations yet (run 'mmdx explain RUN'): attributions, contributions and "
            "highlights are not available. Prediction, image, values and notes are shown as they are.",
        )
    folder = root / case_folder_name(case_id)
    path = folder / EXPLANATION_FILE
    if not path.is_file():
        return LoadedExplanation(
            ExplanationStatus.NOT_FOR_CASE,
            f"This case was not explained (run 'mmdx explain RUN --cases {case_id}'): attributions, "
            "contributions and highlights are not available for it.",
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return _unreadable(path, f"not valid JSON ({exc})")
    if not isinstance(document, dict):
        return _unreadable(path, f"expected a JSON object, got {type(document).__name__}")
    if str(document.get("case_id")) != case_id:
        return _unreadable(path, f"it describes case {document.get('case_id')!r}, not {case_id!r}")
    image_map = None
    files = document.get("files") if isinstance(document.get("files"), dict) else {}
    name = files.get(IMAGE_MAP_KEY)
    if name:
        map_path = folder / str(name)
        if Path(str(name)).name != str(name) or not map_path.is_file():
            return _unreadable(path, f"its image map {name!r} is missing")
        try:
            image_map = np.load(map_path, allow_pickle=False).astype(np.float32, copy=False)
        except (OSError, ValueError) as exc:
            return _unreadable(map_path, f"the image map cannot be read ({exc})")
        if image_map.ndim not in (2, 3) or not np.all(np.isfinite(image_map)):
            return _unreadable(map_path, f"the image map has shape {image_map.shape} or non-finite values")
    version = document.get("explanation_version")
    return LoadedExplanation(
        ExplanationStatus.AVAILABLE,
        "",
        document=document,
        image_map=image_map,
        version=str(version) if version else None,
        method=str(document.get("method")) if document.get("method") else None,
    )
