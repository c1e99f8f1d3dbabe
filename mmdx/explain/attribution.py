"""One entry point for attributions: :func:`explain`, with Captum's shape.

``explain(model, inputs, baselines=None, method="integrated_gradients", target=None, n_steps=32,
internal_batch_size=None)`` explains a batch of cases in one call and returns one
:class:`CaseExplanation` per case: an image map on the model's grid and on the original image's grid, an
attribution per tabular feature in the feature's own terms, an attribution per note token (or word) with
its character span, a total per modality, and for Integrated Gradients the convergence delta.

**What is explained.** The *calibrated logit* of the target class, ``sign * (logit / temperature +
offset)`` (``sign`` = +1 for the positive class, the default, and -1 for the negative one). The calibrated
probability is its sigmoid, so attributions are in the units the clinician's probability is made of; pass
``temperature=1`` and ``offset=0`` to explain the raw logit. The temperature divides every attribution by
the same constant and the offset moves none, so calibration changes no ranking.

**Methods.**

- ``integrated_gradients`` (Sundararajan et al., "Axiomatic Attribution for Deep Networks", ICML 2017):
  Captum's :class:`~captum.attr.IntegratedGradients`, run *jointly* over the image, the normalised tabular
  values and the text token embeddings, i.e. on ``model.forward_parts(image, tabular, text_embeds=...)``
  with the embeddings of the token ids as an input (equivalent to ``LayerIntegratedGradients`` at
  ``model.text_embedding_layer``, and lets one call integrate all three modalities along one path). The
  missing indicators, categorical columns, attention mask and presence are held fixed. Completeness holds:
  the attributions of all inputs sum to ``f(x) - f(baseline)`` up to the reported convergence delta.
  A token's attribution is the sum over its embedding dimensions; an image voxel's the sum over channels.
- ``occlusion`` (Zeiler and Fergus, ECCV 2014): Captum's :class:`~captum.attr.Occlusion`: image patches
  (``occlusion_window`` voxels per side, non-overlapping), one tabular feature at a time, one categorical
  column at a time (set to "unknown"), one token at a time, each replaced by its baseline; the attribution
  is ``f(x) - f(x with that part replaced)``, given to every voxel of the patch. A modality's total is
  ``f(x) - f(x with the whole modality replaced)``. A word's value is the sum of its pieces' values.

**Missing modalities** (absent from the case, or from the model) get no attribution (``None``) and are
listed in :attr:`CaseExplanation.missing_modalities`; the fusion masks them exactly, so their inputs
receive exactly zero gradient and zero occlusion effect anyway.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mmdx.data.note_spans import PhraseSpan, TokenSpan, covered_characters, phrase_spans, token_spans
from mmdx.errors import MmdxError
from mmdx.explain.grids import ImageGrid, to_original_grid
from mmdx.explain.inputs import Baselines, ExplainInputs, make_baselines
from mmdx.keys import MODALITIES, Modality
from mmdx.registry import Registry

DEFAULT_STEPS = 32
#: Captum's quadrature rule for the integration steps of Integrated Gradients.
IG_INTEGRATION = "gausslegendre"
#: Voxels per forward pass that :func:`auto_internal_batch_size` aims at (about 8 volumes of 64^3).
VOXEL_BUDGET = 2**21


def auto_internal_batch_size(image_shape: tuple[int, ...] | None) -> int | None:
    """Inputs per forward pass for images of spatial ``image_shape``: ``VOXEL_BUDGET // voxels`` (at least
    1), so a 3D DenseNet's activations fit in a few GB; ``None`` (no limit) without images."""
    if not image_shape:
        return None
    return max(1, VOXEL_BUDGET // int(np.prod(image_shape)))


@dataclass
class FeatureAttribution:
    """One tabular column of one case, in the feature's own terms.

    ``value``: the raw value in the canonical ``unit`` (numeric) or the category label (categorical),
    ``None`` when missing. ``attribution``: ``None`` when the method does not attribute the column (the
    categorical columns under Integrated Gradients) or the tabular modality is absent.
    """

    key: str
    display: str
    value: float | str | None
    unit: str | None
    missing: bool
    reference_low: float | None
    reference_high: float | None
    abnormal: bool | None
    attribution: float | None
    kind: str = "numeric"

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "display": self.display,
            "kind": self.kind,
            "value": self.value,
            "unit": self.unit,
            "missing": self.missing,
            "reference_low": self.reference_low,
            "reference_high": self.reference_high,
            "abnormal": self.abnormal,
            "attribution": self.attribution,
        }


