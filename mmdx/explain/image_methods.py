"""Image-only attribution methods: class-activation maps (one stage, or several multiplied),
SmoothGrad-squared, GradientShap and Gaussian occlusion (plain and per unit of change). Each is one
:class:`~mmdx.explain.attribution.ExplanationMethod` registered below.

They explain the same output as every method (the calibrated logit of the target class) as a function of
the image alone: :class:`HeldModalities` wraps the multimodal model so that the case's values and note (and
its missing indicators, categories and presence) are held at the case's own values while the image varies.
The wrapper takes one tensor, as MONAI's ``GradCAM`` and most saliency libraries expect.

**Methods** (settings in ``method_options`` of :func:`~mmdx.explain.attribution.explain`):

- ``gradcam`` (Selvaraju et al., ICCV 2017), ``gradcam_pp`` (Chattopadhay et al., WACV 2018),
  ``layercam`` (Jiang et al., IEEE TIP 2021) and ``hirescam`` (Draelos and Carin, 2020) read the feature map
  of one or more stages of the image encoder (``cam_layer``: a stage name of the encoder's
  ``cam_layers()``, several joined by ``+``; by default the encoder's ``default_cam_layer`` for Grad-CAM
  and Grad-CAM++, which average over a channel, and its finest stage, ``fine_cam_layer``, for LayerCAM and
  HiResCAM, which weigh each location by its own gradient). Grad-CAM weighs
  each channel by its mean gradient, Grad-CAM++ by the positive gradients with the closed-form second-order
  weights, LayerCAM each location by its own positive gradient (sharper on fine stages), HiResCAM each
  location by its own signed gradient (gradient times activation: where the following layers are
  positively homogeneous, as the encoder's average and max pooling are, the sum of its unrectified map is
  the stage's first-order share of the output). The map is the ReLU of the weighted channel sum, upsampled
  (linear interpolation) to the model grid and then to the original grid; several stages are each scaled
  to a maximum of 1 and averaged. Quality fields: ``cam_grid`` (the stage's cells per axis) and
  ``cam_positive_share`` (share of the channel-weighted sum that was positive before the ReLU).
- ``multiscale_cam``: HiResCAM at the finest stage multiplied by Grad-CAM at coarser stages, each map
  scaled to a maximum of 1 (``cam_layer``: the stages, finest first, joined by ``+``; by default the finest
  and the second-to-last stage of ``cam_layers()``, chosen on the validation splits of nine runs: BENCHMARKS.md
  "A multi-scale CAM"). The fine stage says where in the image the evidence sits, voxel by voxel; the
  coarse stage, whose channel-averaged weights change wholesale with the model, keeps only the regions the
  deeper network relies on. Multiplying the maps of several depths follows Poly-CAM (Englebert et al.,
  2024). A location survives only where every stage sees positive evidence; where one stage sees none
  anywhere the map is empty (quality field ``multiscale_empty``: 1 for such a case).
- ``smoothgrad_sq`` (Smilkov et al. 2017; the squared form of Hooker et al., NeurIPS 2019): the mean of the
  squared gradient over ``nt_samples`` copies of the image with Gaussian noise of ``noise`` times the
  image's intensity range. Quality field: ``split_half_error``, the relative L2 difference between the
  maps of the two halves of the samples (0 = converged).
- ``gradient_shap`` (Lundberg and Lee, NeurIPS 2017; Erion et al.'s expected gradients): Captum's
  :class:`~captum.attr.GradientShap` with the baselines drawn from ``Baselines.image_reference``, images
  of the training split (the workflow passes them); without them, the air baseline and a blurred copy of
  each case, recorded as such. Quality fields: the completeness delta, mean and relative.
- ``gaussian_occlusion``: occlusion with a lesion-sized Gaussian window: for each centre on a grid of
  stride ``2 * occlusion_sigma`` voxels, the image is blended towards its baseline with a Gaussian weight of
  standard deviation ``occlusion_sigma`` (default a sixteenth of the smallest side, i.e. the radius of the
  synthetic lesions); the drop of the output is spread back over the voxels with the same weights.
- ``normalised_occlusion``: the same windows, each window's drop divided by the size (L2 norm) of the change
  it made to the image, ``(f(x) - f(x + Δ)) / ||Δ||`` with ``Δ = (baseline - x) * window``: the output's
  fall per unit of change, a finite-difference derivative along the direction to the baseline, averaged
  over the window. Plain occlusion is largest wherever there is much tissue to remove, for any network
  (its map follows the anatomy, and so does a randomised model's); per unit of change, what remains is how
  sensitive *this* model is to each region. A window that changes nothing (air against an air baseline)
  contributes 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdx.errors import MmdxError
from mmdx.explain.attribution import EXPLANATION_METHODS, ExplanationMethod, MethodCall
from mmdx.keys import Modality

CAM_VARIANTS = ("gradcam", "gradcam_pp", "layercam", "hirescam")
#: The CAM variants that weigh each location by its own gradient: they read the encoder's finest stage.
LOCATION_WISE_CAMS = ("layercam", "hirescam")
DEFAULT_NT_SAMPLES = 16
DEFAULT_NOISE = 0.15
DEFAULT_SHAP_SAMPLES = 16


class ImageOutput(nn.Module):
    """The explained output ``[B]`` as a function of the image and the other inputs as separate arguments
    (the form Captum expands along with its samples)."""

    def __init__(self, model: nn.Module, temperature: float, sign: float, offset: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.scale = sign / temperature
        self.shift = sign * offset

    def forward(
        self,
        image: Tensor,
        tabular: Tensor | None,
        text_embeds: Tensor | None,
        tabular_missing: Tensor | None,
        categorical: Tensor | None,
        text_mask: Tensor | None,
        presence: Tensor | None,
    ) -> Tensor:
        out = self.model.forward_parts(
            image=image,
            tabular=tabular,
            tabular_missing=tabular_missing,
            categorical=categorical,
            text_embeds=text_embeds,
            text_mask=text_mask,
            presence=presence,
        )
        return out.logits * self.scale + self.shift


class HeldModalities(nn.Module):
    """One-tensor wrapper: ``forward(image [B, C, *spatial]) -> [B, 1]`` explained output, every other input
    held at the case's values (``held``: the arguments of :class:`ImageOutput` after the image)."""

    def __init__(self, output: ImageOutput, held: tuple) -> None:
        super().__init__()
        self.output = output
        self.held = held

    def forward(self, image: Tensor) -> Tensor:
        return self.output(image, *self.held).unsqueeze(1)


