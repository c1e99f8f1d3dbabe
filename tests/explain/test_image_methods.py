"""The image-only attribution methods: known answers on linear models, agreement with Captum and MONAI,
the held modalities, and every image encoder naming its target stages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdx.explain.attribution import EXPLANATION_METHODS, MethodCall, explain
from mmdx.explain.image_methods import (
    HeldModalities,
    ImageOutput,
    cam_layer_names,
    class_activation_maps,
    held_model,
)
from mmdx.explain.inputs import Baselines, ExplainInputs, make_baselines
from mmdx.keys import Modality
from mmdx.models.registry import ENCODERS

from .toys import linear_model, random_batch, tiny_model

IMAGE_METHODS = [s.name for s in EXPLANATION_METHODS if s.modalities == ("image",)]


def _call(model, inputs: ExplainInputs, baselines: Baselines | None = None, **options) -> MethodCall:
    from mmdx.explain.attribution import _attributed_parts

    baselines = baselines or make_baselines(inputs)
    parts = _attributed_parts(model, tuple(model.modalities), inputs, baselines, torch.device("cpu"))
    fixed = (inputs.tabular_missing, inputs.categorical, inputs.text_mask, inputs.presence)
    with torch.no_grad():
        output = held_model_output(model, inputs, parts, fixed)
    return MethodCall(model, parts, fixed, output, inputs, baselines, 1.0, 1.0, 8, None, None, options)


def held_model_output(model, inputs, parts, fixed):
    text = parts["text"][0] if "text" in parts else None
    return ImageOutput(model, 1.0, 1.0)(inputs.image, inputs.tabular, text, *fixed).double()


@pytest.mark.parametrize("dims", [2, 3])
def test_every_image_method_draws_a_finite_map_and_leaves_the_other_modalities_alone(dims):
    model = tiny_model(spatial_dims=dims)
    shape = (16,) * dims
    inputs = ExplainInputs.from_batch(random_batch(2, image_shape=shape))
    for name in IMAGE_METHODS:
        (first, _) = explain(model, inputs, method=name, method_options={"nt_samples": 4, "shap_samples": 4})
        assert first.image_map.shape == shape, name
        assert np.isfinite(first.image_map).all(), name
        assert first.tabular_attributions is None and first.token_attributions is None, name
        assert first.modality_totals["tabular"] is None and first.modality_totals["image"] is not None
        assert first.image_method == name


def test_image_method_draws_the_map_and_the_primary_method_the_rest():
    model = tiny_model()
    inputs = ExplainInputs.from_batch(random_batch(2))
    ig = explain(model, inputs)
    mixed = explain(model, inputs, image_method="gradcam", method_options={"cam_layer": "stage1"})
    cam = explain(model, inputs, method="gradcam", method_options={"cam_layer": "stage1"})
    for a, b, c in zip(ig, mixed, cam, strict=True):
        np.testing.assert_allclose(b.token_attributions, a.token_attributions, rtol=1e-6)
        np.testing.assert_allclose(b.tabular_attributions, a.tabular_attributions, rtol=1e-6)
        np.testing.assert_allclose(b.image_map, c.image_map, rtol=1e-6)
        assert b.method == "integrated_gradients" and b.image_method == "gradcam"
        assert b.to_dict()["image_method"] == "gradcam"
        assert b.settings["image_settings"]["cam_layer"] == "stage1"


def test_the_held_model_keeps_the_case_values():
    model = tiny_model()
    data = random_batch(3)
    inputs = ExplainInputs.from_batch(data)
    call = _call(model, inputs)
    wrapped = held_model(call)
    assert isinstance(wrapped, HeldModalities)
    with torch.no_grad():
        expected = model(data).logits
        np.testing.assert_allclose(wrapped(inputs.image).squeeze(1), expected, rtol=1e-5, atol=1e-6)


def _ours_and_captums(variant: str, captum_method: str) -> tuple[np.ndarray, np.ndarray, object]:
    """Our CAM ``variant`` on stage1 of a tiny model, and Captum's layer map ``captum_method`` reduced the
    same way (rectified, summed over channels where Captum keeps them, upsampled to the image grid)."""
    from captum import attr

    model = tiny_model()
    inputs = ExplainInputs.from_batch(random_batch(3))
    call = _call(model, inputs)
    ours, _ = class_activation_maps(call, variant, ["stage1"])
    layer = model.encoders[str(Modality.IMAGE)].cam_layers()["stage1"]
    wrapped = held_model(call)
    method = getattr(attr, captum_method)(lambda x: wrapped(x).squeeze(1), layer)
    image = inputs.image.requires_grad_(True)
    if captum_method == "LayerGradCam":
        theirs = method.attribute(image, relu_attributions=True)
    else:
        theirs = method.attribute(image).sum(1, keepdim=True).clamp(min=0)
    theirs = attr.LayerAttribution.interpolate(theirs, tuple(inputs.image.shape[2:]), "bilinear")
    return ours.detach().numpy(), theirs.detach().numpy(), call


def test_gradcam_matches_captum_layer_gradcam():
    ours, theirs, _ = _ours_and_captums("gradcam", "LayerGradCam")
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-7)


def test_hirescam_is_the_rectified_channel_sum_of_captums_gradient_times_activation():
    ours, theirs, call = _ours_and_captums("hirescam", "LayerGradientXActivation")
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-7)
    gradcam, _ = class_activation_maps(call, "gradcam", ["stage1"])
    assert not np.allclose(ours, gradcam.detach().numpy())  # per location, not per channel


def test_gradcam_matches_monai_on_the_wrapped_model():
    from monai.visualize import GradCAM

    model = tiny_model(spatial_dims=3)
    inputs = ExplainInputs.from_batch(random_batch(2, image_shape=(16, 16, 16)))
    call = _call(model, inputs)
    ours, _ = class_activation_maps(call, "gradcam", ["stage0"])
    monai_cam = GradCAM(
        nn_module=held_model(call),
        target_layers="output.model.encoders.image.stages.0",
        postprocessing=lambda x: x,  # the raw upsampled map, not rescaled to [0, 1]
    )
    theirs = monai_cam(inputs.image, class_idx=0)
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-8)


def _linear(shape=(16, 16)):
    weight = torch.randn(6, generator=torch.Generator().manual_seed(1))
    model = linear_model(image_shape=shape, tabular_weight=weight, text=(50, 4, 12))
    return model, model.encoders[str(Modality.IMAGE)].weight.detach()[0]


def test_smoothgrad_squared_of_a_linear_image_term_is_the_squared_weight():
    model, weight = _linear()
    inputs = ExplainInputs.from_batch(random_batch(2))
    (e, _) = explain(model, inputs, method="smoothgrad_sq", method_options={"nt_samples": 4})
    np.testing.assert_allclose(e.image_map, weight.numpy() ** 2, rtol=1e-4)
    assert e.quality["split_half_error"] < 1e-5


def test_gradient_shap_is_complete_on_a_linear_model_with_training_references():
    model, weight = _linear()
    data = random_batch(2)
    inputs = ExplainInputs.from_batch(data)
    references = torch.rand(5, *data["image"].shape[1:], generator=torch.Generator().manual_seed(3))
    baselines = make_baselines(inputs)
    baselines = Baselines(**{**baselines.__dict__, "image_reference": references})
    (e, _) = explain(model, inputs, baselines, method="gradient_shap", method_options={"shap_samples": 64})
    assert e.quality["completeness_delta"] < 1e-5
    assert "training split" in e.settings["shap_baselines"]
    # linear: W * (x - the sampled references' mean), close to W * (x - their mean)
    expected = (weight * (data["image"][0, 0] - references[:, 0].mean(0))).numpy()
    assert np.corrcoef(e.image_map.ravel(), expected.ravel())[0, 1] > 0.95


def _blob_reader(shape: tuple[int, int]):
    """A model linear in the image that reads only the 3x3 blob at rows 10-12, columns 3-5."""
    model, _ = _linear(shape)
    with torch.no_grad():
        model.encoders[str(Modality.IMAGE)].weight.zero_()
        model.encoders[str(Modality.IMAGE)].weight[0, 10:13, 3:6] = 1.0
    return model


def test_gaussian_occlusion_finds_a_blob_the_model_reads():
    shape = (16, 16)
    model = _blob_reader(shape)
    inputs = ExplainInputs.from_batch(random_batch(1, image_shape=shape))
    (e,) = explain(model, inputs, method="gaussian_occlusion", method_options={"occlusion_sigma": 1.5})
    peak = np.unravel_index(np.argmax(e.image_map), shape)
    assert 9 <= peak[0] <= 13 and 2 <= peak[1] <= 6
    assert e.settings["occlusion_stride"] == 3


def test_normalised_occlusion_is_the_fall_per_unit_of_change():
    shape = (16, 16)
    model = _blob_reader(shape)
    data = random_batch(1, image_shape=shape)
    inputs = ExplainInputs.from_batch(data)
    brighter = ExplainInputs.from_batch({**data, "image": data["image"] * 3})
    options = {"occlusion_sigma": 1.5}
    air = {"image": "air", "image_value": 0.0}
    plain = [
        explain(model, x, make_baselines(x, **air), method="gaussian_occlusion", method_options=options)[0]
        for x in (inputs, brighter)
    ]
    normalised = [
        explain(model, x, make_baselines(x, **air), method="normalised_occlusion", method_options=options)[0]
        for x in (inputs, brighter)
    ]
    # linear in the image: three times the contrast to the baseline, three times the fall, the same per unit
    np.testing.assert_allclose(plain[1].image_map, 3 * plain[0].image_map, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(normalised[1].image_map, normalised[0].image_map, rtol=1e-4, atol=1e-6)
    peak = np.unravel_index(np.argmax(normalised[0].image_map), shape)
    assert 9 <= peak[0] <= 13 and 2 <= peak[1] <= 6
    assert normalised[0].settings["occlusion_stride"] == 3
    # an image at its baseline changes nothing anywhere: the map is 0, not a division by zero
    flat = ExplainInputs.from_batch({**data, "image": torch.zeros_like(data["image"])})
    (e,) = explain(
        model, flat, make_baselines(flat, **air), method="normalised_occlusion", method_options=options
    )
    assert np.all(e.image_map == 0)


def test_location_wise_maps_read_the_finest_stage_by_default():
    model = tiny_model()
    encoder = model.encoders[str(Modality.IMAGE)]
    assert encoder.fine_cam_layer == "stem" != encoder.default_cam_layer
    inputs = ExplainInputs.from_batch(random_batch(2))
    for method, stage in (
        ("hirescam", "stem"),
        ("layercam", "stem"),
        ("gradcam", encoder.default_cam_layer),
        ("gradcam_pp", encoder.default_cam_layer),
    ):
        (e, _) = explain(model, inputs, method=method)
        assert e.settings["cam_layer"] == stage, method
    (e, _) = explain(model, inputs, method="hirescam", method_options={"cam_layer": "stage1"})
    assert e.settings["cam_layer"] == "stage1"


def test_multiscale_cam_is_the_fine_hirescam_times_the_coarse_gradcams():
    model = tiny_model()
    inputs = ExplainInputs.from_batch(random_batch(3))
    call = _call(model, inputs)
    stages = list(model.encoders[str(Modality.IMAGE)].cam_layers())
    assert len(stages) >= 3

    def unit(cam):
        return cam / cam.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1, 1)

    # by default the finest stage (HiResCAM) times the second-to-last (Grad-CAM)
    (e, *_) = explain(model, inputs, method="multiscale_cam")
    assert e.settings["cam_layer"] == f"{stages[0]}+{stages[-2]}"
    fine = unit(class_activation_maps(call, "hirescam", stages[:1])[0])
    coarse = unit(class_activation_maps(call, "gradcam", [stages[-2]])[0])
    np.testing.assert_allclose(e.image_map, (fine * coarse)[0, 0].detach().numpy(), rtol=1e-4, atol=1e-7)
    assert e.image_map.max() <= 1.0 + 1e-6
    assert e.quality["multiscale_empty"] == float(e.image_map.max() <= 0)
    # stages named: the first read with HiResCAM, every other with Grad-CAM, all multiplied
    (three, *_) = explain(
        model, inputs, method="multiscale_cam", method_options={"cam_layer": "+".join(stages[:3])}
    )
    product = unit(class_activation_maps(call, "hirescam", stages[:1])[0])
    for stage in stages[1:3]:
        product = product * unit(class_activation_maps(call, "gradcam", [stage])[0])
    np.testing.assert_allclose(three.image_map, product[0, 0].detach().numpy(), rtol=1e-4, atol=1e-7)


def test_an_unknown_stage_names_the_choices():
    from mmdx.errors import MmdxError

    with pytest.raises(MmdxError, match="choose from stem, stage0, stage1"):
        cam_layer_names(tiny_model(), "stage9")


@pytest.mark.parametrize("name", [s.name for s in ENCODERS.specs() if s.modality == Modality.IMAGE])
def test_every_image_encoder_names_its_target_stages(name):
    arguments = {"spatial_dims": 2, "channels": [4, 8], "out_dim": 8} if name == "small_cnn" else {}
    encoder = ENCODERS.get(name).builder(**arguments)
    layers = encoder.cam_layers()
    assert len(layers) >= 2 and encoder.default_cam_layer in layers
    captured = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, o, n=n: captured.__setitem__(n, o)) for n, m in layers.items()
    ]
    encoder.eval()(torch.rand(1, 1, 64, 64))
    for hook in hooks:
        hook.remove()
    sides = [captured[n].shape[-1] for n in layers]
    assert all(captured[n].ndim == 4 for n in layers) and sides == sorted(sides, reverse=True), sides
    assert captured[encoder.fine_cam_layer].shape[-1] == max(sides)


def test_every_method_has_a_title_and_an_unknown_one_keeps_its_name():
    from mmdx.explain.attribution import method_title

    titles = {spec.name: method_title(spec.name) for spec in EXPLANATION_METHODS}
    assert all(spec.title for spec in EXPLANATION_METHODS)
    assert titles["multiscale_cam"] == "multi-scale CAM" and method_title("ig") == "Integrated Gradients"
    assert len(set(titles.values())) == len(titles)
    assert method_title("a_method_of_a_later_version") == "a_method_of_a_later_version"
