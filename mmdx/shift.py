"""Statistics of dataset shift and of recalibration at a new site.

Pure functions on arrays (no files, no models), used by the drift report (:mod:`mmdx.data.drift`) and by
external validation (:mod:`mmdx.workflows.external`):

* **Binned two-sample tests** (:func:`homogeneity_test`): the training cohort is kept only as counts in
  bins (its quantiles, no rows), so a feature is compared by Pearson's chi-square test of homogeneity of the
  2 x K table (training counts, external counts in the same bins); :func:`combine_tests` adds independent
  tests (e.g. one per class) into one. :func:`holm` corrects a family of p-values (Holm 1979).
* **Prior shift** (:func:`shift_prior`, :func:`em_prevalence`): a calibrated probability is moved to a
  new prevalence by Bayes' rule on the odds; without labels the new prevalence is estimated by the EM
  algorithm of Saerens, Latinne and Decaestecker (2002), "Adjusting the outputs of a classifier to new a
  priori probabilities", Neural Computation 14(1):21-41.
* **Logistic recalibration** (:func:`fit_logistic`): ``logit p' = a + b z`` on the model's logit ``z`` by
  maximum likelihood; ``b`` fixed at 1 gives recalibration-in-the-large.
* **Choosing how far to update** (:func:`closed_test`): the closed testing procedure of Vergouwe, Nieboer,
  Oostenbrink et al. (2017), "A closed testing procedure to select an appropriate method for updating
  prediction models", Statistics in Medicine 36(28):4529-4539: likelihood-ratio tests against the most
  extensive update keep the simplest model the labelled sample does not reject.
* **Calibration at a given n** (:func:`calibration_in_the_large`, :func:`perfect_calibration_ece`): the
  mean predicted minus the observed rate, and the ECE a perfectly calibrated model gets on ``n`` cases
  (simulated: labels drawn from the predicted probabilities themselves), the reference an observed ECE is
  read against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit
from scipy.stats import chi2

from mmdx.metrics import expected_calibration_error

#: Probabilities are clipped to [eps, 1 - eps] before a logit.
_EPS = 1e-9


def to_logit(p: np.ndarray) -> np.ndarray:
    """``logit(p)`` with ``p`` clipped to ``[1e-9, 1 - 1e-9]``."""
    return logit(np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS))


# --------------------------------------------------------------------------------------------------------
# bins and two-sample tests


def quantile_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """The inner edges of ``n_bins`` quantile bins of ``values`` (NaN ignored), duplicates removed, each
    placed halfway between the quantile and the next larger value: bins are ``(-inf, e1], (e1, e2], ...,
    (ek, inf)``."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0 or n_bins < 2:
        return np.empty(0)
    inner = np.unique(np.quantile(values, np.arange(1, n_bins) / n_bins, method="inverted_cdf"))
    # each edge halfway to the next observed value: values recorded on a grid (rounded, or converted from
    # another unit and off by a rounding error) fall on the same side of it in both cohorts
    distinct = np.unique(values)
    above = np.minimum(np.searchsorted(distinct, inner, side="right"), distinct.size - 1)
    return np.unique(np.where(distinct[above] > inner, (inner + distinct[above]) / 2.0, inner))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of the finite ``values`` in the bins ``(-inf, e1], (e1, e2], ..., (ek, inf)``."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    return np.bincount(index, minlength=len(edges) + 1).astype(np.int64)