def _held_arguments(call: MethodCall) -> tuple:
    tabular = call.parts["tabular"][0] if "tabular" in call.parts else None
    text = call.parts["text"][0] if "text" in call.parts else None
    return (tabular, text, *call.fixed)


def held_model(call: MethodCall) -> HeldModalities:
    """The model of ``call`` as a function of its image alone (see :class:`HeldModalities`)."""
    return HeldModalities(
        ImageOutput(call.model, call.temperature, call.sign, call.offset), _held_arguments(call)
    )


def _image(call: MethodCall) -> Tensor:
    if "image" not in call.parts:
        raise MmdxError("explain: this method attributes the image, and the inputs hold none")
    return call.parts["image"][0]


def _whole_image_effect(call: MethodCall) -> Tensor:
    """``f(x) - f(x with the image at its baseline)`` per case: the image's total, in output units."""
    with torch.no_grad():
        replaced = held_model(call)(call.parts["image"][1]).squeeze(1).double()
    return call.output - replaced


def _image_result(call: MethodCall, image_map: Tensor, **extra: Any) -> dict[str, Any]:
    effect = _whole_image_effect(call)
    return {
        "attributions": {"image": image_map.detach()},
        "totals": {"image": effect},
        "output": call.output,
        "baseline_output": call.output - effect,
        "delta": None,
        **extra,
    }


# ---------------------------------------------------------------------------------------------------------
# Class-activation maps
# ---------------------------------------------------------------------------------------------------------
def image_encoders(model: nn.Module) -> list[nn.Module]:
    """The image encoders whose stages a CAM reads: the model's, or each ensemble member's."""
    members = getattr(model, "members", None)
    models = list(members) if members is not None else [model]
    return [m.encoders[str(Modality.IMAGE)] for m in models]


def cam_layer_names(model: nn.Module, cam_layer: str | None, variant: str = "gradcam") -> list[str]:
    """The encoder stages the CAM ``variant`` reads: ``cam_layer`` split at ``+``, or the encoder's default
    for the variant (its finest stage for :data:`LOCATION_WISE_CAMS`)."""
    encoder = image_encoders(model)[0]
    layers = encoder.cam_layers()
    default = encoder.fine_cam_layer if variant in LOCATION_WISE_CAMS else encoder.default_cam_layer
    names = (cam_layer or default).split("+")
    for name in names:
        if name not in layers:
            raise MmdxError(
                f"explain: the image encoder {type(encoder).__name__} has no stage {name!r} for "
                f"class-activation maps; choose from {', '.join(layers)}"
            )
    return names


