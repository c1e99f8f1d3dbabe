"""Exact modality Shapley values: efficiency, symmetry, null player, absent modalities, known answers."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmdx.errors import MmdxError
from mmdx.explain.shapley import (
    COALITIONS,
    coalition_index,
    coalition_label,
    modality_shapley,
    shapley_from_subset_values,
)
from mmdx.keys import MODALITIES, Keys

from .toys import linear_model, random_batch, tiny_model

PATTERNS = [list(p) for p in itertools.product([False, True], repeat=len(MODALITIES))]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fusion=st.sampled_from(["gated_attention", "attention", "gated", "concat", "late"]),
    seed=st.integers(0, 10_000),
    patterns=st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=5),
    temperature=st.sampled_from([1.0, 0.6, 2.5]),
)
def test_efficiency_and_absent_modalities(fusion, seed, patterns, temperature):
    model = tiny_model(fusion, seed=seed % 97)
    presence = torch.tensor(patterns)
    batch = random_batch(len(patterns), seed, presence=presence)
    result = modality_shapley(model, batch, temperature=temperature)
    with torch.no_grad():
        full = model(batch).logits.double() / temperature
        none = model({**batch, Keys.PRESENCE: torch.zeros_like(presence)}).logits.double() / temperature
    # efficiency to float64 precision against the model's own outputs (float32 logits)
    torch.testing.assert_close(result.values.sum(1), result.full - result.base, atol=1e-12, rtol=0)
    torch.testing.assert_close(result.full, full, atol=1e-5, rtol=0)
    torch.testing.assert_close(result.base, none, atol=1e-5, rtol=0)
    assert torch.all(result.values[~presence] == 0.0)


def test_coalition_values_are_the_model_with_that_presence():
    model = tiny_model("gated_attention", seed=5)
    batch = random_batch(3, 1)
    result = modality_shapley(model, batch)
    with torch.no_grad():
        for s, coalition in enumerate(COALITIONS):
            presence = batch[Keys.PRESENCE] & coalition[None, :]
            expected = model({**batch, Keys.PRESENCE: presence}).logits.double()
            torch.testing.assert_close(result.subset_values[:, s], expected, atol=1e-6, rtol=0)


def test_an_additive_model_gets_each_modality_its_own_term():
    model = linear_model((8, 8), torch.tensor([1.0, -2.0, 0.5, 0.0, 1.5, -1.0]), text=(30, 4, 12))
    presence = torch.tensor([[True, True, True], [True, False, True], [False, True, False]])
    batch = random_batch(3, 2, image_shape=(8, 8), cardinalities=(), vocab_size=30, presence=presence)
    result = modality_shapley(model, batch)
    terms = model.encode(batch)
    for j, modality in enumerate(MODALITIES):
        expected = terms[modality][:, 0].double() * presence[:, j]
        torch.testing.assert_close(result.values[:, j], expected, atol=1e-5, rtol=1e-6)
    assert result.base.tolist() == pytest.approx([0.3] * 3)


def test_null_player_gets_zero():
    model = tiny_model("concat", seed=1)
    with torch.no_grad():
        # the image reaches the logit through its projection and its presence indicator: cut both
        dim = model.fusion.dim
        model.fusion.projections["image"].linear.weight.zero_()
        model.fusion.projections["image"].linear.bias.zero_()
        model.fusion.projections["image"].norm.weight.zero_()
        model.fusion.projections["image"].norm.bias.zero_()
        model.fusion.head[0].weight[:, 3 * dim + 0] = 0.0
    result = modality_shapley(model, random_batch(4, 3))
    assert torch.all(result.values[:, 0].abs() < 1e-7)
    assert torch.any(result.values[:, 1:].abs() > 1e-4)


def test_the_calibration_offset_moves_every_coalition_value_and_no_shapley_value():
    model = tiny_model("gated", seed=4)
    batch = random_batch(3, 4)
    for target, sign in ((None, 1.0), (0, -1.0)):
        plain = modality_shapley(model, batch, temperature=1.3, target=target)
        shifted = modality_shapley(model, batch, temperature=1.3, target=target, offset=0.9)
        torch.testing.assert_close(shifted.values, plain.values)
        torch.testing.assert_close(shifted.subset_values, plain.subset_values + 0.9 * sign)


def test_negative_target_negates():
    model = tiny_model("late", seed=4)
    batch = random_batch(2, 4)
    torch.testing.assert_close(
        modality_shapley(model, batch, target=0).values, -modality_shapley(model, batch).values
    )


# ---- the combination rule itself, on value functions with a known answer ------------------------------
def _values(function) -> torch.Tensor:
    """``[1, 8]`` coalition values from ``function(set of modality indices)``."""
    return torch.tensor(
        [[function({j for j in range(3) if s >> j & 1}) for s in range(8)]], dtype=torch.float64
    )


ALL = torch.ones(1, 3, dtype=torch.bool)


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (lambda s: float(len(s)), [1.0, 1.0, 1.0]),  # symmetric players
        (lambda s: 5.0 * (0 in s) + 2.0 * (2 in s), [5.0, 0.0, 2.0]),  # additive, player 1 null
        (lambda s: float(0 in s and 1 in s), [0.5, 0.5, 0.0]),  # pure interaction split evenly
        (lambda s: float(len(s) == 3), [1 / 3, 1 / 3, 1 / 3]),  # unanimity game
        (lambda s: 4.0 if s else 0.0, [4 / 3, 4 / 3, 4 / 3]),  # any one suffices
    ],
)
def test_combination_rule_on_known_games(function, expected):
    values = shapley_from_subset_values(_values(function), ALL)
    assert values[0].tolist() == pytest.approx(expected)


def test_combination_rule_restricts_to_present_players():
    # with player 0 absent the game is played by 1 and 2 alone
    values = _values(lambda s: 3.0 * (1 in s) + float(1 in s and 2 in s))
    result = shapley_from_subset_values(values, torch.tensor([[False, True, True]]))
    assert result[0].tolist() == pytest.approx([0.0, 3.5, 0.5])


def test_coalition_names_and_dict():
    assert [coalition_label(s) for s in (0, 1, 5, 7)] == ["none", "image", "image+text", "image+tabular+text"]
    assert coalition_index(torch.tensor([True, False, True])) == 5
    model = tiny_model("gated", seed=2)
    presence = torch.tensor([[True, False, True]])
    out = modality_shapley(model, random_batch(1, 2, presence=presence)).case_dict(0)
    assert set(out["subsets"]) == {"none", "image", "text", "image+text"}
    assert out["tabular"] == 0.0
    assert out["image"] + out["text"] == pytest.approx(out["full_value"] - out["base_value"], abs=1e-12)


def test_bad_inputs():
    with pytest.raises(MmdxError, match="coalition values"):
        shapley_from_subset_values(torch.zeros(2, 5), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(MmdxError, match="MultimodalClassifier"):
        modality_shapley(torch.nn.Linear(2, 1), {})
