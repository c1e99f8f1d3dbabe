"""Do the attributions mean anything? Deletion curves, the model-randomisation test, convergence deltas.

**Deletion curves** (after Petsiuk et al., "RISE", BMVC 2018; Samek et al., IEEE TNNLS 2017). For each
modality of each case, the units of that modality (model voxels, measured numeric features, content
tokens) are removed in order of decreasing attribution -- "removed" meaning replaced by the baseline, the
same reference the attributions are relative to -- and the probability of the target class is recorded
after removing each fraction in ``fractions``. The same is done in a random order (seeded per case). A
faithful attribution makes the probability fall faster than random removal: the area under the curve
(trapezoid over the fraction axis, in probability units) is lower for the attribution order. The other
modalities stay as they are.

**Model randomisation** (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018): every weight of
a copy of the model is re-initialised *all at once* (the end state of the paper's cascading test: the
question is whether anything of the trained model survives in the explanation), attributions are
recomputed with the same method and baselines, and the Spearman rank correlation between the original
and the randomised attributions is reported per case and modality, both on absolute values (does the map
highlight the same places?) and signed. Only units whose input differs from the baseline are compared:
elsewhere Integrated Gradients is 0 for every model, which would pass for agreement. The correlation must
be low: an explanation that does not change when the model is destroyed explains the input, not the
model. Re-initialisation calls each module's own ``reset_parameters`` (the initialisation it was built
with); parameters owned by no such module (embeddings of modality types, [CLS] tokens, per-feature
weights) are redrawn from a normal distribution with their current mean and standard deviation; constant
parameters (e.g. norm scales at 1) stay.

**Anatomy score**: the Spearman correlation between the image map's magnitude and the input intensity, over
every voxel of the model grid, for the trained and for the randomised model. A map that follows the anatomy
(tissue density, as Integrated Gradients' ``input - air`` factor does) scores high for both models; a map
that follows the model scores lower, and lower still once the model is destroyed.

**Convergence delta** of Integrated Gradients: ``sum(attributions) - (f(x) - f(baseline))`` per case,
reported as a distribution, absolute and relative to ``|f(x) - f(baseline)|``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor, nn

from mmdx.data.note_spans import content_positions
from mmdx.explain.attribution import CaseExplanation, auto_internal_batch_size, explain
from mmdx.explain.inputs import Baselines, ExplainInputs, make_baselines
from mmdx.keys import MODALITIES, CheckVerdict

DEFAULT_FRACTIONS = tuple(float(f) for f in np.linspace(0.0, 1.0, 11))
#: A map passes the randomisation test when its mean |attribution| Spearman against the randomised model's
#: map is below this (Adebayo et al. 2018 read correlations of this size as "the map changed").
RANDOMISATION_PASS = 0.2
#: Bootstrap resamples of the intervals around the checks' means (over cases).
RESAMPLES = 1000


def bootstrap_mean(
    values: Sequence[float | None], seed: int = 0, resamples: int = RESAMPLES
) -> dict[str, Any]:
    """Mean of ``values`` over cases with a 95% percentile-bootstrap interval (``None`` entries dropped):
    ``{"mean", "low", "high", "n"}``, all ``None`` but ``n`` when there is no value."""
    array = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if array.size == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    rng = np.random.default_rng(seed)
    means = array[rng.integers(0, array.size, (resamples, array.size))].mean(1)
    low, high = np.quantile(means, [0.025, 0.975])
    return {"mean": float(array.mean()), "low": float(low), "high": float(high), "n": int(array.size)}


def randomisation_verdict(
    low: float | None, high: float | None, threshold: float = RANDOMISATION_PASS
) -> CheckVerdict | None:
    """``passed`` when the 95% interval ``[low, high]`` of the mean correlation lies inside
    ``(-threshold, threshold)``, ``failed`` when it lies wholly at or beyond one side, else ``not resolved``
    (too few cases to tell); ``None`` without an interval."""
    if low is None or high is None:
        return None
    if -threshold < low and high < threshold:
        return CheckVerdict.PASSED
    if low >= threshold or high <= -threshold:
        return CheckVerdict.FAILED
    return CheckVerdict.NOT_RESOLVED


def _trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return ((y[..., 1:] + y[..., :-1]) * np.diff(x) / 2.0).sum(-1)


@dataclass
class DeletionCurves:
    """Deletion curves of one modality.

    Attributes:
        modality: the modality perturbed.
        fractions: ``[K]`` fractions of the units removed (0 to 1).
        case_ids: the ``N`` cases that have the modality and an attribution for it.
        attribution: ``[N, K]`` probability of the target class after removing the most-attributed units.
        random: ``[N, K]`` the same in a random order.
        n_units: ``[N]`` how many units each case has.
    """

    modality: str
    fractions: np.ndarray
    case_ids: list[str] = field(default_factory=list)
    attribution: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    random: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    n_units: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    def auc(self) -> tuple[np.ndarray, np.ndarray]:
        """``([N], [N])`` area under the attribution-order and random-order curves."""
        if not self.case_ids:
            return np.zeros(0), np.zeros(0)
        return _trapezoid(self.attribution, self.fractions), _trapezoid(self.random, self.fractions)

    def summary(self) -> dict[str, Any]:
        """Means over cases: both AUCs, their difference, the share of cases where attribution wins."""
        n = len(self.case_ids)
        if n == 0:
            return {"n_cases": 0}
        ours, chance = self.auc()
        return {
            "n_cases": n,
            "fractions": [float(f) for f in self.fractions],
            "auc_attribution": float(ours.mean()),
            "auc_random": float(chance.mean()),
            "auc_difference": float((chance - ours).mean()),
            "share_faster_than_random": float((ours < chance).mean()),
            # how much removing the whole modality moves the probability: the test's dynamic range
            "full_removal_change": float((self.attribution[:, 0] - self.attribution[:, -1]).mean()),
            "mean_curve_attribution": [float(v) for v in self.attribution.mean(0)],
            "mean_curve_random": [float(v) for v in self.random.mean(0)],
            "median_units": float(np.median(self.n_units)),
        }


def _units(
    explanation: CaseExplanation, inputs: ExplainInputs, i: int, modality: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """(unit indices, their attributions) of one modality of case ``i``; ``None`` when not attributed."""
    if not explanation.presence.get(modality):
        return None
    if modality == "image" and explanation.image_map is not None:
        scores = explanation.image_map.ravel().astype(np.float64)
        return np.arange(scores.size), scores
    if modality == "tabular" and explanation.tabular_attributions is not None:
        missing = (
            inputs.tabular_missing[i].cpu().numpy() > 0.5 if inputs.tabular_missing is not None else None
        )
        units = (
            np.flatnonzero(~missing)
            if missing is not None
            else np.arange(explanation.tabular_attributions.size)
        )
        return units, explanation.tabular_attributions[units]
    if modality == "text" and explanation.token_attributions is not None:
        mask = inputs.text_mask[i].cpu().numpy()
        if inputs.text_offsets is not None:
            keep = content_positions(np.asarray(inputs.text_offsets[i]), mask)
        else:
            keep = (mask > 0) & ~inputs.text_special()[i].cpu().numpy()
        units = np.flatnonzero(keep)
        return units, explanation.token_attributions[units]
    return None


def _removal_masks(
    n_units: int, order: np.ndarray, units: np.ndarray, size: int, fractions: np.ndarray
) -> Tensor:
    """``[K, size]`` bool: for each fraction, the units removed so far (``order`` indexes ``units``)."""
    masks = torch.zeros(len(fractions), size, dtype=torch.bool)
    for k, fraction in enumerate(fractions):
        count = int(round(float(fraction) * n_units))
        masks[k, torch.from_numpy(units[order[:count]])] = True
    return masks


@torch.no_grad()
def _probabilities(
    model: nn.Module, batch: dict, n: int, temperature: float, sign: float, batch_size: int, offset: float
) -> np.ndarray:
    """Probability of the target class ``[n]`` for a batch of ``n`` cases, ``batch_size`` at a time."""
    out = []
    for start in range(0, n, batch_size):
        part = {k: (v[start : start + batch_size] if isinstance(v, Tensor) else v) for k, v in batch.items()}
        logits = model(part).logits.double()
        out.append(torch.sigmoid(sign * (logits / temperature + offset)).cpu().numpy())
    return np.concatenate(out)


def deletion_curves(
    model: nn.Module,
    inputs: ExplainInputs,
    explanations: Sequence[CaseExplanation],
    baselines: Baselines | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int | None = None,
    offset: float = 0.0,
) -> dict[str, DeletionCurves]:
    """Deletion curves per modality (see the module docs) for the cases of ``inputs`` and their
    ``explanations`` (same order). Returns modality -> :class:`DeletionCurves`.

    ``batch_size``: perturbed copies per forward pass (default: :func:`auto_internal_batch_size`).
    """
    fractions_array = np.asarray(sorted(float(f) for f in fractions))
    if batch_size is None:
        shape = None if inputs.image is None else tuple(inputs.image.shape[2:])
        batch_size = auto_internal_batch_size(shape) or 64
    baselines = baselines if baselines is not None else make_baselines(inputs)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    inputs = inputs.to(device)
    was_training = model.training
    model.eval()
    curves = {str(m): DeletionCurves(str(m), fractions_array) for m in MODALITIES}
    rows: dict[str, dict[str, list]] = {
        str(m): {"ids": [], "ours": [], "random": [], "n": []} for m in MODALITIES
    }
    try:
        for i, explanation in enumerate(explanations):
            sign = 1.0 if explanation.target == 1 else -1.0
            rng = np.random.default_rng([seed, i])
            for modality in MODALITIES:
                name = str(modality)
                found = _units(explanation, inputs, i, name)
                if found is None or found[0].size == 0:
                    continue
                units, scores = found
                # ties (e.g. all-zero stretches) are broken at random, not by position
                jitter = rng.random(units.size)
                ours = np.lexsort((jitter, -scores))
                chance = rng.permutation(units.size)
                batch = _perturbed_batch(inputs, baselines, i, name, units, [ours, chance], fractions_array)
                k = len(fractions_array)
                probabilities = _probabilities(model, batch, 2 * k, temperature, sign, batch_size, offset)
                rows[name]["ids"].append(explanation.case_id)
                rows[name]["ours"].append(probabilities[:k])
                rows[name]["random"].append(probabilities[k:])
                rows[name]["n"].append(units.size)
    finally:
        model.train(was_training)
    for name, row in rows.items():
        if row["ids"]:
            curves[name].case_ids = row["ids"]
            curves[name].attribution = np.stack(row["ours"])
            curves[name].random = np.stack(row["random"])
            curves[name].n_units = np.asarray(row["n"])
    return curves


def _perturbed_batch(
    inputs: ExplainInputs,
    baselines: Baselines,
    i: int,
    modality: str,
    units: np.ndarray,
    orders: list[np.ndarray],
    fractions: np.ndarray,
) -> dict:
    """Case ``i`` repeated once per (order, fraction), its ``modality`` units progressively replaced."""
    repeats = len(orders) * len(fractions)
    case = inputs.subset([i] * repeats)
    batch = case.batch
    if modality == "image":
        image = case.image
        flat = image.reshape(repeats, -1)
        base = baselines.image[i].reshape(1, -1).to(flat)
        masks = torch.cat(
            [_removal_masks(units.size, o, units, flat.shape[1], fractions) for o in orders]
        ).to(flat.device)
        batch["image"] = torch.where(masks, base, flat).reshape(image.shape)
    elif modality == "tabular":
        values = case.tabular
        base = baselines.tabular[i].reshape(1, -1).to(values)
        masks = torch.cat(
            [_removal_masks(units.size, o, units, values.shape[1], fractions) for o in orders]
        ).to(values.device)
        batch["tabular"] = torch.where(masks, base, values)
    else:
        ids = case.text_ids
        base = baselines.text_ids[i].reshape(1, -1).to(ids)
        masks = torch.cat([_removal_masks(units.size, o, units, ids.shape[1], fractions) for o in orders]).to(
            ids.device
        )
        batch["text_ids"] = torch.where(masks, base, ids)
    return batch


# ---------------------------------------------------------------------------------------------------------
# Model randomisation
# ---------------------------------------------------------------------------------------------------------
def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with every weight re-initialised (see the module docs); ``model`` is kept."""
    clone = copy.deepcopy(model)
    before = {name: p.detach().clone() for name, p in clone.named_parameters()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in clone.modules():
            for method in ("reset_parameters", "_reset_parameters"):
                reset = getattr(module, method, None)
                if callable(reset):
                    reset()
                    break
        with torch.no_grad():
            for name, parameter in clone.named_parameters():
                if not torch.equal(parameter, before[name]):
                    continue
                std = float(parameter.float().std()) if parameter.numel() > 1 else 0.0
                if std > 0:
                    parameter.normal_(float(parameter.float().mean()), std)
    clone.eval()
    return clone


@dataclass
class RandomisationResult:
    """Spearman rank correlations between the trained model's and a randomised model's attributions.

    ``absolute[m]`` / ``signed[m]``: one correlation per case that has modality ``m`` (NaN-free).
    """

    absolute: dict[str, list[float]]
    signed: dict[str, list[float]]
    seed: int
    #: image only: Spearman(|map|, input intensity) per case, for the trained and the randomised model
    anatomy_trained: list[float] = field(default_factory=list)
    anatomy_randomised: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reinitialisation": "all weights at once",
            "seed": self.seed,
            "pass_threshold": RANDOMISATION_PASS,
        }
        for name in self.absolute:
            a, s = np.asarray(self.absolute[name]), np.asarray(self.signed[name])
            interval = bootstrap_mean(list(a), seed=self.seed)
            out[name] = {
                "n_cases": int(a.size),
                "spearman_abs_mean": float(a.mean()) if a.size else None,
                "spearman_abs_interval": [interval["low"], interval["high"]] if a.size else None,
                "spearman_abs_median": float(np.median(a)) if a.size else None,
                "spearman_signed_mean": float(s.mean()) if s.size else None,
                "passed": bool(abs(float(a.mean())) < RANDOMISATION_PASS) if a.size else None,
                "verdict": randomisation_verdict(interval["low"], interval["high"]),
            }
        trained, randomised = np.asarray(self.anatomy_trained), np.asarray(self.anatomy_randomised)
        if trained.size and "image" in out:
            out["image"]["anatomy_trained_mean"] = float(trained.mean())
            out["image"]["anatomy_randomised_mean"] = float(randomised.mean()) if randomised.size else None
        return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    value = spearmanr(a, b).statistic
    return None if not np.isfinite(value) else float(value)