def _cam_weights(variant: str, activation: Tensor, gradient: Tensor) -> Tensor:
    """``[B, C, *spatial]`` weights of each activation for one CAM variant."""
    spatial = tuple(range(2, activation.ndim))
    if variant == "gradcam":
        return gradient.mean(dim=spatial, keepdim=True).expand_as(activation)
    if variant == "layercam":
        return gradient.clamp(min=0)
    if variant == "hirescam":
        return gradient
    # Grad-CAM++: alpha = g^2 / (2 g^2 + sum(A) g^3), the closed form for an exponential of the score
    g2, g3 = gradient.pow(2), gradient.pow(3)
    denominator = 2 * g2 + activation.sum(dim=spatial, keepdim=True) * g3
    alpha = g2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    return (alpha * gradient.clamp(min=0)).sum(dim=spatial, keepdim=True).expand_as(activation)


def stage_maps(
    call: MethodCall, stages: list[tuple[str, str]]
) -> tuple[list[Tensor], list[Tensor], dict[str, list[int]]]:
    """One forward and one backward pass for every ``(stage, variant)``: per stage the rectified map on the
    image grid ``[B, 1, *spatial]``, the share of its channel-weighted sum that was positive ``[B]``, and
    the stage's grid. For an ensemble each member's stage gets the gradient of the members' mean output and
    the members' maps on one stage are summed before the rectification."""
    image = _image(call)
    encoders = image_encoders(call.model)
    names = list(dict.fromkeys(name for name, _ in stages))
    captured: dict[tuple[int, str], Tensor] = {}
    hooks = [
        encoder.cam_layers()[name].register_forward_hook(
            lambda _m, _i, out, key=(index, name): captured.__setitem__(key, out)
        )
        for index, encoder in enumerate(encoders)
        for name in names
    ]
    keys = [(index, name) for index in range(len(encoders)) for name in names]
    try:
        with torch.enable_grad():
            x = image.detach().clone().requires_grad_(True)
            output = held_model(call)(x).squeeze(1)
            activations = [captured[key] for key in keys]
            gradients = dict(zip(keys, torch.autograd.grad(output.sum(), activations), strict=True))
    finally:
        for hook in hooks:
            hook.remove()
    spatial = tuple(image.shape[2:])
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    maps, positive_shares, grids = [], [], {}
    for name, variant in stages:
        per_encoder = []
        for index in range(len(encoders)):
            activation = captured[(index, name)].detach().float()
            gradient = gradients[(index, name)].detach().float()
            per_encoder.append(
                (_cam_weights(variant, activation, gradient) * activation).sum(1, keepdim=True)
            )
        raw = torch.stack(per_encoder).sum(0)
        magnitude = raw.abs().flatten(1).sum(1)
        positive_shares.append(raw.clamp(min=0).flatten(1).sum(1) / magnitude.clamp(min=1e-12))
        maps.append(F.interpolate(raw.clamp(min=0), size=spatial, mode=mode, align_corners=False))
        grids[name] = list(raw.shape[2:])
    return maps, positive_shares, grids


def _unit_max(cam: Tensor) -> Tensor:
    """Each case's map divided by its maximum (an all-zero map stays zero)."""
    return cam / cam.flatten(1).amax(1).clamp(min=1e-12).view(-1, *([1] * (cam.ndim - 1)))


def class_activation_maps(call: MethodCall, variant: str, names: list[str]) -> tuple[Tensor, dict[str, Any]]:
    """``([B, 1, *spatial], quality)``: the CAM of ``variant`` on the image grid; several stages are each
    scaled to a maximum of 1 and averaged."""
    maps, shares, grids = stage_maps(call, [(name, variant) for name in names])
    cam = maps[0] if len(maps) == 1 else torch.stack([_unit_max(m) for m in maps]).mean(0)
    quality = {"cam_grid": grids, "cam_positive_share": torch.stack(shares).mean(0).double()}
    return cam, quality


def multiscale_cam_layers(model: nn.Module, cam_layer: str | None = None) -> list[str]:
    """The stages the multi-scale map multiplies, finest first: ``cam_layer`` split at ``+``, or the
    encoder's finest stage and its second-to-last one (for ``small_cnn`` the stem and stage1; one stage
    when the encoder names only two)."""
    if cam_layer:
        return cam_layer_names(model, cam_layer)
    layers = list(image_encoders(model)[0].cam_layers())
    return [layers[0], layers[-2]] if len(layers) > 2 else layers[:1]


