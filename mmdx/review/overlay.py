"""Whether the case page draws the image attribution map in colour, and what it says about the map.

:func:`overlay_decision` is a pure function of a few numbers, so any image viewer can use it; :func:`
overlay_decision_for` reads them from a :class:`~mmdx.review.case.CaseView`. The map is *greyed* (drawn
without colours, or not at all, with the reason shown below the image) when it cannot mean much:

- the calibrated probability of the positive class is below ``probability_cutoff`` (default
  :data:`PROBABILITY_CUTOFF`): the map explains evidence *for* the finding, and there is next to none;
- the image contributes nothing measurable to this case: its exact modality Shapley value (calibrated logit
  units) is within ``shapley_floor`` of 0 (default :data:`SHAPLEY_FLOOR`, 0.05 logit: at most about one
  percentage point of probability near 0.5), so the colours would only show noise.

It also says which method drew the map and whether that method passed the model-randomisation test on the
validation split (``mmdx explain --image-method auto``), and says plainly when no method passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mmdx.keys import CheckVerdict, Modality

if TYPE_CHECKING:
    from mmdx.review.case import CaseView

PROBABILITY_CUTOFF = 0.1
SHAPLEY_FLOOR = 0.05


@dataclass(frozen=True)
class OverlayDecision:
    """``coloured``: draw the map in colour; otherwise grey it and show ``reasons`` (one sentence each).
    ``method_note``: which method drew the map and whether it passed its sanity check (always shown)."""

    coloured: bool
    reasons: tuple[str, ...] = ()
    method_note: str | None = None
    method_passed: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _numbers(checks: dict[str, Any] | None) -> str:
    """ " (...)" with the validation numbers behind the verdict, or ""."""
    checks = checks or {}
    parts = []
    if checks.get("randomisation_abs") is not None:
        text = f"rank correlation with a randomised model's map {checks['randomisation_abs']:.2f}"
        interval, n = checks.get("randomisation_interval"), checks.get("n_cases")
        if interval and None not in interval:
            text += f" [95% interval {interval[0]:.2f} to {interval[1]:.2f}{f', {n} cases' if n else ''}]"
        parts.append(text)
    if checks.get("anatomy_trained") is not None and checks.get("anatomy_randomised") is not None:
        parts.append(
            f"with the image intensity {checks['anatomy_trained']:.2f}, randomised {checks['anatomy_randomised']:.2f}"
        )
    if checks.get("pointing_game") is not None:
        parts.append(f"on the lesion in {checks['pointing_game']:.0%} of validation lesion cases")
    return f" ({'; '.join(parts)})" if parts else ""


def _method_note(
    method: str | None, passed: bool | None, any_passed: bool | None, checks: dict[str, Any] | None = None
) -> str | None:
    if not method:
        return None
    from mmdx.explain.attribution import method_title

    title = method_title(method)
    numbers = _numbers(checks)
    if passed is True and (checks or {}).get("verdict") == CheckVerdict.NOT_RESOLVED:
        return (
            f"Map drawn by {title}, which passed the model-randomisation check on the validation cases, but on too "
            f"few of them to be sure: the interval reaches the threshold{numbers}."
        )
    if passed is True:
        return f"Map drawn by {title}, which passed the model-randomisation check on the validation cases{numbers}."
    if passed is False and any_passed is False:
        return (
            f"Map drawn by {title}. No attribution method passed the model-randomisation check for this model"
            f"{numbers}: the map may follow the image's anatomy more than the model's reasoning."
        )
    if passed is False:
        return f"Map drawn by {title}, which did not pass the model-randomisation check{numbers}."
    return f"Map drawn by {title} (not checked against a randomised model)."


def overlay_decision(
    probability: float | None,
    image_shapley: float | None,
    *,
    method: str | None = None,
    method_passed: bool | None = None,
    any_method_passed: bool | None = None,
    checks: dict[str, Any] | None = None,
    probability_cutoff: float = PROBABILITY_CUTOFF,
    shapley_floor: float = SHAPLEY_FLOOR,
) -> OverlayDecision:
    """Whether to colour the image map (see the module docs). ``None`` inputs are not held against the map."""
    reasons = []
    if probability is not None and probability < probability_cutoff:
        reasons.append(
            f"The probability ({probability:.0%}) is below {probability_cutoff:.0%}: the map would show evidence "
            "for a finding the model does not see, so it is greyed."
        )
    if image_shapley is not None and abs(image_shapley) < shapley_floor:
        reasons.append(
            f"The image contributes almost nothing to this prediction (Shapley value {image_shapley:+.3f}, within "
            f"{shapley_floor} of 0): its colours would show noise, so it is greyed."
        )
    return OverlayDecision(
        coloured=not reasons,
        reasons=tuple(reasons),
        method_note=_method_note(method, method_passed, any_method_passed, checks),
        method_passed=method_passed,
        details={
            "probability": probability,
            "image_shapley": image_shapley,
            "probability_cutoff": probability_cutoff,
            "shapley_floor": shapley_floor,
        },
    )


def overlay_decision_for(
    view: CaseView, probability_cutoff: float = PROBABILITY_CUTOFF, shapley_floor: float = SHAPLEY_FLOOR
) -> OverlayDecision:
    """:func:`overlay_decision` for a case view: its probability, its image Shapley value, and the method
    recorded in its explanation."""
    image = next((c for c in view.contributions if c.modality == Modality.IMAGE), None)
    document = view.explanation.document or {}
    check = document.get("image_map_check") or {}
    return overlay_decision(
        view.probability,
        None if image is None else image.shapley,
        method=document.get("image_method") or document.get("method"),
        method_passed=check.get("passed"),
        any_method_passed=check.get("any_passed"),
        checks=check.get("checks"),
        probability_cutoff=probability_cutoff,
        shapley_floor=shapley_floor,
    )


def greyed(view: CaseView, decision: OverlayDecision) -> CaseView:
    """``view`` with its image maps (model input and original grid) withheld when ``decision`` greys them,
    the reasons kept with each image."""
    if decision.coloured:
        return view
    reasons = " ".join(decision.reasons)
    changes = {}
    for name in ("image", "native"):
        image = getattr(view, name)
        if image is not None and image.attribution is not None:
            changes[name] = replace(image, attribution=None, withheld=reasons)
    return replace(view, **changes) if changes else view


__all__ = [
    "greyed",
    "PROBABILITY_CUTOFF",
    "SHAPLEY_FLOOR",
    "OverlayDecision",
    "overlay_decision",
    "overlay_decision_for",
]