@dataclass
class CaseExplanation:
    """The attributions of one case (see the module docs for the method and the explained output).

    Attributes:
        output: ``f(x)``, the explained output (calibrated logit of the target class).
        baseline_output: ``f(baseline)``: every attributed input at its baseline.
        logit: the raw logit ``[B]`` entry; ``probability``: the calibrated probability of the positive class.
        gates: per-modality gate values of the prediction; ``presence``: which modalities the case has.
        image_map: ``model_shape`` float32 attribution per model voxel, ``None`` without an image.
        image_original: the map on the original image grid (``image_grid.original_shape``), or ``None``.
        tabular: one :class:`FeatureAttribution` per numeric then categorical column, ``None`` if absent.
        tabular_attributions: ``[F]`` raw attribution of each numeric column.
        tokens: one :class:`~mmdx.data.note_spans.TokenSpan` per word (or token), ``None`` without text.
        token_attributions: ``[T]`` raw attribution of each token position.
        modality_totals: modality -> summed attribution (IG) or whole-modality occlusion effect; ``None``
            for a missing modality.
        convergence_delta: IG only: ``sum(attributions) - (output - baseline_output)``.
    """

    case_id: str
    method: str
    target: int
    output: float
    baseline_output: float
    logit: float
    probability: float
    temperature: float
    gates: dict[str, float]
    presence: dict[str, bool]
    image_map: np.ndarray | None = None
    image_grid: ImageGrid | None = None
    image_original: np.ndarray | None = None
    tabular: list[FeatureAttribution] | None = None
    tabular_attributions: np.ndarray | None = None
    categorical_attributions: np.ndarray | None = None
    tokens: list[TokenSpan] | None = None
    #: the note's clauses (a negation cue with its scope as one unit), each the sum of its words
    phrases: list[PhraseSpan] | None = None
    token_attributions: np.ndarray | None = None
    text_covered_characters: int | None = None
    modality_totals: dict[str, float | None] = field(default_factory=dict)
    convergence_delta: float | None = None
    n_steps: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    #: the method that drew ``image_map`` (``method`` unless :func:`explain` got ``image_method``)
    image_method: str | None = None
    #: the methods' own quality fields for this case (e.g. ``split_half_error``, ``cam_positive_share``)
    quality: dict[str, float] = field(default_factory=dict)

    @property
    def missing_modalities(self) -> list[str]:
        return [m for m, present in self.presence.items() if not present]

    def to_dict(self) -> dict:
        """JSON-ready summary (no arrays; the image maps are written as files)."""
        return {
            "case_id": self.case_id,
            "method": self.method,
            "target": "positive" if self.target == 1 else "negative",
            "explained_output": "calibrated logit (logit / temperature + offset) of the target class",
            "temperature": self.temperature,
            "output": self.output,
            "baseline_output": self.baseline_output,
            "logit": self.logit,
            "probability": self.probability,
            "gates": self.gates,
            "presence": self.presence,
            "missing_modalities": self.missing_modalities,
            "modality_totals": self.modality_totals,
            "tabular": None if self.tabular is None else [f.to_dict() for f in self.tabular],
            "tokens": None if self.tokens is None else [t.to_dict() for t in self.tokens],
            "phrases": None if self.phrases is None else [p.to_dict() for p in self.phrases],
            "text_covered_characters": self.text_covered_characters,
            "n_steps": self.n_steps,
            "convergence_delta": self.convergence_delta,
            "settings": self.settings,
            "image_method": self.image_method or self.method,
            "quality": self.quality,
        }


