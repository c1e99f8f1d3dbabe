"""Reading a run's explanations (``RUN/explanations/``, written by ``mmdx explain``) for the dashboard.

Explanations may be absent for a case (only some cases were explained), absent for the whole run
(``mmdx explain`` was not run), or unreadable (a damaged file); the dashboard then says so and shows what
exists. :func:`load_explanation` never raises for any of these: it returns a :class:`LoadedExplanation`
whose ``status`` tells which.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from mmdx.explain.artifacts import ExplanationNotFound, ExplanationUnreadable
from mmdx.review.access import authorize_case_reading, may
from mmdx.review.context import ReviewContext
from mmdx.store import Permission, PermissionDenied, Principal


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


@dataclass(frozen=True)
class ExplanationOffer:
    """What the case page offers for a case without an explanation.

    Attributes:
        case_id: the case.
        allowed: whether this principal may compute it from the dashboard (``explain_cases`` permission and
            a cohort to read the case from).
        reason: why not, in words, when not allowed; else what computing does.
        command: the equivalent command line (``mmdx explain RUN --cases ...``).
        cases: the cases to explain: the run's explained cases and this one (``mmdx explain`` writes the
            run's explanations as a whole, so the others are computed again rather than lost).
        method: the explanation method of the run's existing explanations (``ig`` when there are none).
        settings: the existing explanations' ``n_steps``, ``image_baseline`` and ``occlusion_window`` (the
            keyword arguments of ``explain_run`` that keep them comparable), as far as index.json gives them.
    """

    case_id: str
    allowed: bool
    reason: str
    command: str
    cases: tuple[str, ...]
    method: str
    settings: dict[str, Any] = field(default_factory=dict)


def explanation_offer(
    context: ReviewContext, principal: Principal, case_id: str, status: ExplanationStatus
) -> ExplanationOffer | None:
    """The offer to compute ``case_id``'s explanation, ``None`` when it has one (``status`` AVAILABLE).

    Allowed to a principal whose role holds :attr:`~mmdx.store.Permission.EXPLAIN_CASES` when the cohort can be
    read; an unreadable explanation is recomputed the same way.
    """
    authorize_case_reading(context.store, principal, context.run_id)
    if status is ExplanationStatus.AVAILABLE:
        return None
    explained = sorted(explained_case_ids(context) - {case_id})
    cases = (*explained, case_id)
    method = "ig"
    settings: dict[str, Any] = {}
    try:
        index = context.run.read_explanation_index()
        recorded = index.get("settings") if isinstance(index.get("settings"), dict) else {}
        settings = {
            k: recorded[k]
            for k in ("n_steps", "image_baseline", "occlusion_window")
            if recorded.get(k) is not None
        }
        methods = [str(m) for m in index.get("methods") or []]
        if len(methods) > 1:
            method = "both"
        elif methods:
            method = _method_option(methods[0])
    except (ExplanationNotFound, ExplanationUnreadable, AttributeError):
        pass
    listed = " ".join(shlex.quote(c) for c in cases) if len(cases) <= 6 else f"... {shlex.quote(case_id)}"
    command = f"mmdx explain {shlex.quote(str(context.run.root))} --method {method} --cases {listed}"
    if not may(principal, Permission.EXPLAIN_CASES):
        roles = "clinician or admin"
        reason = (
            f"Your role ({principal.role.value}) may not compute explanations (it needs the "
            f"'{Permission.EXPLAIN_CASES.value}' permission of a {roles}); ask one, or run: {command}"
        )
        return ExplanationOffer(case_id, False, reason, command, cases, method, settings)
    if context.cohort_dir is None:
        reason = (
            "The explanation cannot be computed here: the run's cohort is not reachable (start the dashboard "
            f"with --cohort DIR), or run: {command}"
        )
        return ExplanationOffer(case_id, False, reason, command, cases, method, settings)
    others = f" and the {len(explained)} case(s) already explained, again" if explained else ""
    reason = (
        f"Computes the attributions of this case{others} ('mmdx explain' writes a run's explanations as a "
        "whole); on a CPU this takes from seconds (2D) to minutes (3D) per case."
    )
    return ExplanationOffer(case_id, True, reason, command, cases, method, settings)


def _method_option(name: str) -> str:
    """The ``mmdx explain --method`` value of a method named in index.json (``ig`` when unknown)."""
    from mmdx.errors import MmdxError
    from mmdx.explain.attribution import EXPLANATION_METHODS

    try:
        return EXPLANATION_METHODS.get(name).short
    except (MmdxError, KeyError, ValueError):
        return "ig"


def authorize_explaining(context: ReviewContext, principal: Principal) -> Principal:
    """Return ``principal`` if it may compute explanations; raise :class:`PermissionDenied` if not."""
    authorize_case_reading(context.store, principal, context.run_id)
    if not may(principal, Permission.EXPLAIN_CASES):
        raise PermissionDenied(
            f"permission denied: {principal.name} may not compute explanations: the role "
            f"'{principal.role.value}' lacks the '{Permission.EXPLAIN_CASES.value}' permission"
        )
    return principal
