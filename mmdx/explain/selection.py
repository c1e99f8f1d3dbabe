"""Which method draws the image map: the documented rule, applied to measurements on the validation split.

**The rule** (:func:`choose_image_method`), over every registered method that attributes the image:

1. it must pass the model-randomisation test: the mean Spearman correlation of ``|attribution|`` between
   the trained and the randomised model below :data:`~mmdx.explain.faithfulness.RANDOMISATION_PASS`
   (0.2), on the validation cases;
2. among those that pass, first those whose pass is resolved (the 95% bootstrap interval of the mean, over
   the cases, lies below the threshold too: with a few validation cases a mean of 0.15 can be chance),
   then the best pointing game on the validation cases with a lesion (true positives when there are any,
   else every lesion case), then the largest share of attribution mass in the lesion, then the lowest
   randomisation correlation; without ground truth (a hospital cohort), the lowest randomisation
   correlation;
3. when no method passes, the method with the lowest randomisation correlation is used and the choice
   says plainly that none passed (``passed: false``); the dashboard and the audit repeat it.

The measurements come from :mod:`mmdx.workflows.explain` (``mmdx explain --image-method auto``), which
records the whole table, the rule and the choice in the run (``image_method_choice.json``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mmdx.explain.faithfulness import RANDOMISATION_PASS, randomisation_verdict
from mmdx.keys import CheckVerdict

RULE = (
    "passes model randomisation (mean |attribution| Spearman against a randomised model < "
    f"{RANDOMISATION_PASS}) on the validation split; among those, first the passes whose 95% interval is "
    "below the threshold too, then the best pointing game, then the largest mass in the lesion, then the "
    "lowest randomisation correlation; if none passes, the lowest randomisation correlation, marked as not "
    "passed"
)


@dataclass(frozen=True)
class MethodMeasurement:
    """One candidate's results on the validation cases (``None`` where not measurable)."""

    method: str
    randomisation_abs: float | None
    #: the 95% bootstrap interval (over the cases) of ``randomisation_abs``
    randomisation_interval: tuple[float, float] | None = None
    randomisation_signed: float | None = None
    anatomy_trained: float | None = None
    anatomy_randomised: float | None = None
    pointing_game: float | None = None
    mass_in_lesion: float | None = None
    mass_lift: float | None = None
    n_cases: int = 0
    n_lesion_cases: int = 0
    seconds_per_case: float | None = None

    @property
    def passed(self) -> bool:
        return self.randomisation_abs is not None and abs(self.randomisation_abs) < RANDOMISATION_PASS

    @property
    def verdict(self) -> CheckVerdict | None:
        """:func:`~mmdx.explain.faithfulness.randomisation_verdict` of the interval (``None`` without one)."""
        if self.randomisation_interval is None:
            return None
        return randomisation_verdict(*self.randomisation_interval)

    @property
    def resolved_pass(self) -> bool:
        return self.passed and self.verdict == CheckVerdict.PASSED

    def to_dict(self) -> dict[str, Any]:
        out = {**self.__dict__, "passed": self.passed, "verdict": self.verdict}
        if self.randomisation_interval is not None:
            out["randomisation_interval"] = list(self.randomisation_interval)
        return out


def _key(row: MethodMeasurement) -> tuple:
    """Sort key: larger is better."""

    def good(value: float | None) -> float:
        return -math.inf if value is None else float(value)

    randomisation = math.inf if row.randomisation_abs is None else abs(row.randomisation_abs)
    return (row.passed, row.resolved_pass, good(row.pointing_game), good(row.mass_in_lesion), -randomisation)


def choose_image_method(rows: Sequence[MethodMeasurement]) -> dict[str, Any]:
    """Apply :data:`RULE` to the candidates' measurements; returns the record written to the run."""
    if not rows:
        raise ValueError("choose_image_method needs at least one measured method")
    passing = [r for r in rows if r.passed]
    if passing:
        best = max(passing, key=_key)
        interval = (
            f", 95% interval {best.randomisation_interval[0]:.3f} to {best.randomisation_interval[1]:.3f} over "
            f"{best.n_cases} cases, {best.verdict}"
            if best.randomisation_interval is not None
            else ""
        )
        reason = (
            f"{best.method} passes the randomisation test (|Spearman| {best.randomisation_abs:.3f}{interval}) "
            f"and ranks first of the {len(passing)} that pass by resolution, pointing game and lesion mass"
        )
    else:
        best = min(rows, key=lambda r: math.inf if r.randomisation_abs is None else abs(r.randomisation_abs))
        reason = (
            f"no method passed the randomisation test (threshold {RANDOMISATION_PASS}); {best.method} changes "
            "most with the model and is used, but its map should not be read as the model's evidence"
        )
    return {
        "rule": RULE,
        "chosen": best.method,
        "passed": best.passed,
        "any_passed": bool(passing),
        "reason": reason,
        "candidates": [r.to_dict() for r in sorted(rows, key=_key, reverse=True)],
    }


def measurement_from_sections(
    method: str,
    randomisation: Mapping[str, Any],
    truth: Mapping[str, Any] | None,
    n_cases: int,
    seconds_per_case: float | None = None,
) -> MethodMeasurement:
    """A :class:`MethodMeasurement` from a method's ``RandomisationResult.summary()`` and
    ``summarise_scores`` results (the same numbers ``summary.json`` holds)."""
    image = randomisation.get("image") or {}
    pointing = mass = lift = None
    n_lesion = 0
    if truth is not None:
        scores = truth["image"]["true_positive_lesion_cases"]
        if not scores.get("n_cases"):
            scores = truth["image"]["lesion_cases"]
        pointing, mass, lift = (
            scores.get("pointing_game"),
            scores.get("mass_share_in_lesion"),
            scores.get("mass_lift"),
        )
        n_lesion = int(scores.get("n_cases") or 0)
    interval = image.get("spearman_abs_interval")
    return MethodMeasurement(
        method=method,
        randomisation_abs=image.get("spearman_abs_mean"),
        randomisation_interval=tuple(interval) if interval and None not in interval else None,
        randomisation_signed=image.get("spearman_signed_mean"),
        anatomy_trained=image.get("anatomy_trained_mean"),
        anatomy_randomised=image.get("anatomy_randomised_mean"),
        pointing_game=pointing,
        mass_in_lesion=mass,
        mass_lift=lift,
        n_cases=n_cases,
        n_lesion_cases=n_lesion,
        seconds_per_case=seconds_per_case,
    )


__all__ = ["RULE", "MethodMeasurement", "choose_image_method", "measurement_from_sections"]
