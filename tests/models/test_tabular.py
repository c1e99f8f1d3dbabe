"""Tabular encoders: a missing value is not a zero, categorical indices are checked, shapes are explained."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdx.errors import MmdxError
from mmdx.models.encoders.tabular import FTTransformer, TabularLinear, TabularMLP
from mmdx.models.hparams import HyperParameterError

CARDINALITIES = (3, 5)


def build(kind: str, n_features: int = 6, cardinalities=CARDINALITIES):
    torch.manual_seed(0)
    if kind == "ft_transformer":
        return FTTransformer(n_features, cardinalities, dim=16, heads=2, depth=2).eval()
    if kind == "linear":
        return TabularLinear(n_features, cardinalities, dim=16).eval()
    return TabularMLP(n_features, cardinalities, dim=16, hidden_dim=32).eval()


def inputs(batch: int = 4, n_features: int = 6, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    missing = (torch.rand(batch, n_features, generator=generator) < 0.4).float()
    values = torch.randn(batch, n_features, generator=generator) * (1 - missing)
    categorical = torch.stack([torch.randint(0, c, (batch,), generator=generator) for c in CARDINALITIES], 1)
    return values, missing, categorical


KINDS = ["ft_transformer", "mlp", "linear"]


@settings(max_examples=20, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 2**16), scale=st.sampled_from([1.0, 1e3, -50.0]))
def test_the_value_of_a_missing_feature_is_ignored(kind: str, seed: int, scale: float) -> None:
    encoder = build(kind)
    values, missing, categorical = inputs(seed=seed)
    noise = torch.randn(values.shape, generator=torch.Generator().manual_seed(seed + 1)) * scale
    garbage = torch.where(missing.bool(), noise, values)
    with torch.no_grad():
        assert torch.equal(encoder(values, missing, categorical), encoder(garbage, missing, categorical))


@pytest.mark.parametrize("kind", KINDS)
def test_missing_is_not_the_same_as_zero(kind: str) -> None:
    encoder = build(kind)
    values = torch.zeros(1, 6)
    categorical = torch.zeros(1, 2, dtype=torch.long)
    with torch.no_grad():
        measured_zero = encoder(values, torch.zeros(1, 6), categorical)
        missing = encoder(values, torch.ones(1, 6), categorical)
    assert not torch.allclose(measured_zero, missing)


@pytest.mark.parametrize("kind", KINDS)
def test_each_feature_and_category_matters(kind: str) -> None:
    encoder = build(kind)
    values, missing, categorical = inputs(batch=1)
    missing.zero_()
    with torch.no_grad():
        reference = encoder(values, missing, categorical)
        for feature in range(6):
            changed = values.clone()
            changed[0, feature] += 1.0
            assert not torch.allclose(encoder(changed, missing, categorical), reference)
        for column, cardinality in enumerate(CARDINALITIES):
            changed = categorical.clone()
            changed[0, column] = (changed[0, column] + 1) % cardinality
            assert not torch.allclose(encoder(values, missing, changed), reference)


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_without_values_mean_all_missing(kind: str) -> None:
    encoder = build(kind)
    _, _, categorical = inputs()
    with torch.no_grad():
        assert torch.equal(
            encoder(None, None, categorical), encoder(torch.zeros(4, 6), torch.ones(4, 6), categorical)
        )
        values = torch.randn(4, 6)
        assert torch.equal(
            encoder(values), encoder(values, torch.zeros(4, 6), torch.zeros(4, 2, dtype=torch.long))
        )


@pytest.mark.parametrize("kind", KINDS)
def test_cases_are_encoded_independently(kind: str) -> None:
    encoder = build(kind)
    values, missing, categorical = inputs(batch=5)
    with torch.no_grad():
        together = encoder(values, missing, categorical)
        alone = encoder(values[2:3], missing[2:3], categorical[2:3])
    assert torch.allclose(together[2:3], alone, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_only_numeric_or_only_categorical_columns(kind: str) -> None:
    numeric = build(kind, n_features=4, cardinalities=())
    assert numeric(torch.randn(3, 4), torch.zeros(3, 4)).shape == (3, 16)
    categorical = build(kind, n_features=0, cardinalities=(4,))
    assert categorical(None, None, torch.tensor([[0], [3]])).shape == (2, 16)


def test_ft_transformer_tokens() -> None:
    encoder = FTTransformer(6, CARDINALITIES, dim=16, heads=2, return_tokens=True).eval()
    assert encoder.tokens is True
    values, missing, categorical = inputs()
    tokens = encoder(values, missing, categorical)
    assert tokens.shape == (4, 1 + 6 + 2, 16)
    pooled = FTTransformer(6, CARDINALITIES, dim=16, heads=2)
    pooled.load_state_dict(encoder.state_dict())
    assert torch.equal(pooled.eval()(values, missing, categorical), tokens[:, 0])


@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs_are_explained(kind: str) -> None:
    encoder = build(kind)
    values, missing, categorical = inputs()
    with pytest.raises(MmdxError, match=r"values must have shape \[B=4, 6\], got \(4, 5\)"):
        encoder(values[:, :5], missing, categorical)
    with pytest.raises(MmdxError, match=r"categorical column 1 holds index 5, outside 0..4"):
        encoder(values, missing, torch.tensor([[0, 5]] * 4))
    with pytest.raises(MmdxError, match="outside 0..2"):
        encoder(values, missing, torch.tensor([[-1, 0]] * 4))
    with pytest.raises(MmdxError, match="integer category indices"):
        encoder(values, missing, categorical.float())


@pytest.mark.parametrize("cls", [FTTransformer, TabularMLP])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_features": 0, "categorical_cardinalities": ()}, "nothing to encode"),
        ({"n_features": -2}, "n_features must be a non-negative integer"),
        ({"n_features": 3, "categorical_cardinalities": [3, 0]}, "categorical cardinality"),
        ({"n_features": 3, "dim": 0}, "dim must be a positive integer"),
        ({"n_features": 3, "dropout": 1.0}, "dropout"),
    ],
)
def test_bad_hyper_parameters(cls, kwargs: dict, message: str) -> None:
    with pytest.raises(HyperParameterError, match=message):
        cls(**kwargs)


def test_ft_transformer_heads_must_divide_dim() -> None:
    with pytest.raises(HyperParameterError, match="heads=3 does not divide dim=16"):
        FTTransformer(3, dim=16, heads=3)


@pytest.mark.parametrize(("kind", "affine"), [("linear", True), ("mlp", False)])
def test_only_the_linear_encoder_is_affine_in_the_measured_values(kind: str, affine: bool) -> None:
    encoder = build(kind)
    values, _, categorical = inputs(batch=3)
    other = torch.randn(3, 6, generator=torch.Generator().manual_seed(5))
    measured, zero = torch.zeros(3, 6), torch.zeros(3, 6)
    with torch.no_grad():

        def at(v: torch.Tensor) -> torch.Tensor:
            return encoder(v, measured, categorical)

        superposed = at(values) + at(other) - at(zero)
        assert torch.allclose(at(values + other), superposed, atol=1e-5) is affine


def test_linear_encoder_bad_hyper_parameters() -> None:
    with pytest.raises(HyperParameterError, match="embedding_dim must be a positive integer"):
        TabularLinear(3, (2,), embedding_dim=0)
    with pytest.raises(HyperParameterError, match="nothing to encode"):
        TabularLinear(0, ())


def test_group_lasso_penalty_is_the_sum_of_each_features_weight_norm() -> None:
    assert build("linear").penalty() is None  # off by default: nothing added to the loss
    torch.manual_seed(0)
    encoder = TabularLinear(6, CARDINALITIES, dim=16, group_lasso=0.5)
    weight = encoder.linear.weight.detach()
    expected = sum(
        0.5 * torch.sqrt(weight[:, j].pow(2).sum() + weight[:, 6 + j].pow(2).sum()) for j in range(6)
    )
    assert encoder.penalty().item() == pytest.approx(expected.item(), rel=1e-5)
    # the categorical embeddings' columns are not penalised: changing them leaves the penalty unchanged
    with torch.no_grad():
        encoder.linear.weight[:, 12:] += 3.0
    assert encoder.penalty().item() == pytest.approx(expected.item(), rel=1e-5)
    # a feature whose weights are all 0 adds nothing: the gradient keeps its group at 0 (no NaN at 0)
    with torch.no_grad():
        encoder.linear.weight[:, [0, 6]] = 0.0
    encoder.penalty().backward()
    assert torch.isfinite(encoder.linear.weight.grad).all()
    assert encoder.linear.weight.grad[:, [0, 6]].abs().max() < 1e-4


@pytest.mark.parametrize("bad", [-0.1, "0.1", True, float("nan")])
def test_group_lasso_must_be_a_non_negative_number(bad) -> None:
    with pytest.raises(HyperParameterError, match="group_lasso must be a number >= 0"):
        TabularLinear(3, (2,), group_lasso=bad)
