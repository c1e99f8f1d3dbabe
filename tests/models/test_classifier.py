"""The classifier: batch and parts forms agree, missing inputs are skipped or masked exactly, factories."""

from __future__ import annotations

import pytest
import torch

from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES, Keys, Modality
from mmdx.models.classifier import ModelOutput, MultimodalClassifier, build_model
from mmdx.models.fusion import FUSIONS, build_fusion
from mmdx.models.registry import build_encoder

from .inputs import make_batch

IMAGE = {"name": "small_cnn", "spatial_dims": 2, "channels": [8, 16], "out_dim": 16}
TABULAR = {
    "name": "ft_transformer",
    "n_features": 6,
    "categorical_cardinalities": [3, 4],
    "dim": 16,
    "heads": 2,
}
TEXT = {"name": "transformer", "vocab_size": 50, "dim": 16, "heads": 2, "depth": 1, "max_length": 16}


def model(fusion: str = "gated_attention", **parts) -> MultimodalClassifier:
    torch.manual_seed(0)
    parts = parts or {"image": IMAGE, "tabular": TABULAR, "text": TEXT}
    return build_model(**parts, fusion={"name": fusion, "dim": 16})


def parts_of(net: MultimodalClassifier, batch: dict) -> dict:
    return {
        "image": batch[Keys.IMAGE],
        "tabular": batch[Keys.TABULAR],
        "tabular_missing": batch[Keys.TABULAR_MISSING],
        "categorical": batch[Keys.CATEGORICAL],
        "text_embeds": net.text_embedding_layer(batch[Keys.TEXT_IDS]),
        "text_mask": batch[Keys.TEXT_MASK],
        "presence": batch[Keys.PRESENCE],
    }


@pytest.mark.parametrize("fusion", FUSIONS.names())
def test_forward_equals_forward_parts(fusion: str) -> None:
    net = model(fusion).eval()
    batch = make_batch()
    with torch.no_grad():
        out = net(batch)
        parts = net.forward_parts(**parts_of(net, batch))
    assert isinstance(out, ModelOutput)
    assert torch.equal(out.logits, parts.logits) and torch.equal(out.gates, parts.gates)
    assert out.logits.shape == (4,) and out.gates.shape == (4, 3)
    assert (out.gates[~batch[Keys.PRESENCE]] == 0).all()
    assert (out.modality_logits is None) == (fusion != "late")


def test_forward_equals_forward_parts_in_training_mode() -> None:
    net = model().train()
    batch = make_batch()
    torch.manual_seed(5)
    out = net(batch)
    torch.manual_seed(5)
    assert torch.equal(out.logits, net.forward_parts(**parts_of(net, batch)).logits)


def test_eval_mode_is_deterministic() -> None:
    net = model().eval()
    batch = make_batch(seed=3)
    with torch.no_grad():
        first, second = net(batch), net(batch)
    assert torch.equal(first.logits, second.logits) and torch.equal(first.gates, second.gates)


@pytest.mark.parametrize("modality", MODALITIES)
def test_single_modality_models(modality: Modality) -> None:
    spec = {Modality.IMAGE: IMAGE, Modality.TABULAR: TABULAR, Modality.TEXT: TEXT}[modality]
    net = model(**{str(modality): spec}).eval()
    assert net.modalities == (modality,)
    batch = make_batch()
    batch[Keys.PRESENCE][:] = True
    with torch.no_grad():
        out = net(batch)
    assert torch.isfinite(out.logits).all()
    column = MODALITIES.index(modality)
    assert (out.gates[:, column] > 0).all()
    assert (out.gates[:, [c for c in range(3) if c != column]] == 0).all()
    assert (net.text_embedding_layer is None) == (modality != Modality.TEXT)


