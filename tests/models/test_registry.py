"""Every registered encoder meets the contract: parametrized from the registry itself."""

from __future__ import annotations

import inspect

import pytest
import torch

from mmdx.errors import MmdxError
from mmdx.keys import Modality
from mmdx.models.encoders.text import minilm_folder
from mmdx.models.hparams import HyperParameterError
from mmdx.models.registry import ENCODERS, build_encoder, encoder_names, get_encoder_spec

# Arguments every encoder of a modality may need, offered only to builders that accept them.
REQUIRED = {
    Modality.IMAGE: {},
    Modality.TABULAR: {"n_features": 5, "categorical_cardinalities": [3, 4]},
    Modality.TEXT: {"vocab_size": 60, "path": str(minilm_folder())},
}
# Smaller-than-default settings to keep the tests fast, where an encoder has them.
SMALL = {
    "small_cnn": {"channels": (8, 16, 32), "out_dim": 24},
    "ft_transformer": {"dim": 16, "heads": 2, "depth": 1},
    "mlp": {"dim": 16, "hidden_dim": 32},
    "linear": {"dim": 16},
    "transformer": {"dim": 16, "heads": 2, "depth": 1, "max_length": 32},
}
# Hyper-parameters that no encoder may accept; every encoder must accept at least one of their names.
BAD = [
    ("spatial_dims", 4),
    ("n_features", -1),
    ("vocab_size", 0),
    ("dim", 0),
    ("out_dim", -3),
    ("freeze", "yes"),
    ("path", "/nonexistent/model"),
]


def accepted(name: str) -> set[str]:
    return set(inspect.signature(ENCODERS.get(name).builder).parameters)


def arguments(name: str, **extra) -> dict:
    spec = ENCODERS.get(name)
    kwargs = {k: v for k, v in REQUIRED[spec.modality].items() if k in accepted(name)}
    return kwargs | SMALL.get(name, {}) | extra


def cases() -> list:
    out = []
    for spec in ENCODERS:
        name = spec.name
        if spec.modality == Modality.IMAGE:
            out.append(pytest.param(name, {"spatial_dims": 2}, id=f"{name}-2d"))
            out.append(pytest.param(name, {"spatial_dims": 3}, id=f"{name}-3d"))
        else:
            out.append(pytest.param(name, {}, id=name))
    return out


def run(encoder, modality: Modality, batch: int = 2):
    """Call ``encoder`` on a small random input; return (output, the float input gradients should reach)."""
    generator = torch.Generator().manual_seed(0)
    if modality == Modality.IMAGE:
        size = max(encoder.min_input_size, 16 if encoder.spatial_dims == 3 else 32)
        image = torch.rand(
            batch, 1, *([size] * encoder.spatial_dims), generator=generator, requires_grad=True
        )
        return encoder(image), image
    if modality == Modality.TABULAR:
        values = torch.randn(batch, encoder.n_features, generator=generator, requires_grad=True)
        missing = torch.zeros(batch, encoder.n_features)
        missing[0, 0] = 1.0
        categorical = torch.stack(
            [torch.randint(0, c, (batch,), generator=generator) for c in encoder.categorical_cardinalities], 1
        )
        return encoder(values, missing, categorical), values
    ids = torch.randint(1, min(encoder.vocab_size, 1000), (batch, 7), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, 4:] = 0
    embeds = encoder.embedding_layer(ids)
    if embeds.requires_grad:
        embeds.retain_grad()  # trainable embeddings: gradients must reach both them and their weights
    else:
        embeds.requires_grad_(True)  # frozen encoder: attribution still needs the embeddings' gradient
    return encoder.forward_embeddings(embeds, mask), embeds


@pytest.mark.parametrize(("name", "extra"), cases())
def test_encoder_contract(name: str, extra: dict) -> None:
    spec = ENCODERS.get(name)
    torch.manual_seed(0)
    encoder = build_encoder(name, **arguments(name, **extra))
    assert isinstance(encoder, torch.nn.Module)
    assert isinstance(encoder.out_dim, int) and encoder.out_dim > 0
    assert encoder.tokens is False
    encoder.train()
    out, differentiable = run(encoder, spec.modality)
    assert out.shape == (2, encoder.out_dim)
    assert torch.isfinite(out).all()
    assert out[0].ne(out[1]).any(), "two different cases encode to the same vector"
    out.square().mean().backward()
    assert differentiable.grad is not None and torch.isfinite(differentiable.grad).all()
    assert differentiable.grad.abs().sum() > 0, "no gradient reaches the input"
    trainable = {name: p for name, p in encoder.named_parameters() if p.requires_grad}
    # Every trainable parameter takes part (DistributedDataParallel fails on one that does not).
    assert [name for name, p in trainable.items() if p.grad is None] == []
    assert all(torch.isfinite(p.grad).all() for p in trainable.values())
    if trainable:
        assert any(p.grad.abs().sum() > 0 for p in trainable.values()), "no gradient reaches the parameters"


@pytest.mark.parametrize("name", ENCODERS.names())
def test_bad_hyper_parameters_are_rejected_with_their_name(name: str) -> None:
    applicable = [(key, value) for key, value in BAD if key in accepted(name)]
    assert applicable, f"add a bad hyper-parameter for '{name}' to BAD"
    for key, value in applicable:
        with pytest.raises(HyperParameterError) as error:
            build_encoder(name, **arguments(name, **{key: value}))
        assert isinstance(error.value, ValueError) and isinstance(error.value, MmdxError)
        assert key in str(error.value) or "folder" in str(error.value)


@pytest.mark.parametrize("name", ENCODERS.names())
def test_typo_in_name_suggests_the_encoder(name: str) -> None:
    typo = name[:-1] + name[-1] * 2 + "s"
    with pytest.raises(MmdxError, match=f"did you mean '{name}'"):
        build_encoder(typo)


@pytest.mark.parametrize("name", ENCODERS.names())
def test_typo_in_argument_suggests_the_argument(name: str) -> None:
    argument = sorted(accepted(name), key=len)[-1]
    with pytest.raises(HyperParameterError, match=f"did you mean '{argument}'"):
        build_encoder(name, **{argument + "s": 1})


def test_registry_entries_are_consistent() -> None:
    for name in ENCODERS.names():
        spec = ENCODERS.get(name)
        assert spec.name == name
        assert isinstance(spec.modality, Modality)
        assert callable(spec.builder) and spec.description
        assert spec.tokenizer is None or spec.modality == Modality.TEXT
    by_modality = [encoder_names(m) for m in Modality]
    assert sorted(sum(by_modality, [])) == sorted(ENCODERS.names())
    assert all(by_modality), "every modality has at least one encoder"


def test_encoder_of_the_wrong_modality_is_refused() -> None:
    with pytest.raises(MmdxError, match="reads tabular input, not image"):
        get_encoder_spec("ft_transformer", Modality.IMAGE)
    with pytest.raises(MmdxError, match="did you mean 'transformer'"):
        get_encoder_spec("transformr", Modality.TEXT)


def test_missing_required_argument_is_named() -> None:
    with pytest.raises(HyperParameterError, match="missing required argument.*n_features"):
        build_encoder("ft_transformer", dim=16)
    with pytest.raises(HyperParameterError, match="missing required argument.*vocab_size"):
        build_encoder("transformer")
