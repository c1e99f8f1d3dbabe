"""How sure the model is about one case, from its calibrated probability alone.

The run holds one calibrated probability ``p`` per case (calibrated on the validation split), no
ensemble and no posterior samples, so the dashboard reports what ``p`` itself says, and names it so:

* **predictive entropy** ``H(p) = -p log2 p - (1 - p) log2 (1 - p)``, in bits: 0 when the model is certain
  (``p`` = 0 or 1), 1 when it cannot tell the classes apart (``p`` = 0.5). With a calibrated ``p`` it is the
  expected surprise of the true label. It says nothing about how the model would change with other training
  data (epistemic uncertainty), which one calibrated probability cannot tell;
* **near threshold**: ``|p - threshold| <= margin`` (default 0.05): a small change in the inputs could flip
  the decision at the operating threshold, wherever that threshold lies.
"""

from __future__ import annotations

import numpy as np

from mmdx.errors import MmdxError

#: Default half-width of the "near threshold" band, in probability units.
NEAR_THRESHOLD_MARGIN = 0.05

UNCERTAINTY_DEFINITION = (
    "Predictive entropy of the calibrated probability, in bits: 0 = certain, 1 = no better than a coin "
    "toss. It is the model's own uncertainty about this case; it does not cover uncertainty about the "
    "model itself."
)


def predictive_entropy(probability: float | np.ndarray) -> np.ndarray:
    """Entropy in bits of a Bernoulli(``probability``) label: same shape as the input, values in [0, 1].

    Raises :class:`MmdxError` for probabilities outside [0, 1] or NaN.
    """
    p = np.asarray(probability, dtype=np.float64)
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise MmdxError(f"probabilities must lie in [0, 1], got {p[~((p >= 0) & (p <= 1))][:5].tolist()}")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = -(p * np.log2(p)) - (1 - p) * np.log2(1 - p)
    # 0 log 0 = 0: the limit, which numpy evaluates as NaN
    return np.where((p == 0) | (p == 1), 0.0, terms)


def near_threshold(
    probability: float | np.ndarray, threshold: float, margin: float = NEAR_THRESHOLD_MARGIN
) -> np.ndarray:
    """True where the calibrated probability lies within ``margin`` of the operating threshold."""
    if not 0 <= margin < 1:
        raise MmdxError(f"the near-threshold margin must lie in [0, 1), got {margin!r}")
    p = np.asarray(probability, dtype=np.float64)
    return np.abs(p - float(threshold)) <= margin
