"""Models whose attributions are known in closed form, and tiny random models, for the explanation tests.

:func:`linear_model` builds a real :class:`~mmdx.models.classifier.MultimodalClassifier` whose logit is
*additive and linear*: ``bias + sum over present modalities of <W_m, x_m>`` (the text term is linear in the
token embeddings). For it, Integrated Gradients is exact (``W * (x - baseline)``), occlusion of one unit
equals that unit's IG attribution, and the Shapley value of a modality is its own term.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmdx.keys import MODALITIES, Keys, Modality
from mmdx.models.classifier import MultimodalClassifier, build_model
from mmdx.models.encoders.text import TextEncoder
from mmdx.models.fusion import Fusion


class LinearImage(nn.Module):
    tokens = False
    out_dim = 1

    def __init__(self, shape: tuple[int, ...], weight: Tensor | None = None, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(
            weight if weight is not None else torch.randn(1, *shape, generator=generator)
        )

    def forward(self, image: Tensor) -> Tensor:
        return (image * self.weight).flatten(1).sum(1, keepdim=True)


class LinearTabular(nn.Module):
    tokens = False
    out_dim = 1

    def __init__(self, weight: Tensor, category_table: Tensor | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone())
        self.category_table = nn.Parameter(category_table.clone()) if category_table is not None else None

    def forward(
        self, values: Tensor | None, missing: Tensor | None = None, categorical: Tensor | None = None
    ):
        missing = torch.zeros_like(values) if missing is None else missing
        out = ((values * (1 - missing)) @ self.weight)[:, None]
        if self.category_table is not None and categorical is not None:
            picked = self.category_table.gather(1, categorical.t()).t()  # [B, C]
            out = out + picked.sum(1, keepdim=True)
        return out


class LinearText(TextEncoder):
    out_dim = 1

    def __init__(self, vocab_size: int, dim: int, max_length: int, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.max_length = max_length
        self.embedding_layer = nn.Embedding(vocab_size, dim, padding_idx=0)
        with torch.no_grad():
            self.embedding_layer.weight.copy_(torch.randn(vocab_size, dim, generator=generator))
            self.embedding_layer.weight[0].zero_()
        self.direction = nn.Parameter(torch.randn(dim, generator=generator))

    def encode_embeddings(self, embeds: Tensor, mask: Tensor) -> Tensor:
        return ((embeds @ self.direction) * mask.to(embeds.dtype)).sum(1, keepdim=True)


class SumFusion(Fusion):
    """logit = bias + sum of the present modalities' scalars."""

    def __init__(self, modalities: tuple[Modality, ...], bias: float = 0.3) -> None:
        super().__init__({m: 1 for m in modalities}, dim=1, dropout=0.0)
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def fuse(self, inputs: list[Tensor], present: Tensor):
        terms = torch.stack([x[:, 0] for x in inputs], dim=1) * present.to(inputs[0].dtype)
        return self.bias + terms.sum(1), present.to(terms.dtype), None


def linear_model(
    image_shape: tuple[int, ...] | None = (8, 8),
    tabular_weight: Tensor | None = None,
    category_table: Tensor | None = None,
    text: tuple[int, int, int] | None = (30, 4, 12),
    seed: int = 0,
) -> MultimodalClassifier:
    """An additive linear classifier (see the module docs); ``text = (vocab, dim, max_length)``."""
    encoders: dict[Modality, nn.Module] = {}
    if image_shape is not None:
        encoders[Modality.IMAGE] = LinearImage(image_shape, seed=seed)
    if tabular_weight is not None:
        encoders[Modality.TABULAR] = LinearTabular(tabular_weight, category_table)
    if text is not None:
        encoders[Modality.TEXT] = LinearText(*text, seed=seed)
    model = MultimodalClassifier(encoders, SumFusion(tuple(m for m in MODALITIES if m in encoders)))
    return model.eval()


def tiny_model(fusion: str = "gated_attention", seed: int = 0, spatial_dims: int = 2, modalities=MODALITIES):
    """A randomly initialised, very small real model (every modality unless told otherwise)."""
    torch.manual_seed(seed)
    spec = {
        "image": {"name": "small_cnn", "spatial_dims": spatial_dims, "channels": [4, 8], "out_dim": 8},
        "tabular": {
            "name": "ft_transformer",
            "n_features": 6,
            "categorical_cardinalities": [3, 4],
            "dim": 8,
            "heads": 2,
            "depth": 1,
            "dropout": 0.0,
        },
        "text": {"name": "transformer", "vocab_size": 50, "dim": 8, "heads": 2, "depth": 1, "max_length": 16},
    }
    fusion_spec = {"name": fusion, "dim": 8}
    if fusion in ("gated_attention", "attention"):
        fusion_spec["heads"] = 2
    arguments = {str(m): spec[str(m)] if m in modalities else None for m in MODALITIES}
    return build_model(**arguments, fusion=fusion_spec).eval()


def random_batch(
    batch: int = 4,
    seed: int = 0,
    image_shape: tuple[int, ...] = (16, 16),
    n_features: int = 6,
    cardinalities: tuple[int, ...] = (3, 4),
    vocab_size: int = 50,
    length: int = 12,
    presence: Tensor | None = None,
) -> dict:
    """A collated batch with every key: images in [0, 1], some missing values, padded token ids."""
    generator = torch.Generator().manual_seed(seed)
    missing = (torch.rand(batch, n_features, generator=generator) < 0.25).float()
    values = torch.randn(batch, n_features, generator=generator) * (1 - missing)
    columns = [torch.randint(0, c, (batch,), generator=generator) for c in cardinalities]
    categorical = torch.stack(columns, dim=1) if columns else torch.zeros(batch, 0, dtype=torch.long)
    lengths = torch.randint(3, length + 1, (batch,), generator=generator)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    ids = torch.randint(1, vocab_size, (batch, length), generator=generator) * mask
    if presence is None:
        presence = torch.ones(batch, len(MODALITIES), dtype=torch.bool)
    return {
        Keys.CASE_ID: [f"case{i}" for i in range(batch)],
        Keys.IMAGE: torch.rand(batch, 1, *image_shape, generator=generator),
        Keys.TABULAR: values,
        Keys.TABULAR_MISSING: missing,
        Keys.CATEGORICAL: categorical,
        Keys.TEXT_IDS: ids,
        Keys.TEXT_MASK: mask,
        Keys.PRESENCE: presence.bool(),
    }