def _differs_from_baseline(
    inputs: ExplainInputs, baselines: Baselines, i: int, modality: str, units: np.ndarray
) -> np.ndarray:
    """``[len(units)]`` bool: units whose input differs from the baseline.

    Where input and baseline agree (air around the body, a value at the median) Integrated Gradients gives
    exactly 0 whatever the model, so those units would count as agreement between any two models.
    """
    if modality == "image":
        x, b = inputs.image[i].reshape(-1), baselines.image[i].reshape(-1).to(inputs.image)
    elif modality == "tabular":
        x, b = inputs.tabular[i], baselines.tabular[i].to(inputs.tabular)
    else:
        x, b = inputs.text_ids[i], baselines.text_ids[i].to(inputs.text_ids)
    differs = (x != b).cpu().numpy()
    return differs[units]


def anatomy_score(image_map: np.ndarray, image: np.ndarray) -> float | None:
    """Spearman correlation between ``|image_map|`` and the input intensity ``image`` (same grid; channels
    averaged), over every voxel; ``None`` when either is constant."""
    intensity = np.asarray(image, dtype=np.float64)
    if intensity.ndim == np.asarray(image_map).ndim + 1:
        intensity = intensity.mean(0)
    return _spearman(np.abs(np.asarray(image_map, dtype=np.float64)).ravel(), intensity.ravel())