def test_placeholder_inputs_of_absent_cases_cannot_change_any_prediction() -> None:
    net = model().eval()
    batch = make_batch(batch=5, seed=1)
    presence = batch[Keys.PRESENCE]
    presence[2] = torch.tensor([False, True, False])
    presence[3] = torch.tensor([True, False, False])
    garbage = dict(batch)
    generator = torch.Generator().manual_seed(9)
    absent_image = ~presence[:, 0]
    garbage[Keys.IMAGE] = torch.where(
        absent_image[:, None, None, None],
        torch.rand(batch[Keys.IMAGE].shape, generator=generator) * 100,
        batch[Keys.IMAGE],
    )
    absent_tabular = ~presence[:, 1:2]
    garbage[Keys.TABULAR] = torch.where(
        absent_tabular, torch.randn(5, 6, generator=generator) * 1e3, batch[Keys.TABULAR]
    )
    garbage[Keys.TABULAR_MISSING] = torch.where(
        absent_tabular, 1.0 - batch[Keys.TABULAR_MISSING], batch[Keys.TABULAR_MISSING]
    )
    absent_text = ~presence[:, 2:3]
    garbage[Keys.TEXT_IDS] = torch.where(
        absent_text, torch.randint(1, 50, (5, 9), generator=generator), batch[Keys.TEXT_IDS]
    )
    garbage[Keys.TEXT_MASK] = torch.where(
        absent_text, torch.zeros_like(batch[Keys.TEXT_MASK]), batch[Keys.TEXT_MASK]
    )
    with torch.no_grad():
        assert torch.equal(net(batch).logits, net(garbage).logits)


def test_an_input_missing_from_the_batch_skips_its_encoder() -> None:
    net = model().eval()
    calls = []
    net.encoders[Modality.IMAGE].register_forward_hook(lambda *_: calls.append(1))
    batch = make_batch()
    without_image = {k: v for k, v in batch.items() if k != Keys.IMAGE}
    image_absent = dict(batch)
    image_absent[Keys.PRESENCE] = batch[Keys.PRESENCE].clone()
    image_absent[Keys.PRESENCE][:, 0] = False
    with torch.no_grad():
        skipped = net(without_image)
        assert calls == []
        masked = net(image_absent)
        assert calls == [1]
    assert torch.equal(skipped.logits, masked.logits)
    assert (skipped.gates[:, 0] == 0).all()
    assert set(net.encode(without_image)) == {Modality.TABULAR, Modality.TEXT}


def test_presence_is_inferred_from_the_inputs_given() -> None:
    net = model().eval()
    batch = make_batch()
    batch.pop(Keys.PRESENCE)
    batch.pop(Keys.TEXT_IDS)
    batch.pop(Keys.TEXT_MASK)
    with torch.no_grad():
        out = net(batch)
    assert (out.gates[:, :2] > 0).all() and (out.gates[:, 2] == 0).all()
    with pytest.raises(MmdxError, match="no input for any of the model's modalities"):
        net({Keys.LABEL: torch.zeros(2)})


def test_encode_returns_one_vector_per_modality() -> None:
    net = model().eval()
    with torch.no_grad():
        features = net.encode(make_batch())
    assert {m: tuple(x.shape) for m, x in features.items()} == {
        Modality.IMAGE: (4, 16),
        Modality.TABULAR: (4, 16),
        Modality.TEXT: (4, 16),
    }


def test_gradients_reach_every_encoder_and_the_text_embeddings() -> None:
    net = model().train()
    batch = make_batch()
    batch[Keys.PRESENCE][:] = True
    parts = parts_of(net, batch)
    parts["image"] = parts["image"].clone().requires_grad_(True)
    parts["text_embeds"] = parts["text_embeds"].detach().requires_grad_(True)
    net.forward_parts(**parts).logits.sum().backward()
    for modality in MODALITIES:
        grads = [p.grad for p in net.encoders[modality].parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), f"no gradient in the {modality} encoder"
    assert parts["image"].grad.abs().sum() > 0
    real = batch[Keys.TEXT_MASK].bool()
    assert (parts["text_embeds"].grad.abs().sum(-1)[real] > 0).all()


def test_integrated_gradients_over_forward_parts() -> None:
    from captum.attr import IntegratedGradients

    net = model().eval()
    batch = make_batch(batch=2)
    batch[Keys.PRESENCE][:] = True
    parts = parts_of(net, batch)
    inputs = (parts["image"], parts["tabular"], parts["text_embeds"].detach())

    def predict(image, tabular, text_embeds, missing, categorical, mask, presence):
        return net.forward_parts(image, tabular, missing, categorical, text_embeds, mask, presence).logits

    extra = (parts["tabular_missing"], parts["categorical"], parts["text_mask"], parts["presence"])
    attributions, delta = IntegratedGradients(predict).attribute(
        inputs,
        baselines=tuple(torch.zeros_like(x) for x in inputs),
        additional_forward_args=extra,
        n_steps=64,
        return_convergence_delta=True,
    )
    assert [a.shape for a in attributions] == [x.shape for x in inputs]
    with torch.no_grad():
        full = predict(*inputs, *extra)
        empty = predict(*(torch.zeros_like(x) for x in inputs), *extra)
    total = sum(a.flatten(1).sum(1) for a in attributions)
    assert torch.allclose(total, full - empty, atol=0.05 * float((full - empty).abs().max()) + 1e-3)
    assert delta.abs().max() < 0.05 * float((full - empty).abs().max()) + 1e-3