def merge_small_bins(edges: np.ndarray, counts: np.ndarray, min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge neighbouring bins until every bin holds at least ``min_count`` (small cells are never kept);
    returns ``(edges, counts)``. A sample smaller than ``min_count`` ends as one bin."""
    edges, counts = list(np.asarray(edges, dtype=np.float64)), [int(c) for c in counts]
    i = 0
    while len(counts) > 1 and i < len(counts):
        if counts[i] >= min_count:
            i += 1
            continue
        # merge with the smaller neighbour (the right one at the left end, the left one at the right end)
        j = i + 1 if i == 0 or (i + 1 < len(counts) and counts[i + 1] < counts[i - 1]) else i - 1
        low, high = min(i, j), max(i, j)
        counts[low] += counts[high]
        del counts[high]
        del edges[low]
        i = low
    return np.asarray(edges, dtype=np.float64), np.asarray(counts, dtype=np.int64)


@dataclass(frozen=True)
class TestResult:
    """A chi-square test: its statistic, degrees of freedom and p-value (NaN when it cannot be computed)."""

    statistic: float
    df: int
    p_value: float

    def to_dict(self) -> dict:
        return {"statistic": self.statistic, "df": self.df, "p_value": self.p_value}


_UNDEFINED = TestResult(math.nan, 0, math.nan)


def homogeneity_test(counts_a: np.ndarray, counts_b: np.ndarray) -> TestResult:
    """Pearson's chi-square test that two samples, given as counts in the same bins, come from the same
    distribution (the 2 x K contingency table; bins empty in both are dropped, no continuity correction)."""
    table = np.vstack([np.asarray(counts_a, dtype=np.float64), np.asarray(counts_b, dtype=np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] < 2 or np.any(rows == 0):
        return _UNDEFINED
    expected = np.outer(rows, table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    df = table.shape[1] - 1
    return TestResult(statistic, df, float(chi2.sf(statistic, df)))


def proportion_test(k_a: int, n_a: int, k_b: int, n_b: int) -> TestResult:
    """Chi-square test (1 df) that two proportions ``k_a/n_a`` and ``k_b/n_b`` are equal."""
    return homogeneity_test(np.array([k_a, n_a - k_a]), np.array([k_b, n_b - k_b]))


def combine_tests(results: list[TestResult]) -> TestResult:
    """Independent chi-square tests combined: statistics and degrees of freedom add up."""
    defined = [r for r in results if r.df > 0 and math.isfinite(r.statistic)]
    if not defined:
        return _UNDEFINED
    statistic = float(sum(r.statistic for r in defined))
    df = int(sum(r.df for r in defined))
    return TestResult(statistic, df, float(chi2.sf(statistic, df)))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (familywise error); NaN entries stay NaN and are not counted."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    defined = np.flatnonzero(np.isfinite(p))
    m = defined.size
    order = defined[np.argsort(p[defined], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out.tolist()


def standardised_difference(mean_a: float, sd_a: float, mean_b: float, sd_b: float) -> float:
    """``(mean_b - mean_a) / sqrt((sd_a^2 + sd_b^2) / 2)``; NaN when both spreads are zero."""
    pooled = math.sqrt((sd_a**2 + sd_b**2) / 2.0)
    return (mean_b - mean_a) / pooled if pooled > 0 else math.nan


# --------------------------------------------------------------------------------------------------------
# prior shift


def shift_prior(p: np.ndarray, from_prevalence: float, to_prevalence: float) -> np.ndarray:
    """Probabilities calibrated at ``from_prevalence`` moved to ``to_prevalence`` (Bayes' rule on the odds:
    the class-conditional distributions are assumed unchanged)."""
    delta = float(to_logit(np.array(to_prevalence)) - to_logit(np.array(from_prevalence)))
    return expit(to_logit(p) + delta)


@dataclass(frozen=True)
class PrevalenceEstimate:
    prevalence: float
    iterations: int
    converged: bool


def em_prevalence(
    p: np.ndarray, training_prevalence: float, tol: float = 1e-8, max_iter: int = 1000
) -> PrevalenceEstimate:
    """The prevalence of a new cohort estimated from the model's probabilities alone (no labels), by EM.

    Each step moves every probability to the current estimate (:func:`shift_prior`) and takes their mean as
    the next estimate; the fixed point is the maximum-likelihood prevalence when the model was calibrated
    at ``training_prevalence`` and only the prior changed."""
    p = np.asarray(p, dtype=np.float64)
    estimate = float(training_prevalence)
    for iteration in range(1, max_iter + 1):
        new = float(np.clip(shift_prior(p, training_prevalence, estimate).mean(), 1e-6, 1 - 1e-6))
        if abs(new - estimate) < tol:
            return PrevalenceEstimate(new, iteration, True)
        estimate = new
    return PrevalenceEstimate(estimate, max_iter, False)


# --------------------------------------------------------------------------------------------------------
# logistic recalibration and calibration summaries


def fit_logistic(
    z: np.ndarray, y: np.ndarray, slope: bool = True, max_iter: int = 100
) -> tuple[float, float]:
    """Maximum-likelihood ``(a, b)`` of ``P(y=1) = sigmoid(a + b z)`` by Newton's method (``b`` fixed at 1
    when ``slope`` is False). Needs both classes; raises ValueError otherwise or when the classes are
    perfectly separated (the slope is then unbounded)."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if z.shape != y.shape or z.ndim != 1 or len(np.unique(y)) < 2:
        raise ValueError("logistic recalibration needs 1-D logits and labels holding both classes")
    if slope and (z[y == 1].min() >= z[y == 0].max() or z[y == 0].min() >= z[y == 1].max()):
        raise ValueError("the logits separate the classes perfectly: the recalibration slope is unbounded")
    design = np.column_stack([np.ones_like(z), z]) if slope else np.ones((z.size, 1))
    offset = np.zeros_like(z) if slope else z
    beta = np.zeros(design.shape[1])
    for _ in range(max_iter):
        mu = expit(design @ beta + offset)
        gradient = design.T @ (y - mu)
        hessian = (design * (mu * (1 - mu))[:, None]).T @ design
        step = np.linalg.solve(hessian + 1e-12 * np.eye(len(beta)), gradient)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return (float(beta[0]), float(beta[1])) if slope else (float(beta[0]), 1.0)


def calibration_in_the_large(y: np.ndarray, p: np.ndarray) -> float:
    """Mean predicted probability minus the observed rate (0 when calibrated in the large)."""
    return float(np.mean(np.asarray(p, dtype=np.float64)) - np.mean(np.asarray(y, dtype=np.float64)))


