"""Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks").

One scalar ``T > 0`` divides every logit; it is fitted on the validation split by minimising the binary
negative log-likelihood, so it changes calibration but never the ranking (AUROC is unchanged).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_expit

#: Bounds of the search over log T: T between e^-4 (0.018) and e^4 (55).
LOG_T_BOUNDS = (-4.0, 4.0)
#: Fewer labelled validation cases than this, or fewer than MIN_VAL_PER_CLASS of either class, cannot fit a
#: temperature and a threshold reliably.
MIN_VAL_CASES = 30
MIN_VAL_PER_CLASS = 10


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    return float(-(labels * log_expit(z) + (1 - labels) * log_expit(-z)).mean())


@dataclass
class TemperatureScaler:
    """``probability = sigmoid(logit / temperature_)``; ``temperature_ = 1`` before fitting."""

    temperature_: float = 1.0
    nll_before_: float | None = None
    nll_after_: float | None = None

    def fit(self, logits: np.ndarray, labels: np.ndarray) -> TemperatureScaler:
        """Fit on validation logits ``[N]`` and 0/1 labels ``[N]`` (unlabelled rows must be removed)."""
        logits = np.asarray(logits, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.float64)
        if logits.shape != labels.shape or logits.ndim != 1:
            raise ValueError(
                f"logits {logits.shape} and labels {labels.shape} must be 1-D and of equal length"
            )
        if len(np.unique(labels)) < 2:
            # one class only: any temperature sharpens towards it; keep the model's own scale
            self.temperature_ = 1.0
            return self
        result = minimize_scalar(
            lambda log_t: _nll(logits, labels, float(np.exp(log_t))), bounds=LOG_T_BOUNDS, method="bounded"
        )
        self.nll_before_ = _nll(logits, labels, 1.0)
        self.temperature_ = float(np.exp(result.x))
        self.nll_after_ = _nll(logits, labels, self.temperature_)
        return self

    @property
    def at_bound(self) -> bool:
        """Whether the fitted temperature lies at a bound of its search range (the optimum is beyond it)."""
        log_t = float(np.log(self.temperature_))
        return any(abs(log_t - bound) < 1e-3 for bound in LOG_T_BOUNDS)

    def transform(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``[N]``."""
        return expit(np.asarray(logits, dtype=np.float64) / self.temperature_)

    def to_dict(self) -> dict:
        return {
            "method": "temperature",
            "temperature": self.temperature_,
            "nll_before": self.nll_before_,
            "nll_after": self.nll_after_,
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")

    @classmethod
    def from_dict(cls, state: dict) -> TemperatureScaler:
        if state.get("method") != "temperature" or not float(state["temperature"]) > 0:
            raise ValueError(f"calibration.json: expected a positive temperature, got {state!r}")
        return cls(float(state["temperature"]), state.get("nll_before"), state.get("nll_after"))


def calibration_warnings(labels: np.ndarray, scaler: TemperatureScaler, calibrate: bool = True) -> list[str]:
    """Why the temperature and the operating threshold fitted on the validation ``labels`` ``[N]`` (0/1)
    deserve little trust: a split too small or with too few of one class, or a temperature at the bound
    of its search range. ``[]`` when there is nothing to say."""
    labels = np.asarray(labels, dtype=np.float64)
    n = int(labels.size)
    positive = int((labels == 1).sum())
    negative = n - positive
    out = []
    if n < MIN_VAL_CASES or min(positive, negative) < MIN_VAL_PER_CLASS:
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
    return out