class _ExplainedOutput(nn.Module):
    """``forward_parts`` as a function of the attributed tensors, returning the explained output ``[B]``.

    Positional arguments: the attributed inputs named by ``names`` (in that order), then the fixed ones
    ``tabular_missing, categorical, text_mask, presence`` (any may be ``None``). Under occlusion the
    categorical indices arrive as floats (Captum perturbs them) and are rounded back to indices.
    """

    def __init__(
        self, model: nn.Module, names: tuple[str, ...], temperature: float, sign: float, offset: float = 0.0
    ) -> None:
        super().__init__()
        self.model = model
        self.names = names
        self.scale = sign / temperature
        self.shift = sign * offset

    def forward(self, *args: Tensor | None) -> Tensor:
        given = dict(zip(self.names, args[: len(self.names)], strict=True))
        missing, categorical, text_mask, presence = args[len(self.names) :]
        categorical = given.get("categorical", categorical)
        if categorical is not None and categorical.is_floating_point():
            categorical = categorical.round().long()
        out = self.model.forward_parts(
            image=given.get("image"),
            tabular=given.get("tabular"),
            tabular_missing=missing,
            categorical=categorical,
            text_embeds=given.get("text"),
            text_mask=text_mask,
            presence=presence,
        )
        return out.logits * self.scale + self.shift


@contextlib.contextmanager
def _inference_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients (attribution differentiates the inputs only); restored after."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def _model_modalities(model: nn.Module) -> tuple[Modality, ...]:
    modalities = getattr(model, "modalities", None)
    if modalities is None or not hasattr(model, "forward_parts"):
        raise MmdxError(
            "explain needs a mmdx MultimodalClassifier (forward_parts, modalities), "
            f"got {type(model).__name__}"
        )
    return tuple(modalities)


def _check_target(target: int | None) -> int:
    if target is None:
        return 1
    if isinstance(target, bool) or target not in (0, 1):
        raise MmdxError(
            "explain: target must be None or 1 (the positive class) or 0 (the negative class), "
            f"got {target!r}"
        )
    return int(target)


@dataclass(frozen=True)
class MethodCall:
    """Everything an attribution method may read for one batch: the attributed ``parts`` (name ->
    ``(input, baseline)``), the ``fixed`` forward arguments, the explained output ``[B]`` already computed,
    and the caller's settings."""

    model: nn.Module
    parts: dict[str, tuple[Tensor, Tensor]]
    fixed: tuple
    output: Tensor
    inputs: ExplainInputs
    baselines: Baselines
    temperature: float
    sign: float
    n_steps: int
    internal_batch_size: int | None
    occlusion_window: int | None
    options: dict[str, Any] = field(default_factory=dict)
    #: the calibration's offset: the explained output is ``sign * (logit / temperature + offset)``
    offset: float = 0.0


@dataclass(frozen=True)
class ExplanationMethod:
    """One attribution method.

    Attributes:
        name: the name written into explanations (``integrated_gradients``).
        short: the ``mmdx explain --method`` value (``ig``).
        suffix: appended to the case's file names when it is not the primary method (``_occlusion``).
        description: one line for listings.
        attribute: computes ``{"attributions", "totals", "output", "baseline_output", "delta", ...}``.
        settings: the method's own settings recorded with each explanation, from the call and its result.
        sums_units: a unit's value (a voxel over channels, a token over embedding dimensions) is the sum of
            its elements' attributions (IG splits a share over them) rather than their mean (occlusion
            gives every element of a window the window's whole effect).
        integrates: reports integration steps and the completeness (convergence) delta.
        modalities: the modalities it attributes (the image-only methods of
            :mod:`mmdx.explain.image_methods` leave the values and the note unattributed).
        title: the name clinicians read in the dashboard and the audit (``Integrated Gradients``).

    ``attribute`` may also return ``"quality"``: name -> ``[B]`` tensor of per-case quality fields.
    """

    name: str
    short: str
    suffix: str
    description: str
    attribute: Callable[[MethodCall], dict[str, Any]]
    settings: Callable[[MethodCall, dict[str, Any]], dict[str, Any]]
    sums_units: bool
    integrates: bool
    modalities: tuple[str, ...] = ("image", "tabular", "text")
    title: str = ""


def method_title(name: str) -> str:
    """The readable title of the method called ``name``; the name itself for a method this version does not
    know (an explanation written by another version)."""
    spec = next((s for s in EXPLANATION_METHODS if name in (s.name, s.short)), None)
    return (spec.title or spec.name) if spec is not None else name


