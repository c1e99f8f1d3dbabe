"""The ensemble: its output is the mean of the members' calibrated logits in every form the product calls it,
its architecture rebuilds it, and explanations of it are the members' explanations averaged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdx.errors import MmdxError
from mmdx.explain.attribution import explain
from mmdx.explain.inputs import ExplainInputs
from mmdx.explain.shapley import modality_shapley
from mmdx.keys import MODALITIES, Keys, Modality
from mmdx.models.ensemble import EnsembleClassifier, build_from_architecture
from tests.explain.toys import random_batch, tiny_model

TEMPERATURES, OFFSETS = [0.7, 2.5], [0.3, -0.4]


def ensemble(fusion: str = "gated_attention") -> EnsembleClassifier:
    members = [tiny_model(fusion, seed=1), tiny_model(fusion, seed=2)]
    return EnsembleClassifier(members, TEMPERATURES, OFFSETS).eval()


def calibrated_mean(net: EnsembleClassifier, batch: dict) -> torch.Tensor:
    return torch.stack(
        [m(batch).logits / t + b for m, t, b in zip(net.members, TEMPERATURES, OFFSETS, strict=True)]
    ).mean(0)


@pytest.mark.parametrize("fusion", ["gated_attention", "concat", "late"])
def test_the_output_is_the_mean_of_the_members_calibrated_logits(fusion: str) -> None:
    net, batch = ensemble(fusion), random_batch(5, seed=3)
    with torch.no_grad():
        out = net(batch)
        torch.testing.assert_close(out.logits, calibrated_mean(net, batch))
        torch.testing.assert_close(out.gates, torch.stack([m(batch).gates for m in net.members]).mean(0))
        # the form attribution calls: the members' token embeddings side by side
        parts = net.forward_parts(
            image=batch[Keys.IMAGE],
            tabular=batch[Keys.TABULAR],
            tabular_missing=batch[Keys.TABULAR_MISSING],
            categorical=batch[Keys.CATEGORICAL],
            text_embeds=net.embed_text(batch[Keys.TEXT_IDS]),
            text_mask=batch[Keys.TEXT_MASK],
            presence=batch[Keys.PRESENCE],
        )
    torch.testing.assert_close(parts.logits, out.logits)
    assert net.embed_text(batch[Keys.TEXT_IDS]).shape[-1] == 2 * 8


def test_the_architecture_rebuilds_it_and_the_weights_carry_the_calibrations() -> None:
    net, batch = ensemble(), random_batch(4, seed=1)
    rebuilt = build_from_architecture(net.config).eval()
    assert isinstance(rebuilt, EnsembleClassifier) and len(rebuilt.members) == 2
    rebuilt.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(batch).logits, net(batch).logits)
    torch.testing.assert_close(rebuilt.scales, torch.tensor([1 / t for t in TEMPERATURES]))
    # a single model's architecture still builds a single model
    single = build_from_architecture(net.members[0].config)
    assert not isinstance(single, EnsembleClassifier)


@pytest.mark.parametrize(
    ("architecture", "message"),
    [
        ({"ensemble": {"members": 1}, "member": {}}, "K >= 2"),
        ({"ensemble": {"members": "3"}, "member": {}}, "K >= 2"),
        ({"ensemble": {"members": 2}}, "'member' mapping"),
    ],
)
def test_a_malformed_ensemble_architecture_is_one_line(architecture: dict, message: str) -> None:
    with pytest.raises(MmdxError, match=message):
        build_from_architecture(architecture)


def test_members_must_agree() -> None:
    with pytest.raises(MmdxError, match="at least two members"):
        EnsembleClassifier([tiny_model(seed=1)])
    with pytest.raises(MmdxError, match="same modalities"):
        EnsembleClassifier([tiny_model(seed=1), tiny_model(seed=1, modalities=(Modality.IMAGE,))])
    with pytest.raises(MmdxError, match="temperatures must be > 0"):
        EnsembleClassifier([tiny_model(seed=1), tiny_model(seed=2)], [1.0, 0.0])
    net = ensemble()
    with pytest.raises(MmdxError, match="embed with embed_text"):
        net.forward_parts(text_embeds=torch.zeros(1, 4, 8), text_mask=torch.ones(1, 4, dtype=torch.long))


def test_integrated_gradients_of_the_ensemble_is_the_mean_of_its_members() -> None:
    net = ensemble()
    inputs = ExplainInputs.from_batch(random_batch(3, seed=4))
    whole = explain(net, inputs, n_steps=16)
    each = [
        explain(m, inputs, n_steps=16, temperature=t, offset=b)
        for m, t, b in zip(net.members, TEMPERATURES, OFFSETS, strict=True)
    ]
    for case, (first, second) in enumerate(zip(*each, strict=True)):
        mine = whole[case]
        assert mine.output == pytest.approx((first.output + second.output) / 2, abs=1e-5)
        for field in ("image_map", "tabular_attributions", "token_attributions"):
            ours, a, b = (getattr(x, field) for x in (mine, first, second))
            if ours is None:
                assert a is None and b is None
                continue
            np.testing.assert_allclose(ours, (a + b) / 2, atol=1e-5)


def test_modality_shapley_of_the_ensemble_is_the_mean_of_its_members() -> None:
    net, batch = ensemble(), random_batch(4, seed=6)
    whole = modality_shapley(net, batch)
    each = [
        modality_shapley(m, batch, temperature=t, offset=b)
        for m, t, b in zip(net.members, TEMPERATURES, OFFSETS, strict=True)
    ]
    np.testing.assert_allclose(whole.values, (each[0].values + each[1].values) / 2, atol=1e-6)
    assert whole.values.shape == (4, len(MODALITIES))


@pytest.mark.parametrize("method", ["gradcam", "gradcam_pp", "layercam", "hirescam", "multiscale_cam"])
def test_class_activation_maps_read_every_members_encoder(method: str) -> None:
    net = ensemble()
    inputs = ExplainInputs.from_batch(random_batch(2, seed=7))
    maps = explain(net, inputs, method=method)
    alone = explain(net.members[0], inputs, method=method, temperature=TEMPERATURES[0], offset=OFFSETS[0])
    for mine, first in zip(maps, alone, strict=True):
        assert mine.image_map is not None and mine.image_map.shape == first.image_map.shape
        assert np.isfinite(mine.image_map).all() and (mine.image_map >= 0).all()
        assert not np.allclose(mine.image_map, first.image_map)  # the second member's stage is read too