@dataclass(frozen=True)
class EceReference:
    """The ECE of a perfectly calibrated model on the same predictions: mean and 95% range."""

    mean: float
    low: float
    high: float
    n: int
    simulations: int

    def to_dict(self) -> dict:
        return {
            "mean": self.mean,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "simulations": self.simulations,
        }


def perfect_calibration_ece(p: np.ndarray, simulations: int = 500, seed: int = 0) -> EceReference:
    """The ECE (15 uniform bins) a perfectly calibrated model gets with these predicted probabilities on
    this many cases: labels are drawn as ``Bernoulli(p)`` ``simulations`` times."""
    p = np.asarray(p, dtype=np.float64)
    rng = np.random.default_rng(seed)
    values = np.array(
        [expected_calibration_error((rng.random(p.size) < p).astype(int), p) for _ in range(simulations)]
    )
    low, high = np.quantile(values, [0.025, 0.975])
    return EceReference(float(values.mean()), float(low), float(high), int(p.size), simulations)


def log_likelihood(y: np.ndarray, linear: np.ndarray) -> float:
    """Bernoulli log-likelihood of labels ``y`` under ``P(y=1) = sigmoid(linear)`` (computed stably)."""
    y = np.asarray(y, dtype=np.float64)
    linear = np.asarray(linear, dtype=np.float64)
    # log sigmoid(x) = -log(1 + e^-x); log(1 - sigmoid(x)) = -log(1 + e^x)
    return float(-(y * np.logaddexp(0.0, -linear) + (1.0 - y) * np.logaddexp(0.0, linear)).sum())


#: The updates :func:`closed_test` chooses between, simplest first, with the parameters each fits.
CLOSED_TEST_MODELS = (("base", 0), ("intercept", 1), ("logistic", 2))


@dataclass(frozen=True)
class ClosedTest:
    """The update chosen by :func:`closed_test`, its ``(intercept, slope)`` on the logit ``z``, and every
    fit and test behind the choice."""

    selected: str
    intercept: float
    slope: float
    alpha: float
    fits: dict[str, dict[str, float]]
    tests: list[dict[str, float | str | bool]]

    def to_dict(self) -> dict:
        return {
            "selected": self.selected,
            "intercept": self.intercept,
            "slope": self.slope,
            "alpha": self.alpha,
            "fits": self.fits,
            "tests": self.tests,
        }


def closed_test(z: np.ndarray, y: np.ndarray, base_intercept: float, alpha: float = 0.05) -> ClosedTest:
    """The closed testing procedure for updating a model at a new site (Vergouwe et al. 2017), with the
    model's logit ``z`` on labelled local cases ``y``.

    Candidates, simplest first: ``base`` (``base_intercept + z``: nothing fitted on the labels; the model
    as it is, or as moved without labels), ``intercept`` (recalibration-in-the-large, ``a + z``) and
    ``logistic`` (``a + b z``). Each simpler one is tested against the most extensive, ``logistic``, by a
    likelihood-ratio test (2 and 1 degrees of freedom); the first not rejected at ``alpha`` is chosen, so
    the familywise type I error stays at ``alpha``. Needs both classes (ValueError otherwise)."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    a1, _ = fit_logistic(z, y, slope=False)
    try:
        a2, b2 = fit_logistic(z, y, slope=True)
    except ValueError:
        # perfectly separated: the slope is unbounded and the logistic fit is not a usable update
        a2, b2 = math.nan, math.nan
    fits = {
        "base": {
            "intercept": float(base_intercept),
            "slope": 1.0,
            "log_likelihood": log_likelihood(y, base_intercept + z),
        },
        "intercept": {"intercept": a1, "slope": 1.0, "log_likelihood": log_likelihood(y, a1 + z)},
    }
    if math.isfinite(b2):
        fits["logistic"] = {"intercept": a2, "slope": b2, "log_likelihood": log_likelihood(y, a2 + b2 * z)}
    full = fits.get("logistic", fits["intercept"])
    n_full = 2 if "logistic" in fits else 1
    tests: list[dict[str, float | str | bool]] = []
    selected = "logistic" if "logistic" in fits else "intercept"
    for name, n_params in CLOSED_TEST_MODELS:
        if n_params >= n_full:
            break
        statistic = max(0.0, 2.0 * (full["log_likelihood"] - fits[name]["log_likelihood"]))
        df = n_full - n_params
        p_value = float(chi2.sf(statistic, df))
        rejected = p_value < alpha
        tests.append(
            {
                "model": name,
                "against": "logistic" if n_full == 2 else "intercept",
                "statistic": statistic,
                "df": df,
                "p_value": p_value,
                "rejected": rejected,
            }
        )
        if not rejected:
            selected = name
            break
    chosen = fits[selected]
    return ClosedTest(selected, float(chosen["intercept"]), float(chosen["slope"]), alpha, fits, tests)
