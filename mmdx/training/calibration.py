"""Calibration of the model's logit on the validation split, without changing the ranking.

Two methods, both fitted by minimising the binary negative log-likelihood on the validation split, both
monotone (AUROC is unchanged):

* ``temperature`` (Guo et al., 2017, "On Calibration of Modern Neural Networks"): one scalar ``T > 0``
  divides every logit, ``probability = sigmoid(logit / T)``;
* ``platt`` (Platt, 1999; logistic recalibration): ``probability = sigmoid(logit / T + b)``, a temperature
  and an offset. Training weighs the positive class by ``n_negative / n_positive`` (``class_weighting:
  balanced``), which moves every logit up by about the log of that weight; a temperature alone cannot
  undo a shift, the offset can. The default.

With ``prevalence`` (``train.calibration_prevalence: development``, the default), Platt scaling keeps its
fitted temperature and moves the offset so that the mean calibrated probability on the validation split
equals the share of positives among *all* labelled development cases (training and validation splits):
calibration-in-the-large anchored to the class rate of about six times as many labels (70/15/15 splits),
not to the validation split's own, whose sampling error (about ±0.05 at 90 cases) otherwise passes straight
into every probability (BENCHMARKS.md, "Calibration-in-the-large anchored to the development prevalence").

Bundles written before the offset existed hold ``method: temperature`` and no offset: they load unchanged.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import brentq, minimize, minimize_scalar
from scipy.special import expit, log_expit

from mmdx.statistics import bootstrap_ci, calibration_slope_intercept

#: Bounds of the search over log T: T between e^-4 (0.018) and e^4 (55).
LOG_T_BOUNDS = (-4.0, 4.0)
#: Fewer labelled validation cases than this, or fewer than MIN_VAL_PER_CLASS of either class, cannot fit a
#: temperature and a threshold reliably.
MIN_VAL_CASES = 30
MIN_VAL_PER_CLASS = 10
#: The calibration slope on new cases that a validation split should pin down: a warning when the 95% interval
#: of the slope on the split reaches outside these bounds.
SLOPE_BOUNDS = (0.9, 1.1)
#: Stratified bootstrap resamples of that interval.
SLOPE_RESAMPLES = 500


#: The calibration methods ``train.calibration`` may name.
METHODS = ("platt", "temperature")
#: What a bundle's ``calibration.json`` may hold: one of :data:`METHODS`, or ``ensemble``, the identity kept by
#: an ensemble whose members are each calibrated (:class:`mmdx.models.ensemble.EnsembleClassifier`).
STORED_METHODS = (*METHODS, "ensemble")


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float, offset: float = 0.0) -> float:
    z = logits / temperature + offset
    return float(-(labels * log_expit(z) + (1 - labels) * log_expit(-z)).mean())


@dataclass
class TemperatureScaler:
    """``probability = sigmoid(logit / temperature_ + offset_)``; ``temperature_ = 1`` and ``offset_ = 0``
    before fitting. ``method``: ``platt`` fits both, ``temperature`` the temperature only (offset 0)."""

    temperature_: float = 1.0
    nll_before_: float | None = None
    nll_after_: float | None = None
    offset_: float = 0.0
    method: str = "temperature"
    #: the class rate the offset was anchored to (``None``: the offset is the validation split's own fit)
    prevalence_: float | None = None

    def __post_init__(self) -> None:
        if self.method not in STORED_METHODS:
            raise ValueError(f"calibration method {self.method!r}: expected one of {', '.join(METHODS)}")

    def fit(
        self, logits: np.ndarray, labels: np.ndarray, prevalence: float | None = None
    ) -> TemperatureScaler:
        """Fit on validation logits ``[N]`` and 0/1 labels ``[N]`` (unlabelled rows must be removed).

        ``prevalence``: with ``method="platt"``, the share of positives the mean calibrated probability on
        these cases is anchored to (strictly between 0 and 1; the development cohort's class rate), in place
        of the fitted offset. Ignored by ``temperature``."""
        if self.method not in METHODS:
            raise ValueError(
                f"calibration method {self.method!r} is not fitted: an ensemble's members are calibrated one by one"
            )
        logits = np.asarray(logits, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.float64)
        if logits.shape != labels.shape or logits.ndim != 1:
            raise ValueError(
                f"logits {logits.shape} and labels {labels.shape} must be 1-D and of equal length"
            )
        if len(np.unique(labels)) < 2:
            # one class only: any temperature sharpens towards it; keep the model's own scale
            self.temperature_, self.offset_ = 1.0, 0.0
            return self
        self.nll_before_ = _nll(logits, labels, 1.0)
        result = minimize_scalar(
            lambda log_t: _nll(logits, labels, float(np.exp(log_t))), bounds=LOG_T_BOUNDS, method="bounded"
        )
        self.temperature_, self.offset_ = float(np.exp(result.x)), 0.0
        if self.method == "platt":  # from the temperature's optimum; the offset is unbounded
            joint = minimize(
                lambda x: _nll(logits, labels, float(np.exp(x[0])), float(x[1])),
                x0=np.array([result.x, 0.0]),
                method="L-BFGS-B",
                bounds=[LOG_T_BOUNDS, (None, None)],
            )
            if joint.fun <= _nll(logits, labels, self.temperature_):
                self.temperature_, self.offset_ = float(np.exp(joint.x[0])), float(joint.x[1])
            if prevalence is not None:
                self.offset_ = _offset_for_prevalence(logits / self.temperature_, prevalence)
                self.prevalence_ = float(prevalence)
        self.nll_after_ = _nll(logits, labels, self.temperature_, self.offset_)
        return self

    @property
    def at_bound(self) -> bool:
        """Whether the fitted temperature lies at a bound of its search range (the optimum is beyond it)."""
        log_t = float(np.log(self.temperature_))
        return any(abs(log_t - bound) < 1e-3 for bound in LOG_T_BOUNDS)

    def calibrated_logit(self, logits: np.ndarray) -> np.ndarray:
        """``logit / temperature_ + offset_`` ``[N]``: the logit of the calibrated probability."""
        return np.asarray(logits, dtype=np.float64) / self.temperature_ + self.offset_

    def transform(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``[N]``."""
        return expit(self.calibrated_logit(logits))

    def to_dict(self) -> dict:
        state = {
            "method": self.method,
            "temperature": self.temperature_,
            "offset": self.offset_,
            "nll_before": self.nll_before_,
            "nll_after": self.nll_after_,
        }
        if self.prevalence_ is not None:
            state["prevalence"] = self.prevalence_
        return state

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")

    @classmethod
    def from_dict(cls, state: dict) -> TemperatureScaler:
        if state.get("method") not in STORED_METHODS or not float(state["temperature"]) > 0:
            raise ValueError(
                f"calibration.json: expected method {' or '.join(STORED_METHODS)} and a positive temperature, "
                f"got {state!r}"
            )
        offset = float(state.get("offset", 0.0))  # absent before the offset existed
        if not np.isfinite(offset):
            raise ValueError(f"calibration.json: the offset must be a finite number, got {state!r}")
        prevalence = state.get("prevalence")  # absent before the anchoring existed
        return cls(
            float(state["temperature"]),
            state.get("nll_before"),
            state.get("nll_after"),
            offset,
            state["method"],
            None if prevalence is None else float(prevalence),
        )


def _offset_for_prevalence(scaled: np.ndarray, prevalence: float) -> float:
    """The offset ``b`` with ``mean(sigmoid(scaled + b)) == prevalence``: the mean is strictly increasing in
    ``b``, so the root is unique; it lies within the logit of the prevalence plus the range of ``scaled``."""
    if not 0.0 < prevalence < 1.0:
        raise ValueError(f"prevalence must lie strictly between 0 and 1, got {prevalence!r}")
    target = float(np.log(prevalence / (1.0 - prevalence)))
    low = target - float(scaled.max()) - 1.0
    high = target - float(scaled.min()) + 1.0
    return float(brentq(lambda b: float(expit(scaled + b).mean()) - prevalence, low, high, xtol=1e-10))


def _slope(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return calibration_slope_intercept(labels, probabilities).slope


def validation_slope(
    labels: np.ndarray, probabilities: np.ndarray, resamples: int = SLOPE_RESAMPLES, seed: int = 0
) -> dict[str, float | int | None]:
    """The calibration slope of the calibrated ``probabilities`` on the validation split they were calibrated
    on (the logistic regression of the labels on their logit,
    :func:`~mmdx.statistics.calibration_slope_intercept`), with its 95% percentile interval over
    ``resamples`` bootstrap resamples stratified by class (``estimate``, ``low``, ``high``, ``n``): about 1 for
    a fitted calibration, and the interval is how precisely the split fixes the slope the model will have on
    new cases (about 0.4 wide at 300 cases). ``None`` values where the slope is undefined."""
    labels = np.asarray(labels, dtype=np.float64)
    out: dict[str, float | int | None] = {"estimate": None, "low": None, "high": None, "n": int(labels.size)}
    if labels.size < 3 or len(np.unique(labels)) < 2:
        return out
    interval = bootstrap_ci(_slope, labels, probabilities, n_resamples=resamples, stratified=True, seed=seed)
    if not math.isfinite(interval.estimate):  # separated classes, or a fit that does not settle
        return out
    out["estimate"] = float(interval.estimate)
    if math.isfinite(interval.low) and math.isfinite(interval.high):
        out.update(low=float(interval.low), high=float(interval.high))
    return out


def calibration_warnings(
    labels: np.ndarray,
    scaler: TemperatureScaler,
    calibrate: bool = True,
    slope: dict[str, float | int | None] | None = None,
    out_of_fold: bool = False,
) -> list[str]:
    """Why the temperature and the operating threshold fitted on the validation ``labels`` ``[N]`` (0/1)
    deserve little trust: a split too small or with too few of one class, a temperature at the bound
    of its search range, or (``slope``: :func:`validation_slope`) a split that fixes the calibration slope
    only to within an interval wider than :data:`SLOPE_BOUNDS`. ``[]`` when there is nothing to say.
    ``out_of_fold``: ``labels`` are those of a fold ensemble's out-of-fold predictions
    (``train.ensemble_split: folds``), and the messages say so."""
    labels = np.asarray(labels, dtype=np.float64)
    n = int(labels.size)
    positive = int((labels == 1).sum())
    negative = n - positive
    out = []
    if out_of_fold and (n < MIN_VAL_CASES or min(positive, negative) < MIN_VAL_PER_CLASS):
        out.append(
            f"the out-of-fold predictions are too few to fit the operating threshold reliably, and each member "
            f"is calibrated on a fold of them only: {n} labelled cases ({positive} positive, {negative} "
            f"negative), where at least {MIN_VAL_CASES} cases and {MIN_VAL_PER_CLASS} of each class are "
            "advisable; calibrated probabilities and the threshold are uncertain -- more labelled cases"
        )
    elif n < MIN_VAL_CASES or min(positive, negative) < MIN_VAL_PER_CLASS:
        out.append(
            f"the validation split is too small to fit the temperature and the operating threshold reliably: "
            f"{n} labelled cases ({positive} positive, {negative} negative), where at least {MIN_VAL_CASES} "
            f"cases and {MIN_VAL_PER_CLASS} of each class are advisable; calibrated probabilities and the "
            "threshold are uncertain -- enlarge the validation split"
        )
    if calibrate and min(positive, negative) == 0:
        out.append("the validation split holds one class only: the temperature was left at 1 (uncalibrated)")
    elif calibrate and scaler.at_bound:
        out.append(
            f"the fitted temperature {scaler.temperature_:.4g} lies at the bound of its search range "
            f"(e^{LOG_T_BOUNDS[0]:g} to e^{LOG_T_BOUNDS[1]:g}): the validation split could not determine it, and "
            "calibrated probabilities are unreliable"
        )
    source = "the out-of-fold predictions" if out_of_fold else "the validation split"
    estimate, low, high = ((slope or {}).get(key) for key in ("estimate", "low", "high"))
    if None not in (estimate, low, high) and (low < SLOPE_BOUNDS[0] or high > SLOPE_BOUNDS[1]):
        out.append(
            f"{source} ({n} labelled cases) fix{'' if out_of_fold else 'es'} the calibration slope only to within "
            f"{low:.2f} to {high:.2f} (95% bootstrap interval of the calibrated probabilities' slope on "
            f"{'them' if out_of_fold else 'it'}, {estimate:.2f}; {SLOPE_BOUNDS[0]:g} to {SLOPE_BOUNDS[1]:g} would "
            "need it): on new cases the probabilities may be that much too extreme or too timid -- more "
            f"{'labelled' if out_of_fold else 'validation'} cases narrow it"
        )
    return out