def test_config_rebuilds_the_same_model() -> None:
    net = model().eval()
    assert net.config == {
        "image": IMAGE,
        "tabular": TABULAR,
        "text": TEXT,
        "fusion": {"name": "gated_attention", "dim": 16},
        "aux_heads": False,
    }
    rebuilt = build_model(**net.config).eval()
    rebuilt.load_state_dict(net.state_dict())
    batch = make_batch()
    with torch.no_grad():
        assert torch.equal(net(batch).logits, rebuilt(batch).logits)


def test_config_is_plain_data() -> None:
    import yaml

    from mmdx.models.encoders.text import minilm_folder

    net = build_model(
        image={"name": "small_cnn", "channels": (8, 16)}, text={"name": "hf_local", "path": minilm_folder()}
    )
    assert net.config["image"]["channels"] == [8, 16]
    assert net.config["text"]["path"] == str(minilm_folder())
    assert yaml.safe_load(yaml.safe_dump(net.config)) == net.config


def test_build_model_accepts_names_and_defaults_the_fusion() -> None:
    net = build_model(tabular={"name": "mlp", "n_features": 6, "categorical_cardinalities": [3, 4]})
    assert net.modalities == (Modality.TABULAR,)
    assert type(net.fusion).__name__ == "GatedAttentionFusion" and net.fusion.dim == 64
    assert build_model(image="small_cnn").config["image"] == {"name": "small_cnn"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one of image, tabular or text"),
        ({"image": {"name": "ft_transformer", "n_features": 3}}, "reads tabular input, not image"),
        ({"image": {"spatial_dims": 2}}, "model.image: missing 'name'"),
        ({"image": "small_cnm"}, "did you mean 'small_cnn'"),
        ({"image": {"name": "small_cnn", "out_dims": 3}}, "did you mean 'out_dim'"),
        ({"image": "small_cnn", "fusion": {"name": "gated_atention"}}, "did you mean 'gated_attention'"),
        ({"image": "small_cnn", "fusion": {"dim": 30, "heads": 4}}, "heads=4 does not divide dim=30"),
        ({"image": 3}, "expected a name or a mapping"),
        (
            {"tabular": {"name": "ft_transformer", "n_features": 3, "return_tokens": True}},
            "must return one vector",
        ),
    ],
)
def test_build_model_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(MmdxError, match=message):
        build_model(**kwargs)


def test_classifier_checks_that_encoders_and_fusion_agree() -> None:
    image = build_encoder("small_cnn", channels=[8], out_dim=8)
    with pytest.raises(MmdxError, match="fusion was built for image, text"):
        MultimodalClassifier({Modality.IMAGE: image}, build_fusion("concat", {"image": 8, "text": 4}))
    with pytest.raises(MmdxError, match="returns 8 features but the fusion expects 9"):
        MultimodalClassifier({Modality.IMAGE: image}, build_fusion("concat", {"image": 9}))
    with pytest.raises(MmdxError, match="must be a TextEncoder"):
        MultimodalClassifier({Modality.TEXT: image}, build_fusion("concat", {"text": 8}))
    with pytest.raises(MmdxError, match="at least one encoder"):
        MultimodalClassifier({}, build_fusion("concat", {"text": 8}))


def test_the_model_penalty_is_its_encoders_regularisation() -> None:
    tabular = {"name": "linear", "n_features": 6, "categorical_cardinalities": [3, 4], "dim": 16}
    assert build_model(image="small_cnn", tabular=tabular).penalty() is None  # no encoder regularises
    net = build_model(image="small_cnn", tabular={**tabular, "group_lasso": 0.2})
    expected = net.encoders[str(Modality.TABULAR)].penalty()
    assert expected is not None and expected.item() > 0
    assert net.penalty().item() == pytest.approx(expected.item())
    assert net.penalty(["image"]) is None  # only the named encoders' terms
    assert net.penalty([Modality.TABULAR]).item() == pytest.approx(expected.item())
    assert build_model(**net.config).encoders[str(Modality.TABULAR)].group_lasso == 0.2  # kept in the config