def randomisation_check(
    model: nn.Module,
    inputs: ExplainInputs,
    explanations: Sequence[CaseExplanation],
    baselines: Baselines | None = None,
    seed: int = 0,
    batch_size: int = 8,
    **explain_kwargs: Any,
) -> RandomisationResult:
    """Recompute the attributions of ``explanations`` on :func:`randomised_copy` of ``model`` and compare.

    ``batch_size``: cases per :func:`~mmdx.explain.attribution.explain` call; ``explain_kwargs`` are passed
    to it (``n_steps``, ``internal_batch_size``, ``temperature``, ...); the method and target are taken
    from the explanations.
    """
    if not explanations:
        return RandomisationResult({str(m): [] for m in MODALITIES}, {str(m): [] for m in MODALITIES}, seed)
    baselines = baselines if baselines is not None else make_baselines(inputs)
    randomised = randomised_copy(model, seed)
    first = explanations[0]
    explain_kwargs = {**explain_kwargs, "resample": False}
    again = []
    for start in range(0, len(explanations), max(1, batch_size)):
        rows = list(range(start, min(start + max(1, batch_size), len(explanations))))
        again += explain(
            randomised,
            inputs.subset(rows),
            baselines.subset(rows),
            method=first.method,
            target=first.target,
            image_method=first.image_method,
            **explain_kwargs,
        )
    absolute: dict[str, list[float]] = {str(m): [] for m in MODALITIES}
    signed: dict[str, list[float]] = {str(m): [] for m in MODALITIES}
    anatomy: tuple[list[float], list[float]] = ([], [])
    for i, (original, new) in enumerate(zip(explanations, again, strict=True)):
        if original.image_map is not None and new.image_map is not None and inputs.image is not None:
            image = inputs.image[i].detach().cpu().numpy()
            for store, explanation in zip(anatomy, (original, new), strict=True):
                value = anatomy_score(explanation.image_map, image)
                if value is not None:
                    store.append(value)
        for modality in MODALITIES:
            name = str(modality)
            a, b = _units(original, inputs, i, name), _units(new, inputs, i, name)
            if a is None or b is None:
                continue
            keep = _differs_from_baseline(inputs, baselines, i, name, a[0])
            for store, transform in ((absolute, np.abs), (signed, lambda x: x)):
                value = _spearman(transform(a[1][keep]), transform(b[1][keep]))
                if value is not None:
                    store[name].append(value)
    return RandomisationResult(absolute, signed, seed, anatomy[0], anatomy[1])


