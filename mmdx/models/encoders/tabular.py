"""Tabular encoders: vital signs, lab values and categorical columns in, a vector ``[B, D]`` out.

Inputs, shared by every tabular encoder:

- ``values``: ``[B, F]`` float, each feature normalised (z-scored in its canonical unit), 0 where missing;
- ``missing``: ``[B, F]`` float, 1 where the feature is missing, 0 where it was measured;
- ``categorical``: ``[B, C]`` int64, category index per column, 0 = unknown/missing.

A missing value is *not* the value 0: every encoder sees the missing indicator, and the output never depends
on the number written in ``values`` for a missing feature.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmdx.errors import MmdxError
from mmdx.keys import Modality
from mmdx.models.encoders import ENCODERS, EncoderSpec
from mmdx.models.hparams import (
    HyperParameterError,
    check_dropout,
    check_heads,
    check_non_negative_int,
    check_positive_int,
)


def _check_columns(owner: str, n_features: int, categorical_cardinalities: Sequence[int]) -> tuple[int, ...]:
    check_non_negative_int(owner, "n_features", n_features)
    cardinalities = tuple(categorical_cardinalities)
    for cardinality in cardinalities:
        if isinstance(cardinality, bool) or not isinstance(cardinality, int) or cardinality < 1:
            raise HyperParameterError(
                f"{owner}: each categorical cardinality counts the categories plus index 0 ('unknown') and "
                f"must be an integer >= 1, got {list(cardinalities)}"
            )
    if n_features == 0 and not cardinalities:
        raise HyperParameterError(
            f"{owner}: n_features=0 and no categorical columns leaves nothing to encode; give the number of "
            "numeric features and/or categorical_cardinalities"
        )
    return cardinalities


class _TabularInputs(nn.Module):
    """Input checking and defaults shared by the tabular encoders."""

    tokens: bool = False

    def __init__(self, n_features: int, categorical_cardinalities: tuple[int, ...]) -> None:
        super().__init__()
        self.n_features = n_features
        self.categorical_cardinalities = categorical_cardinalities
        self.register_buffer(
            "_cardinality", torch.tensor(categorical_cardinalities, dtype=torch.long), persistent=False
        )

    def _inputs(
        self, values: Tensor | None, missing: Tensor | None, categorical: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        name = type(self).__name__
        given = [t for t in (values, missing, categorical) if t is not None]
        if not given:
            raise MmdxError(f"{name} needs at least one of values, missing or categorical, got none")
        batch, device = given[0].shape[0], given[0].device
        if missing is None:
            # Without values nothing was measured: every numeric feature is missing, not zero.
            missing = torch.full((batch, self.n_features), float(values is None), device=device)
        if values is None:
            values = torch.zeros(batch, self.n_features, device=device)
        if categorical is None:
            categorical = torch.zeros(
                batch, len(self.categorical_cardinalities), dtype=torch.long, device=device
            )
        for label, tensor, width in (
            ("values", values, self.n_features),
            ("missing", missing, self.n_features),
            ("categorical", categorical, len(self.categorical_cardinalities)),
        ):
            if tensor.ndim != 2 or tensor.shape[1] != width or tensor.shape[0] != batch:
                raise MmdxError(
                    f"{name}: {label} must have shape [B={batch}, {width}], got {tuple(tensor.shape)}; the "
                    "encoder was built for a different feature list than the preprocessing produced"
                )
        if categorical.is_floating_point():
            raise MmdxError(
                f"{name}: categorical must hold integer category indices, got {categorical.dtype}"
            )
        out_of_range = (categorical < 0) | (categorical >= self._cardinality)
        if bool(out_of_range.any()):
            column = int(out_of_range.any(dim=0).nonzero()[0, 0])
            index = int(categorical[:, column][out_of_range[:, column]][0])
            cardinality = self.categorical_cardinalities[column]
            raise MmdxError(
                f"{name}: categorical column {column} holds index {index}, outside 0..{cardinality - 1} "
                f"(cardinality {cardinality}); map unseen categories to 0 ('unknown') or rebuild the encoder "
                "with the cardinalities of the current preprocessing"
            )
        return values, missing.to(values.dtype), categorical


class FTTransformer(_TabularInputs):
    """Feature-Tokenizer Transformer over numeric and categorical columns with learned missing embeddings.

    After Gorishniy et al., "Revisiting Deep Learning Models for Tabular Data", NeurIPS 2021. Every column
    becomes a token of width ``dim``:

    - numeric feature ``f`` with value ``x``: ``x * W_f + b_f`` when measured; a learned embedding ``E_f``
      when missing. The two are blended as ``(1 - m) * (x * W_f + b_f) + m * E_f`` with the indicator ``m``,
      which is exact for ``m`` in {0, 1} and lets gradient-based attribution reach the indicator too;
    - categorical column ``c`` with index ``k``: a learned embedding of ``(c, k)`` plus a column bias
      (index 0, "unknown", has its own embedding).

    A learned [CLS] token is prepended, ``depth`` pre-norm Transformer encoder layers (Vaswani et al.,
    "Attention Is All You Need", NeurIPS 2017) mix the tokens, and the normalised [CLS] token is the output.

    Args:
        n_features: ``F``, number of numeric features (may be 0 when there are categorical columns).
        categorical_cardinalities: per categorical column, the number of indices including 0 = unknown.
        dim: token width and output width ``D``.
        depth: number of Transformer layers.
        heads: attention heads; must divide ``dim``.
        mlp_ratio: hidden width of each layer's feed-forward block, as a multiple of ``dim``.
        dropout: dropout probability in attention and feed-forward blocks, in ``[0, 1)``.
        return_tokens: return every token ``[B, 1 + F + C, D]`` ([CLS] first) instead of the [CLS] ``[B, D]``.

    Inputs: ``values`` ``[B, F]`` float, ``missing`` ``[B, F]`` float, ``categorical`` ``[B, C]`` int64; any
    may be ``None`` (no ``values``: all missing; no ``missing``: nothing missing; no ``categorical``: all
    unknown). Output: ``[B, D]`` (or tokens, see above).
    """

    def __init__(
        self,
        n_features: int,
        categorical_cardinalities: Sequence[int] = (),
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: int = 2,
        dropout: float = 0.1,
        return_tokens: bool = False,
    ) -> None:
        owner = "FTTransformer"
        cardinalities = _check_columns(owner, n_features, categorical_cardinalities)
        check_positive_int(owner, "dim", dim)
        check_positive_int(owner, "depth", depth)
        check_heads(owner, dim, heads)
        check_positive_int(owner, "mlp_ratio", mlp_ratio)
        dropout = check_dropout(owner, "dropout", dropout)
        super().__init__(n_features, cardinalities)
        self.out_dim = dim
        self.tokens = bool(return_tokens)
        bound = 1.0 / math.sqrt(dim)
        self.numeric_weight = nn.Parameter(torch.empty(n_features, dim).uniform_(-bound, bound))
        self.numeric_bias = nn.Parameter(torch.empty(n_features, dim).uniform_(-bound, bound))
        self.missing_embedding = nn.Parameter(torch.empty(n_features, dim).uniform_(-bound, bound))
        offsets = [sum(cardinalities[:column]) for column in range(len(cardinalities))]
        self.register_buffer("category_offsets", torch.tensor(offsets, dtype=torch.long), persistent=False)
        self.category_embedding = nn.Embedding(max(sum(cardinalities), 1), dim)
        nn.init.uniform_(self.category_embedding.weight, -bound, bound)
        self.category_bias = nn.Parameter(torch.empty(len(cardinalities), dim).uniform_(-bound, bound))
        self.cls = nn.Parameter(torch.empty(dim).uniform_(-bound, bound))
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model=dim,
                nhead=heads,
                dim_feedforward=mlp_ratio * dim,
                dropout=dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, values: Tensor | None, missing: Tensor | None = None, categorical: Tensor | None = None
    ) -> Tensor:
        values, missing, categorical = self._inputs(values, missing, categorical)
        m = missing.unsqueeze(-1)  # [B, F, 1]
        numeric = (1.0 - m) * (values.unsqueeze(-1) * self.numeric_weight + self.numeric_bias)
        numeric = numeric + m * self.missing_embedding  # [B, F, D]
        category = (
            self.category_embedding(categorical + self.category_offsets) + self.category_bias
        )  # [B, C, D]
        cls = self.cls.expand(values.shape[0], 1, -1)
        x = torch.cat([cls, numeric, category], dim=1)  # [B, 1 + F + C, D]
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        return x if self.tokens else x[:, 0]


class _FlatTabular(_TabularInputs):
    """One row per case: ``values * (1 - missing)``, ``missing`` and a learned embedding per categorical column."""

    def __init__(
        self,
        owner: str,
        n_features: int,
        categorical_cardinalities: Sequence[int],
        dim: int,
        embedding_dim: int,
    ) -> None:
        cardinalities = _check_columns(owner, n_features, categorical_cardinalities)
        check_positive_int(owner, "dim", dim)
        check_positive_int(owner, "embedding_dim", embedding_dim)
        super().__init__(n_features, cardinalities)
        self.out_dim = dim
        self.embeddings = nn.ModuleList(
            nn.Embedding(cardinality, embedding_dim) for cardinality in cardinalities
        )
        self.flat_width = 2 * n_features + embedding_dim * len(cardinalities)

    def _flat(self, values: Tensor | None, missing: Tensor | None, categorical: Tensor | None) -> Tensor:
        values, missing, categorical = self._inputs(values, missing, categorical)
        parts = [values * (1.0 - missing), missing]
        parts += [embedding(categorical[:, column]) for column, embedding in enumerate(self.embeddings)]
        return torch.cat(parts, dim=1)


class TabularMLP(_FlatTabular):
    """A multilayer perceptron over values, missing indicators and categorical embeddings.

    The input of the first layer is the concatenation of ``values * (1 - missing)`` ``[B, F]``, ``missing``
    ``[B, F]`` and one learned embedding of width ``embedding_dim`` per categorical column ``[B, C * E]``.
    ``depth`` blocks of Linear-LayerNorm-GELU-Dropout follow, then a linear layer to ``dim``. The
    missing-indicator input follows Lipton et al., "Modeling Missing Data in Clinical Time Series with RNNs",
    MLHC 2016.

    Args:
        n_features: ``F``, number of numeric features (may be 0 when there are categorical columns).
        categorical_cardinalities: per categorical column, the number of indices including 0 = unknown.
        dim: output width ``D``.
        hidden_dim: width of the hidden layers.
        depth: number of hidden layers (>= 1).
        embedding_dim: ``E``, width of each categorical embedding.
        dropout: dropout probability after each hidden layer, in ``[0, 1)``.

    Inputs: ``values`` ``[B, F]`` float, ``missing`` ``[B, F]`` float, ``categorical`` ``[B, C]`` int64; any
    may be ``None`` (no ``values``: all missing; no ``missing``: nothing missing; no ``categorical``: all
    unknown). Output: ``[B, D]``.
    """

    def __init__(
        self,
        n_features: int,
        categorical_cardinalities: Sequence[int] = (),
        dim: int = 64,
        hidden_dim: int = 128,
        depth: int = 2,
        embedding_dim: int = 8,
        dropout: float = 0.1,
    ) -> None:
        super().__init__("TabularMLP", n_features, categorical_cardinalities, dim, embedding_dim)
        check_positive_int("TabularMLP", "hidden_dim", hidden_dim)
        check_positive_int("TabularMLP", "depth", depth)
        dropout = check_dropout("TabularMLP", "dropout", dropout)
        blocks: list[nn.Module] = []
        width = self.flat_width
        for _ in range(depth):
            blocks += [nn.Linear(width, hidden_dim), nn.LayerNorm(hidden_dim), nn.GELU(), nn.Dropout(dropout)]
            width = hidden_dim
        blocks.append(nn.Linear(width, dim))
        self.mlp = nn.Sequential(*blocks)

    def forward(
        self, values: Tensor | None, missing: Tensor | None = None, categorical: Tensor | None = None
    ) -> Tensor:
        return self.mlp(self._flat(values, missing, categorical))


class TabularLinear(_FlatTabular):
    """One linear map of values, missing indicators and categorical embeddings: the "wide" tabular encoder.

    The input is that of :class:`TabularMLP` (``values * (1 - missing)``, ``missing`` and one learned
    embedding of width ``embedding_dim`` per categorical column); a single ``nn.Linear`` maps it to ``dim``.
    With the branch's linear head this is logistic regression on the normalised values and their missing
    indicators; inside the fused model the fusion supplies the non-linearity. On cohorts of a few hundred to
    a few thousand cases it generalises better than the deeper encoders and does not depend on the epoch
    at which early stopping ends (BENCHMARKS.md, "The tabular encoder chosen by cross-validation"); the
    wide part of Cheng et al., "Wide & Deep Learning for Recommender Systems", DLRS 2016.

    Args:
        n_features: ``F``, number of numeric features (may be 0 when there are categorical columns).
        categorical_cardinalities: per categorical column, the number of indices including 0 = unknown.
        dim: output width ``D``.
        embedding_dim: ``E``, width of each categorical embedding.
        group_lasso: strength ``λ`` of a group-lasso penalty (Yuan and Lin, JRSS-B 2006) that the trainer
            adds to the loss: ``λ`` times the sum over numeric features of the L2 norm of the weights that
            read the feature (its value and its missing indicator), which drives the weights of
            uninformative features towards 0 together. 0 (the default) adds nothing.

    Inputs: as :class:`TabularMLP`. Output: ``[B, D]``.
    """

    def __init__(
        self,
        n_features: int,
        categorical_cardinalities: Sequence[int] = (),
        dim: int = 64,
        embedding_dim: int = 4,
        group_lasso: float = 0.0,
    ) -> None:
        super().__init__("TabularLinear", n_features, categorical_cardinalities, dim, embedding_dim)
        if isinstance(group_lasso, bool) or not isinstance(group_lasso, int | float) or not group_lasso >= 0:
            raise HyperParameterError(
                f"TabularLinear: group_lasso must be a number >= 0, got {group_lasso!r}"
            )
        self.group_lasso = float(group_lasso)
        self.linear = nn.Linear(self.flat_width, dim)

    def penalty(self) -> Tensor | None:
        """The group-lasso term to add to the training loss, or ``None`` when ``group_lasso`` is 0."""
        if self.group_lasso == 0 or self.n_features == 0:
            return None
        weight = self.linear.weight  # [D, flat_width]: values, then missing indicators, then embeddings
        values, missing = weight[:, : self.n_features], weight[:, self.n_features : 2 * self.n_features]
        norms = torch.sqrt(values.pow(2).sum(0) + missing.pow(2).sum(0) + 1e-12)
        return self.group_lasso * norms.sum()

    def forward(
        self, values: Tensor | None, missing: Tensor | None = None, categorical: Tensor | None = None
    ) -> Tensor:
        return self.linear(self._flat(values, missing, categorical))


ENCODERS.register(
    EncoderSpec(
        "ft_transformer",
        Modality.TABULAR,
        FTTransformer,
        "FT-Transformer: a token per feature, learned missing-value embeddings, [CLS] output",
    )
)
ENCODERS.register(
    EncoderSpec(
        "mlp", Modality.TABULAR, TabularMLP, "MLP over values, missing indicators and categorical embeddings"
    )
)
ENCODERS.register(
    EncoderSpec(
        "linear",
        Modality.TABULAR,
        TabularLinear,
        "one linear map of values, missing indicators and categorical embeddings (logistic regression's inputs)",
    )
)