#: The attribution methods, in the order ``mmdx explain --method both`` runs them (the first is primary).
EXPLANATION_METHODS: Registry[ExplanationMethod] = Registry("explanation method")


def resolve_method(method: str) -> str:
    """A method's name or its short name (``"ig"``) -> the name; unknown names raise with a suggestion."""
    for spec in EXPLANATION_METHODS:
        if method in (spec.name, spec.short):
            return spec.name
    return EXPLANATION_METHODS.get(method).name


def explain(
    model: nn.Module,
    inputs: ExplainInputs,
    baselines: Baselines | None = None,
    method: str = "integrated_gradients",
    target: int | None = None,
    n_steps: int = DEFAULT_STEPS,
    internal_batch_size: int | None = None,
    *,
    temperature: float = 1.0,
    offset: float = 0.0,
    occlusion_window: int | None = None,
    merge_words: bool = True,
    resample: bool = True,
    image_method: str | None = None,
    method_options: dict[str, Any] | None = None,
) -> list[CaseExplanation]:
    """Explain ``B`` cases in one call.

    Args:
        model: a :class:`~mmdx.models.classifier.MultimodalClassifier` (put in eval mode for the call).
        inputs: the cases (:class:`~mmdx.explain.inputs.ExplainInputs`).
        baselines: reference inputs; default :func:`~mmdx.explain.inputs.make_baselines` (air, median,
            [PAD]).
        method: ``"integrated_gradients"`` (``"ig"``) or ``"occlusion"``.
        target: ``None`` or 1: the positive class; 0: the negative class.
        n_steps: integration steps of Integrated Gradients (Gauss-Legendre quadrature).
        internal_batch_size: IG: how many interpolated cases go through the model at once (Captum's
            argument; lower it to fit a 3D case in memory); occlusion: perturbed cases per forward pass.
            Default: :func:`auto_internal_batch_size` of the image grid (8 for 64^3, everything in 2D).
        temperature: the bundle's calibration temperature and ``offset`` its offset: the explained output is
            the calibrated logit ``logit / T + offset`` (an offset moves no attribution).
        occlusion_window: side of the occlusion patches in model voxels (default: an eighth of the
            smallest side, at least 1).
        merge_words: report one span per word rather than per sub-word token.
        resample: also resample the image map onto the original grid when ``inputs.image_grids`` is given.
        image_method: another method to draw the image map (e.g. ``"gradcam"``), ``method`` then explains
            the values and the note; recorded as :attr:`CaseExplanation.image_method`.
        method_options: the methods' own settings (``cam_layer``, ``nt_samples``, ``noise``,
            ``shap_samples``, ``occlusion_sigma``, ``seed``; see :mod:`mmdx.explain.image_methods`).

    Returns:
        One :class:`CaseExplanation` per case, in input order.
    """
    spec = EXPLANATION_METHODS.get(resolve_method(method))
    method = spec.name
    image_spec = EXPLANATION_METHODS.get(resolve_method(image_method)) if image_method else spec
    target = _check_target(target)
    if not (isinstance(n_steps, int) and n_steps >= 1):
        raise MmdxError(f"explain: n_steps must be a positive integer, got {n_steps!r}")
    if internal_batch_size is not None and not (
        isinstance(internal_batch_size, int) and internal_batch_size >= 1
    ):
        raise MmdxError(
            f"explain: internal_batch_size must be a positive integer or None, got {internal_batch_size!r}"
        )
    if not temperature > 0:
        raise MmdxError(f"explain: temperature must be > 0, got {temperature!r}")
    if len(inputs) == 0:
        return []
    modalities = _model_modalities(model)
    baselines = baselines if baselines is not None else make_baselines(inputs)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    inputs = inputs.to(device)
    sign = 1.0 if target == 1 else -1.0
    if internal_batch_size is None:
        internal_batch_size = auto_internal_batch_size(
            None
            if inputs.image is None or Modality.IMAGE not in modalities
            else tuple(inputs.image.shape[2:])
        )

    with _inference_mode(model):
        parts = _attributed_parts(model, modalities, inputs, baselines, device)
        fixed = (inputs.tabular_missing, inputs.categorical, inputs.text_mask, inputs.presence)
        with torch.no_grad():
            raw = model.forward_parts(
                image=inputs.image,
                tabular=inputs.tabular,
                tabular_missing=inputs.tabular_missing,
                categorical=inputs.categorical,
                text_embeds=parts.get("text", (None, None))[0],
                text_mask=inputs.text_mask,
                presence=inputs.presence,
            )
        output = sign * (raw.logits.detach().double() / temperature + offset)
        call = MethodCall(
            model,
            parts,
            fixed,
            output,
            inputs,
            baselines,
            temperature,
            sign,
            n_steps,
            internal_batch_size,
            occlusion_window,
            dict(method_options or {}),
            offset,
        )
        result = spec.attribute(call)
        settings = {
            "method": method,
            "baselines": dict(baselines.description),
            "merge_words": merge_words,
            **spec.settings(call, result),
        }
        if image_spec is not spec:
            result = _with_image_of(image_spec, call, result, settings)
    return _assemble(inputs, modalities, raw, result, spec, target, call, settings, merge_words, resample)