def convergence_summary(explanations: Sequence[CaseExplanation]) -> dict[str, Any]:
    """Distribution of the IG convergence deltas: absolute and relative to ``|f(x) - f(baseline)|``."""
    deltas = np.asarray([e.convergence_delta for e in explanations if e.convergence_delta is not None])
    if deltas.size == 0:
        return {"n_cases": 0}
    gaps = np.asarray(
        [abs(e.output - e.baseline_output) for e in explanations if e.convergence_delta is not None]
    )
    relative = np.abs(deltas) / np.maximum(gaps, 1e-12)
    absolute = np.abs(deltas)
    return {
        "n_cases": int(deltas.size),
        "abs_mean": float(absolute.mean()),
        "abs_median": float(np.median(absolute)),
        "abs_p95": float(np.percentile(absolute, 95)),
        "abs_max": float(absolute.max()),
        "relative_median": float(np.median(relative)),
        "relative_p95": float(np.percentile(relative, 95)),
        "relative_max": float(relative.max()),
    }


__all__ = [
    "DEFAULT_FRACTIONS",
    "RANDOMISATION_PASS",
    "RESAMPLES",
    "bootstrap_mean",
    "randomisation_verdict",
    "anatomy_score",
    "DeletionCurves",
    "RandomisationResult",
    "convergence_summary",
    "deletion_curves",
    "randomisation_check",
    "randomised_copy",
]