def _multiscale_cam(call: MethodCall) -> dict[str, Any]:
    names = multiscale_cam_layers(call.model, call.options.get("cam_layer"))
    variants = ["hirescam"] + ["gradcam"] * (len(names) - 1)
    maps, shares, grids = stage_maps(call, list(zip(names, variants, strict=True)))
    cam = _unit_max(maps[0])
    for coarse in maps[1:]:
        cam = cam * _unit_max(coarse)
    empty = (cam.flatten(1).amax(1) <= 0).double()
    return _image_result(
        call,
        cam,
        layers=names,
        grid=grids,
        quality={"cam_positive_share": shares[0].double(), "multiscale_empty": empty},
    )


def _cam_method(variant: str):
    def attribute(call: MethodCall) -> dict[str, Any]:
        names = cam_layer_names(call.model, call.options.get("cam_layer"), variant)
        cam, quality = class_activation_maps(call, variant, names)
        return _image_result(
            call,
            cam,
            layers=names,
            grid=quality["cam_grid"],
            quality={"cam_positive_share": quality["cam_positive_share"]},
        )

    return attribute


# ---------------------------------------------------------------------------------------------------------
# SmoothGrad-squared
# ---------------------------------------------------------------------------------------------------------
def _gradients(call: MethodCall, images: Tensor, rows: Tensor) -> Tensor:
    """Gradient of the explained output at ``images`` (cases ``rows`` of the call)."""
    held = tuple(None if h is None else h.index_select(0, rows.to(h.device)) for h in _held_arguments(call))
    output = ImageOutput(call.model, call.temperature, call.sign, call.offset)
    with torch.enable_grad():
        x = images.detach().clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(output(x, *held).sum(), x)
    return gradient.detach()