def _with_image_of(
    image_spec: ExplanationMethod, call: MethodCall, result: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    """``result`` with its image map (and image total) replaced by ``image_spec``'s."""
    if "image" not in call.parts:
        return result
    drawn = image_spec.attribute(call)
    attributions = {**result["attributions"], "image": drawn["attributions"]["image"]}
    if not image_spec.sums_units:  # keep _assemble's per-method channel rule for the image
        attributions["image"] = attributions["image"].mean(1, keepdim=True)
    settings["image_method"] = image_spec.name
    settings["image_settings"] = image_spec.settings(call, drawn)
    return {
        **result,
        "attributions": attributions,
        "image_method": image_spec.name,
        "quality": {**(result.get("quality") or {}), **(drawn.get("quality") or {})},
    }


def _attributed_parts(
    model: nn.Module,
    modalities: tuple[Modality, ...],
    inputs: ExplainInputs,
    baselines: Baselines,
    device: torch.device,
) -> dict[str, tuple[Tensor, Tensor]]:
    """name -> (input, baseline) for each modality the model has and the batch holds."""
    parts: dict[str, tuple[Tensor, Tensor]] = {}

    def baseline_for(name: str, value: Tensor | None, like: Tensor) -> Tensor:
        if value is None:
            raise MmdxError(
                f"explain: the baselines lack '{name}' but the inputs have it; use make_baselines"
            )
        if tuple(value.shape) != tuple(like.shape):
            raise MmdxError(
                f"explain: the {name} baseline has shape {tuple(value.shape)}, the input {tuple(like.shape)}"
            )
        return value.to(device=device, dtype=like.dtype)

    if Modality.IMAGE in modalities and inputs.image is not None:
        parts["image"] = (inputs.image.float(), baseline_for("image", baselines.image, inputs.image.float()))
    if Modality.TABULAR in modalities and inputs.tabular is not None:
        tab = inputs.tabular.float()
        parts["tabular"] = (tab, baseline_for("tabular", baselines.tabular, tab))
    if Modality.TEXT in modalities and inputs.text_ids is not None:
        base_ids = baseline_for("text_ids", baselines.text_ids, inputs.text_ids).long()
        with torch.no_grad():
            parts["text"] = (model.embed_text(inputs.text_ids).detach(), model.embed_text(base_ids).detach())
    if not parts:
        raise MmdxError(
            f"explain: the inputs hold none of the model's modalities ({', '.join(modalities)}); give "
            "image, tabular or text_ids"
        )
    return parts


def _integrated_gradients(call: MethodCall) -> dict[str, Any]:
    """Joint IG over the attributed parts. ``output``: ``[B]`` f(x), already computed by the caller.

    The convergence delta is Captum's (``compute_convergence_delta``): ``sum(attributions) - (f(x) -
    f(baseline))``; computed here from f(x) and f(baseline), which are needed anyway, rather than by
    Captum, which would run the model on both once more.
    """
    from captum.attr import IntegratedGradients

    model, parts, fixed, output = call.model, call.parts, call.fixed, call.output
    temperature, sign = call.temperature, call.sign
    names = tuple(parts)
    forward = _ExplainedOutput(model, names, temperature, sign, call.offset)
    inputs = tuple(parts[n][0] for n in names)
    baselines = tuple(parts[n][1] for n in names)
    ig = IntegratedGradients(forward)
    with torch.enable_grad():
        attributions = ig.attribute(
            inputs,
            baselines=baselines,
            additional_forward_args=fixed,
            n_steps=call.n_steps,
            method=IG_INTEGRATION,
            internal_batch_size=call.internal_batch_size,
        )
    with torch.no_grad():
        baseline_output = forward(*baselines, *fixed).double()
    per_part = dict(zip(names, attributions, strict=True))
    totals = {n: a.detach().double().flatten(1).sum(1) for n, a in per_part.items()}
    delta = torch.stack(list(totals.values())).sum(0) - (output - baseline_output)
    if call.options.get("tabular_baseline") == "training" and "tabular" in parts:
        per_part["tabular"], totals["tabular"] = _expected_tabular(call)
    return {
        "attributions": {n: a.detach() for n, a in per_part.items()},
        "totals": totals,
        "output": output,
        "baseline_output": baseline_output,
        "delta": delta,
    }


#: Samples of (training case, point on the path) for the expected-gradients tabular attribution.
EXPECTED_SAMPLES = 64


def _expected_tabular(call: MethodCall) -> tuple[Tensor, Tensor]:
    """Expected gradients of the values (Erion et al., Nat. Mach. Intell. 2021): the mean of
    ``(x - x') * grad f(x' + a (x - x'))`` over training cases ``x'`` (``Baselines.tabular_reference``) and
    ``a ~ U(0, 1)``, image and note held at the case's values. Its total estimates ``f(x) - E f(x')``; it is
    not confounded by one reference point such as the training median. Returns (attributions, totals)."""
    reference = call.baselines.tabular_reference
    tab = call.parts["tabular"][0]
    if reference is None:
        raise MmdxError(
            "explain: tabular_baseline='training' needs Baselines.tabular_reference (normalised values of "
            "training cases); 'mmdx explain' fills it from the training split"
        )
    names = tuple(call.parts)
    forward = _ExplainedOutput(call.model, names, call.temperature, call.sign, call.offset)
    generator = torch.Generator().manual_seed(int(call.options.get("seed", 0)))
    samples = int(call.options.get("expected_samples", EXPECTED_SAMPLES))
    reference = reference.to(tab)
    out = torch.zeros_like(tab)
    for i in range(tab.shape[0]):
        pick = torch.randint(0, reference.shape[0], (samples,), generator=generator)
        alpha = torch.rand(samples, 1, generator=generator).to(tab)
        x = tab[i : i + 1]
        start = reference[pick]
        points = (start + alpha * (x - start)).requires_grad_(True)
        args = [
            points
            if n == "tabular"
            else call.parts[n][0][i : i + 1].expand(samples, *call.parts[n][0].shape[1:])
            for n in names
        ]
        fixed = [None if f is None else f[i : i + 1].expand(samples, *f.shape[1:]) for f in call.fixed]
        with torch.enable_grad():
            (gradient,) = torch.autograd.grad(forward(*args, *fixed).sum(), points)
        out[i] = ((x - start) * gradient).mean(0).detach()
    return out, out.double().sum(1)


def _default_window(shape: tuple[int, ...]) -> int:
    return max(1, min(shape) // 8)


def _occlusion(call: MethodCall) -> dict[str, Any]:
    from captum.attr import Occlusion

    model, fixed, output, inputs, baselines = call.model, call.fixed, call.output, call.inputs, call.baselines
    temperature, sign = call.temperature, call.sign
    window, internal_batch_size = call.occlusion_window, call.internal_batch_size
    parts = dict(call.parts)
    if inputs.categorical is not None and inputs.categorical.shape[1] > 0 and "tabular" in parts:
        base = (
            baselines.categorical
            if baselines.categorical is not None
            else torch.zeros_like(inputs.categorical)
        )
        parts["categorical"] = (inputs.categorical.float(), base.to(inputs.categorical.device).float())
    names = tuple(parts)
    forward = _ExplainedOutput(model, names, temperature, sign, call.offset)
    windows, strides = [], []
    image_window = None
    for name in names:
        tensor = parts[name][0]
        if name == "image":
            spatial = tuple(tensor.shape[2:])
            image_window = int(window) if window is not None else _default_window(spatial)
            if image_window < 1:
                raise MmdxError(f"explain: occlusion_window must be >= 1 voxel, got {window!r}")
            side = tuple(min(image_window, s) for s in spatial)
            windows.append((tensor.shape[1], *side))
            strides.append((tensor.shape[1], *side))
        elif name == "text":
            windows.append((1, tensor.shape[2]))
            strides.append((1, tensor.shape[2]))
        else:
            windows.append((1,))
            strides.append((1,))
    batch = parts[names[0]][0].shape[0]
    per_eval = max(1, min(64, (internal_batch_size or 64 * batch) // batch))
    occlusion = Occlusion(forward)
    full = tuple(parts[n][0] for n in names)
    with torch.no_grad():
        attributions = occlusion.attribute(
            full,
            sliding_window_shapes=tuple(windows),
            strides=tuple(strides),
            baselines=tuple(parts[n][1] for n in names),
            additional_forward_args=fixed,
            perturbations_per_eval=per_eval,
        )
        baseline_output = forward(*(parts[n][1] for n in names), *fixed).double()
        totals = {}
        for k, name in enumerate(names):
            if name == "categorical":
                continue
            replaced = list(full)
            replaced[k] = parts[name][1]
            if name == "tabular" and "categorical" in parts:
                replaced[names.index("categorical")] = parts["categorical"][1]
            totals[name] = output - forward(*replaced, *fixed).double()
    return {
        "attributions": {n: a.detach() for n, a in zip(names, attributions, strict=True)},
        "totals": totals,
        "output": output,
        "baseline_output": baseline_output,
        "delta": None,
        "window": image_window,
    }


def _assemble(
    inputs: ExplainInputs,
    modalities: tuple[Modality, ...],
    raw: Any,
    result: dict[str, Any],
    spec: ExplanationMethod,
    target: int,
    call: MethodCall,
    settings: dict,
    merge_words: bool,
    resample: bool,
) -> list[CaseExplanation]:
    temperature, n_steps = call.temperature, call.n_steps
    attributions = result["attributions"]
    # IG splits a unit's share over its channels / embedding dimensions (sum them); occlusion gives every
    # element of an occluded window the window's whole effect (any one of them is the unit's value)
    reduce = (lambda t, dim: t.sum(dim)) if spec.sums_units else (lambda t, dim: t.mean(dim))
    presence = inputs.presence.cpu().numpy()
    logits = raw.logits.detach().double().cpu().numpy()
    gates = raw.gates.detach().double().cpu().numpy()
    explanations = []
    for i, case_id in enumerate(inputs.case_ids):
        present = {str(m): bool(presence[i, j]) and m in modalities for j, m in enumerate(MODALITIES)}
        explanation = CaseExplanation(
            case_id=case_id,
            method=spec.name,
            target=target,
            output=float(result["output"][i]),
            baseline_output=float(result["baseline_output"][i]),
            logit=float(logits[i]),
            probability=float(1.0 / (1.0 + math.exp(-(logits[i] / temperature + call.offset)))),
            temperature=float(temperature),
            gates={str(m): float(gates[i, j]) for j, m in enumerate(MODALITIES)},
            presence=present,
            convergence_delta=None if result["delta"] is None else float(result["delta"][i]),
            n_steps=n_steps if spec.integrates else None,
            settings=settings,
            image_method=result.get("image_method", spec.name),
            quality={k: float(v[i]) for k, v in (result.get("quality") or {}).items()},
        )
        totals: dict[str, float | None] = {}
        for modality in MODALITIES:
            name = str(modality)
            totals[name] = (
                float(result["totals"][name][i]) if present[name] and name in result["totals"] else None
            )
        explanation.modality_totals = totals
        if present["image"] and "image" in attributions:
            image_map = reduce(attributions["image"][i], 0).float().cpu().numpy()
            explanation.image_map = image_map
            grid = inputs.image_grids[i] if inputs.image_grids is not None else None
            explanation.image_grid = grid
            if grid is not None and resample:
                explanation.image_original = to_original_grid(image_map, grid)
        if present["tabular"] and "tabular" in attributions:
            values = attributions["tabular"][i].double().cpu().numpy()
            categorical = attributions.get("categorical")
            cat_values = None if categorical is None else categorical[i].double().cpu().numpy()
            explanation.tabular_attributions = values
            explanation.categorical_attributions = cat_values
            explanation.tabular = _feature_attributions(inputs, i, values, cat_values)
        if present["text"] and "text" in attributions:
            per_token = reduce(attributions["text"][i].double(), -1).cpu().numpy()
            explanation.token_attributions = per_token
            text = inputs.texts[i] if inputs.texts is not None else None
            mask = inputs.text_mask[i].cpu().numpy()
            if inputs.text_offsets is not None and text is not None:
                offsets = np.asarray(inputs.text_offsets[i])
                explanation.tokens = token_spans(text, offsets, mask, per_token, merge_words)
                explanation.phrases = phrase_spans(text, token_spans(text, offsets, mask, per_token, True))
                explanation.text_covered_characters = covered_characters(offsets, mask)
            else:
                explanation.tokens = [
                    TokenSpan(f"<token {p}>", -1, -1, float(per_token[p]), (int(p),))
                    for p in np.flatnonzero(mask)
                ]
        explanations.append(explanation)
    return explanations


def _feature_attributions(
    inputs: ExplainInputs, i: int, values: np.ndarray, categorical: np.ndarray | None
) -> list[FeatureAttribution]:
    missing = inputs.tabular_missing[i].cpu().numpy() if inputs.tabular_missing is not None else None
    rows = []
    for j, attribution in enumerate(values):
        info = inputs.features[j] if inputs.features is not None else None
        is_missing = bool(missing[j] > 0.5) if missing is not None else False
        if inputs.canonical is not None:
            raw = float(inputs.canonical[i, j])
            value = None if is_missing or not np.isfinite(raw) else raw
        else:
            value = None if is_missing else float(inputs.tabular[i, j])
        reference = info.reference if info is not None else None
        rows.append(
            FeatureAttribution(
                key=info.key if info else f"feature_{j}",
                display=info.display if info else f"feature {j}",
                value=value,
                unit=info.unit if info else None,
                missing=is_missing,
                reference_low=None if reference is None else float(reference[0]),
                reference_high=None if reference is None else float(reference[1]),
                abnormal=info.is_abnormal(value) if info is not None and value is not None else None,
                attribution=float(attribution),
            )
        )
    if inputs.categorical is not None:
        indices = inputs.categorical[i].cpu().numpy()
        for j, index in enumerate(indices):
            info = inputs.categorical_features[j] if inputs.categorical_features is not None else None
            label = (
                inputs.categories[i][j]
                if inputs.categories is not None
                else (str(int(index)) if index else None)
            )
            rows.append(
                FeatureAttribution(
                    key=info.key if info else f"categorical_{j}",
                    display=info.display if info else f"categorical {j}",
                    value=label,
                    unit=None,
                    missing=int(index) == 0,
                    reference_low=None,
                    reference_high=None,
                    abnormal=None,
                    attribution=None if categorical is None else float(categorical[j]),
                    kind="categorical",
                )
            )
    return rows


EXPLANATION_METHODS.register(
    ExplanationMethod(
        name="integrated_gradients",
        title="Integrated Gradients",
        short="ig",
        suffix="",
        description="Integrated Gradients, jointly over image, tabular values and token embeddings",
        attribute=_integrated_gradients,
        settings=lambda call, result: {
            "n_steps": call.n_steps,
            "integration": IG_INTEGRATION,
            **(
                {"tabular_baseline": "training split (expected gradients)"}
                if call.options.get("tabular_baseline") == "training"
                else {}
            ),
        },
        sums_units=True,
        integrates=True,
    )
)
EXPLANATION_METHODS.register(
    ExplanationMethod(
        name="occlusion",
        title="occlusion",
        short="occlusion",
        suffix="_occlusion",
        description="occlusion of image patches, single features and single tokens",
        attribute=_occlusion,
        settings=lambda call, result: {"occlusion_window": result["window"]},
        sums_units=False,
        integrates=False,
    )
)

# the image-only methods register themselves in their own module
from mmdx.explain import image_methods as _image_methods  # noqa: E402, F401