def _smoothgrad_sq(call: MethodCall) -> dict[str, Any]:
    image = _image(call)
    samples = int(call.options.get("nt_samples", DEFAULT_NT_SAMPLES))
    noise = float(call.options.get("noise", DEFAULT_NOISE))
    if samples < 2 or not noise > 0:
        raise MmdxError(f"explain: smoothgrad_sq needs nt_samples >= 2 and noise > 0, got {samples}, {noise}")
    batch = image.shape[0]
    spread = (image.flatten(1).amax(1) - image.flatten(1).amin(1)).clamp(min=1e-6)
    sigma = (noise * spread).view(-1, *([1] * (image.ndim - 1)))
    generator = torch.Generator(device=image.device).manual_seed(int(call.options.get("seed", 0)))
    per_pass = max(1, (call.internal_batch_size or samples * batch) // batch)
    halves = [torch.zeros_like(image), torch.zeros_like(image)]
    done = 0
    while done < samples:
        k = min(per_pass, samples - done)
        rows = torch.arange(batch).repeat_interleave(k)
        noisy = image.index_select(0, rows.to(image.device))
        noisy = noisy + torch.randn(
            noisy.shape, generator=generator, device=image.device
        ) * sigma.index_select(0, rows.to(image.device))
        squared = _gradients(call, noisy, rows).pow(2).view(batch, k, *image.shape[1:])
        for j in range(k):
            halves[(done + j) % 2] += squared[:, j]
        done += k
    first, second = halves[0] / math.ceil(samples / 2), halves[1] / (samples // 2)
    mean = (halves[0] + halves[1]) / samples
    error = (first - second).flatten(1).norm(dim=1) / mean.flatten(1).norm(dim=1).clamp(min=1e-12)
    return _image_result(
        call, mean, samples=samples, noise=noise, quality={"split_half_error": error.double()}
    )


# ---------------------------------------------------------------------------------------------------------
# GradientShap / expected gradients
# ---------------------------------------------------------------------------------------------------------
def _shap_baselines(call: MethodCall) -> tuple[Tensor, str]:
    image, baseline = call.parts["image"]
    reference = call.baselines.image_reference
    if reference is not None:
        if tuple(reference.shape[1:]) != tuple(image.shape[1:]):
            raise MmdxError(
                f"explain: the reference images have shape {tuple(reference.shape[1:])}, the inputs "
                f"{tuple(image.shape[1:])}"
            )
        return reference.to(image), f"{reference.shape[0]} images of the training split"
    from mmdx.explain.inputs import blurred

    return torch.cat(
        [baseline, blurred(image)]
    ), "air and a blurred copy of each case (no training images given)"


def _gradient_shap(call: MethodCall) -> dict[str, Any]:
    from captum.attr import GradientShap

    image = _image(call)
    samples = int(call.options.get("shap_samples", DEFAULT_SHAP_SAMPLES))
    if samples < 1:
        raise MmdxError(f"explain: gradient_shap needs shap_samples >= 1, got {samples}")
    references, source = _shap_baselines(call)
    output = ImageOutput(call.model, call.temperature, call.sign, call.offset)
    shap = GradientShap(output)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(call.options.get("seed", 0)))
        attributions = []
        deltas = []
        # one case at a time: Captum draws samples x cases rows, which must fit the memory budget
        for i in range(image.shape[0]):
            rows = torch.tensor([i])
            held = tuple(
                None if h is None else h.index_select(0, rows.to(h.device)) for h in _held_arguments(call)
            )
            with torch.enable_grad():
                attribution, delta = shap.attribute(
                    image[i : i + 1],
                    baselines=references,
                    n_samples=samples,
                    stdevs=0.0,
                    additional_forward_args=held,
                    return_convergence_delta=True,
                )
            attributions.append(attribution.detach())
            deltas.append(delta.detach().double().abs().mean())
    image_map = torch.cat(attributions)
    with torch.no_grad():
        reference_mean = torch.stack(
            [
                ImageOutput(call.model, call.temperature, call.sign, call.offset)(
                    references,
                    *(
                        None if h is None else h[i : i + 1].expand(references.shape[0], *h.shape[1:])
                        for h in _held_arguments(call)
                    ),
                )
                .double()
                .mean()
                for i in range(image.shape[0])
            ]
        )
    delta = torch.stack(deltas)
    gap = (call.output - reference_mean).abs().clamp(min=1e-12)
    return {
        **_image_result(call, image_map, samples=samples, source=source),
        "baseline_output": reference_mean,
        "quality": {"completeness_delta": delta, "completeness_delta_relative": delta / gap},
    }


# ---------------------------------------------------------------------------------------------------------
# Occlusion with a Gaussian window
# ---------------------------------------------------------------------------------------------------------
def default_sigma(shape: tuple[int, ...]) -> float:
    """A sixteenth of the smallest side (2 voxels at 32, 4 at 64): about a synthetic lesion's radius."""
    return max(1.0, min(shape) / 16)


def _gaussian_windows(spatial: tuple[int, ...], sigma: float, stride: int) -> tuple[Tensor, list[tuple]]:
    """``[N, *spatial]`` Gaussian weights (peak 1) centred on a grid of ``stride``, and the centres."""
    axes = [torch.arange(s, dtype=torch.float32) for s in spatial]
    starts = [np.arange((s - 1) % stride // 2, s, stride) for s in spatial]
    centres = [
        tuple(int(c) for c in point)
        for point in np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, len(spatial))
    ]
    profiles = [
        [torch.exp(-((axis - float(c)) ** 2) / (2 * sigma**2)) for c in range(size)]
        for axis, size in zip(axes, spatial, strict=True)
    ]
    windows = []
    for centre in centres:
        window = profiles[0][centre[0]]
        for d in range(1, len(spatial)):
            window = window.unsqueeze(-1) * profiles[d][centre[d]].view(*([1] * d), -1)
        windows.append(window)
    return torch.stack(windows), centres


def _occlusion(call: MethodCall, per_unit_change: bool) -> dict[str, Any]:
    image, baseline = call.parts["image"]
    spatial = tuple(image.shape[2:])
    sigma = float(call.options.get("occlusion_sigma") or default_sigma(spatial))
    if not sigma > 0:
        raise MmdxError(f"explain: occlusion_sigma must be > 0 voxels, got {sigma}")
    # neighbouring windows meet near their half maximum (FWHM = 2.35 sigma): 8^3 windows at 32^3
    stride = max(1, int(round(2 * sigma)))
    windows, _ = _gaussian_windows(spatial, sigma, stride)
    windows = windows.to(image)
    n = windows.shape[0]
    output = ImageOutput(call.model, call.temperature, call.sign, call.offset)
    per_pass = max(1, call.internal_batch_size or 64)
    maps = []
    with torch.no_grad():
        for i in range(image.shape[0]):
            held = [None if h is None else h[i : i + 1] for h in _held_arguments(call)]
            drops, sizes = [], []
            for start in range(0, n, per_pass):
                w = windows[start : start + per_pass].unsqueeze(1)
                blended = image[i : i + 1] * (1 - w) + baseline[i : i + 1] * w
                k = blended.shape[0]
                args = [None if h is None else h.expand(k, *h.shape[1:]) for h in held]
                drops.append(call.output[i] - output(blended, *args).double())
                if per_unit_change:
                    change = (baseline[i : i + 1] - image[i : i + 1]) * w
                    sizes.append(change.flatten(1).norm(dim=1).double())
            drop = torch.cat(drops)
            if per_unit_change:  # a window that changes nothing (air against an air baseline) tells nothing
                size = torch.cat(sizes)
                drop = torch.where(size > 1e-6, drop / size.clamp(min=1e-6), torch.zeros_like(drop))
            drop = drop.float()
            spread = (drop.view(-1, *([1] * len(spatial))) * windows).sum(0) / windows.sum(0).clamp(min=1e-6)
            maps.append(spread.unsqueeze(0).expand(image.shape[1], *spatial))
    return _image_result(call, torch.stack(maps), sigma=sigma, stride=stride, windows=n)


def _gaussian_occlusion(call: MethodCall) -> dict[str, Any]:
    return _occlusion(call, per_unit_change=False)


def _normalised_occlusion(call: MethodCall) -> dict[str, Any]:
    return _occlusion(call, per_unit_change=True)


def _image_method(
    name: str,
    title: str,
    description: str,
    attribute: Callable[[MethodCall], dict[str, Any]],
    settings: Callable[[MethodCall, dict[str, Any]], dict[str, Any]],
    sums_units: bool = True,
) -> None:
    """Register one image-only method under ``name`` (its short name and suffix follow from it)."""
    EXPLANATION_METHODS.register(
        ExplanationMethod(
            name=name,
            title=title,
            short=name,
            suffix=f"_{name}",
            description=description,
            attribute=attribute,
            settings=settings,
            sums_units=sums_units,
            integrates=False,
            modalities=("image",),
        )
    )


def _register() -> None:
    cams = [
        (
            variant,
            title,
            f"{title} ({paper}) on the image encoder's target stage(s); image only",
            _cam_method(variant),
        )
        for variant, title, paper in (
            ("gradcam", "Grad-CAM", "Selvaraju et al. 2017"),
            ("gradcam_pp", "Grad-CAM++", "Chattopadhay et al. 2018"),
            ("layercam", "LayerCAM", "Jiang et al. 2021"),
            ("hirescam", "HiResCAM", "Draelos and Carin 2020"),
        )
    ]
    cams.append(
        (
            "multiscale_cam",
            "multi-scale CAM",
            "multi-scale CAM: HiResCAM at the finest stage times Grad-CAM at a coarser stage, each scaled to a "
            "maximum of 1; image only",
            _multiscale_cam,
        )
    )
    for name, title, description, attribute in cams:
        _image_method(
            name,
            title,
            description,
            attribute,
            lambda call, result: {"cam_layer": "+".join(result["layers"]), "cam_grid": result["grid"]},
        )
    _image_method(
        "smoothgrad_sq",
        "SmoothGrad-squared",
        "SmoothGrad-squared: mean squared gradient over noisy copies of the image; image only",
        _smoothgrad_sq,
        lambda call, result: {"nt_samples": result["samples"], "noise": result["noise"]},
    )
    _image_method(
        "gradient_shap",
        "GradientShap",
        "GradientShap (expected gradients) from training-split images; image only",
        _gradient_shap,
        lambda call, result: {"shap_samples": result["samples"], "shap_baselines": result["source"]},
    )
    for name, title, description, attribute in (
        (
            "gaussian_occlusion",
            "Gaussian occlusion",
            "occlusion with a lesion-sized Gaussian window blended towards the baseline; image only",
            _gaussian_occlusion,
        ),
        (
            "normalised_occlusion",
            "normalised occlusion",
            "Gaussian occlusion per unit of image change: the output's fall when a lesion-sized window is "
            "blended towards the baseline, divided by the size of that change; image only",
            _normalised_occlusion,
        ),
    ):
        _image_method(
            name,
            title,
            description,
            attribute,
            lambda call, result: {
                "occlusion_sigma": result["sigma"],
                "occlusion_stride": result["stride"],
                "occlusion_windows": result["windows"],
            },
            sums_units=False,
        )


_register()
