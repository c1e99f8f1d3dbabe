"""Fusion of per-modality vectors into one diagnostic logit, behind one interface.

A fusion receives one pooled vector per modality (``features[m]``: ``[B, D_m]``, only for the modalities the
model has) and which modalities each case actually has (``presence``: ``[B, M]`` bool over
:data:`mmdx.keys.MODALITIES`). It returns a :class:`FusionOutput`: the logit, the per-modality weight of
every case, and per-modality logits where the fusion has them.

Masking is exact in every fusion: the features of a modality absent from a case are replaced by zeros
before anything reads them, and the modality is then excluded (attention key padding, zero gate, zero
weight), so whatever its encoder produced for that case cannot change the output — not even NaN. A case
with no modality at all gets a finite "no evidence" prediction from learned parameters.

Fusions (registered in :data:`FUSIONS`, built by :func:`build_fusion`; to add one, write its class here and
register a :class:`FusionSpec` below the others):

- ``gated_attention`` (:class:`GatedAttentionFusion`, the default): per-modality projection, cross-modal
  attention for context, a sigmoid gate per modality per case, attention pooling by a learned query.
- ``attention`` (:class:`AttentionFusion`): the same without gates.
- ``gated`` (:class:`GatedFusion`): the same without attention (gated mean of the modality tokens).
- ``concat`` (:class:`ConcatFusion`): concatenated projections and presence indicators into an MLP.
- ``late`` (:class:`LateFusion`): one logit per modality, averaged over the modalities present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES, Modality
from mmdx.models.hparams import (
    HyperParameterError,
    check_choice,
    check_dropout,
    check_heads,
    check_keyword_arguments,
    check_positive_int,
)
from mmdx.registry import Registry


class FusionOutput(NamedTuple):
    """What every fusion returns for a batch of ``B`` cases.

    Attributes:
        logits: ``[B]``, the diagnostic logit (before calibration).
        gates: ``[B, M]`` in the order of :data:`~mmdx.keys.MODALITIES`, 0 for a modality the case lacks
            (or the model does not have). Gated fusions report their sigmoid gates in ``(0, 1)``; the others
            report the effective weight of each modality in the fused output: the pooling attention weight
            (``attention``) or ``1 / n_present`` (``concat``, ``late``).
        modality_logits: ``[B, M]`` logit of each modality on its own (0 where absent) for ``late``;
            ``None`` for the other fusions.
    """

    logits: Tensor
    gates: Tensor
    modality_logits: Tensor | None


class ModalityProjection(nn.Module):
    """Linear map of one modality's vector ``[B, D_m]`` to the shared width ``[B, dim]``, then LayerNorm.

    The LayerNorm puts every modality on the same scale whatever its encoder (a 2048-wide ResNet-50 or a
    64-wide FT-Transformer), so no modality dominates by magnitude alone.
    """

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.linear(x))


class Fusion(nn.Module):
    """Base of the fusions: validates arguments and inputs, masks absent modalities, returns gates in order.

    Args:
        modality_dims: width ``D_m`` of each modality's vector, for the modalities the model has (1 to 3).
        dim: the shared width every modality is projected to.
        dropout: dropout probability in the fusion's MLPs, in ``[0, 1)``.

    Subclasses implement :meth:`fuse`.
    """

    def __init__(self, modality_dims: Mapping[Modality, int], dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        owner = type(self).__name__
        if not isinstance(modality_dims, Mapping) or not modality_dims:
            raise HyperParameterError(
                f"{owner}: modality_dims must map at least one modality ({', '.join(MODALITIES)}) to the "
                f"width of its encoder output, got {modality_dims!r}"
            )
        dims: dict[Modality, int] = {}
        for key, width in modality_dims.items():
            check_choice(owner, "modality in modality_dims", str(key), MODALITIES)
            dims[Modality(key)] = check_positive_int(owner, f"modality_dims[{str(key)!r}]", width)
        self.modalities: tuple[Modality, ...] = tuple(m for m in MODALITIES if m in dims)
        self.modality_dims: dict[Modality, int] = {m: dims[m] for m in self.modalities}
        self.dim = check_positive_int(owner, "dim", dim)
        self.dropout_p = check_dropout(owner, "dropout", dropout)
        # Columns of the model's modalities within MODALITIES, to read presence and write gates.
        self.register_buffer(
            "_columns", torch.tensor([MODALITIES.index(m) for m in self.modalities]), persistent=False
        )

    def forward(self, features: Mapping[Modality, Tensor], presence: Tensor) -> FusionOutput:
        """Fuse ``features[m]`` ``[B, D_m]`` given ``presence`` ``[B, M]`` (nonzero = present).

        A modality of the model missing from ``features`` counts as absent for every case.
        """
        owner = type(self).__name__
        if presence.ndim != 2 or presence.shape[1] != len(MODALITIES):
            raise MmdxError(
                f"{owner}: presence must have shape [B, {len(MODALITIES)}] over modalities "
                f"{', '.join(MODALITIES)}, got {tuple(presence.shape)}"
            )
        unknown = [str(m) for m in features if m not in self.modality_dims]
        if unknown:
            raise MmdxError(
                f"{owner}: got features for {', '.join(unknown)}, but the fusion was built for "
                f"{', '.join(self.modalities)}"
            )
        batch = presence.shape[0]
        present = presence[:, self._columns].bool()  # [B, K]
        inputs = []
        for k, modality in enumerate(self.modalities):
            width = self.modality_dims[modality]
            x = features.get(modality)
            if x is None:
                present[:, k] = False
                x = presence.new_zeros((batch, width), dtype=torch.get_default_dtype())
            elif x.ndim != 2 or x.shape[0] != batch or x.shape[1] != width:
                raise MmdxError(
                    f"{owner}: features[{str(modality)!r}] must have shape [B={batch}, {width}], got "
                    f"{tuple(x.shape)}; the encoder's out_dim does not match the fusion's modality_dims"
                )
            # Exact masking: absent cases read zeros, whatever (even NaN) the encoder produced for them.
            inputs.append(torch.where(present[:, k, None], x, 0.0))
        logits, weights, modality_logits = self.fuse(inputs, present)
        return FusionOutput(
            logits=logits,
            gates=self._to_modalities(weights),
            modality_logits=None if modality_logits is None else self._to_modalities(modality_logits),
        )

    def fuse(self, inputs: list[Tensor], present: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """``inputs[k]``: ``[B, D_k]`` of ``self.modalities[k]``, zeros where absent; ``present``: ``[B, K]``.

        Returns the logits ``[B]``, the per-modality weights ``[B, K]`` and optional per-modality logits
        ``[B, K]``; weights and modality logits must be exactly 0 where ``present`` is False.
        """
        raise NotImplementedError

    def _to_modalities(self, values: Tensor) -> Tensor:
        """Scatter ``[B, K]`` over the model's modalities into ``[B, M]`` over MODALITIES (0 elsewhere)."""
        out = values.new_zeros(values.shape[0], len(MODALITIES))
        return out.index_copy(1, self._columns, values)


def _mlp_head(dim: int, in_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, 1))


class _ModalityTokenFusion(Fusion):
    """Modality tokens, optionally cross-modal attention, optionally sigmoid gates.

    Each modality ``k`` present in a case becomes a token ``h_k = LayerNorm(W_k x_k + b_k) + e_k`` (``e_k``:
    learned modality-type embedding). A learned "no evidence" token ``n`` is always present, so that a case
    with no modality is still defined and attention never normalises over an empty set.

    With ``attention``: one pre-norm Transformer block of self-attention over ``[n, h_1..h_K]`` (absent
    modalities masked as keys) gives each token its context ``z_k``; a learned query then pools
    ``[n, g_1 h_1, .., g_K h_K]`` with multi-head attention whose keys are the contextual tokens. Without
    it: the context of every token is the mean of the present tokens, and the fused vector is
    ``n + sum_k g_k h_k / n_present``.

    With ``gates``: ``g_k = sigmoid(MLP([h_k, z_k]))`` for present modalities, 0 for absent ones. A gate
    scales the modality's own token, so it decides how much of that modality's evidence enters the fused
    vector (the gate itself may depend on the other modalities through the context). Without gates
    ``g_k = 1`` for present modalities.

    A two-layer MLP maps the fused vector ``[B, dim]`` to the logit ``[B]``.
    """

    def __init__(
        self,
        modality_dims: Mapping[Modality, int],
        dim: int,
        heads: int,
        dropout: float,
        *,
        attention: bool,
        gates: bool,
    ) -> None:
        super().__init__(modality_dims, dim, dropout)
        self.use_attention = attention
        self.use_gates = gates
        if attention:
            check_heads(type(self).__name__, dim, heads)
        self.projections = nn.ModuleDict(
            {str(m): ModalityProjection(d, dim) for m, d in self.modality_dims.items()}
        )
        self.type_embedding = nn.Parameter(torch.randn(len(self.modalities), dim) * 0.02)
        self.null_token = nn.Parameter(torch.randn(dim) * 0.02)
        if attention:
            self.context_norm = nn.LayerNorm(dim)
            self.context_attention = nn.MultiheadAttention(
                dim, heads, dropout=self.dropout_p, batch_first=True
            )
            self.context_mlp = nn.Sequential(
                nn.LayerNorm(dim),
                nn.Linear(dim, 2 * dim),
                nn.GELU(),
                nn.Dropout(self.dropout_p),
                nn.Linear(2 * dim, dim),
                nn.Dropout(self.dropout_p),
            )
            self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
            # No dropout on the pooling weights: they are reported as the modalities' weights.
            self.pool_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        if gates:
            self.gate = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, 1))
        self.head = _mlp_head(dim, dim, self.dropout_p)

    def fuse(self, inputs: list[Tensor], present: Tensor) -> tuple[Tensor, Tensor, None]:
        batch = present.shape[0]
        tokens = torch.stack(
            [self.projections[m](x) for m, x in zip(self.modalities, inputs, strict=True)], dim=1
        )  # [B, K, dim]
        tokens = torch.where(present[..., None], tokens + self.type_embedding, 0.0)
        null = self.null_token.expand(batch, 1, -1)
        if self.use_attention:
            sequence = torch.cat([null, tokens], dim=1)  # [B, 1 + K, dim]
            # True = ignored key; the no-evidence token (column 0) is always attended to.
            ignore = torch.cat([present.new_zeros(batch, 1), ~present], dim=1)
            normed = self.context_norm(sequence)
            attended, _ = self.context_attention(
                normed, normed, normed, key_padding_mask=ignore, need_weights=False
            )
            contextual = sequence + attended
            contextual = contextual + self.context_mlp(contextual)  # [B, 1 + K, dim]
            context = contextual[:, 1:]
        else:
            count = present.sum(dim=1, keepdim=True).clamp_min(1).to(tokens.dtype)  # [B, 1]
            context = (tokens.sum(dim=1) / count).unsqueeze(1).expand_as(tokens)
        if self.use_gates:
            gate = torch.sigmoid(self.gate(torch.cat([tokens, context], dim=-1))).squeeze(-1)  # [B, K]
            gate = torch.where(present, gate, 0.0)
        else:
            gate = present.to(tokens.dtype)
        values = tokens * gate.unsqueeze(-1)
        if self.use_attention:
            pooled, weights = self.pool_attention(
                self.query.expand(batch, -1, -1),
                contextual,
                torch.cat([null, values], dim=1),
                key_padding_mask=ignore,
                need_weights=True,
                average_attn_weights=True,
            )
            fused = pooled.squeeze(1)
            # Weights of masked keys are exactly 0 (exp(-inf)); where() also pins them under autocast.
            weight = torch.where(present, weights[:, 0, 1:], 0.0)
        else:
            count = present.sum(dim=1, keepdim=True).clamp_min(1).to(tokens.dtype)
            fused = null.squeeze(1) + values.sum(dim=1) / count
            weight = gate
        logits = self.head(fused).squeeze(-1)
        return logits, (gate if self.use_gates else weight), None


class GatedAttentionFusion(_ModalityTokenFusion):
    """Gated attention fusion (mmdx's default): cross-modal attention plus a sigmoid gate per modality.

    The gate follows the gated attention of Ilse et al., "Attention-based Deep Multiple Instance Learning",
    ICML 2018, and the modality gating of Arevalo et al., "Gated Multimodal Units for Information Fusion",
    ICLR workshop 2017; the attention blocks are those of Vaswani et al., NeurIPS 2017. See
    :class:`_ModalityTokenFusion` for the computation.

    Args:
        modality_dims: width ``D_m`` of each modality's encoder output, for the model's modalities.
        dim: shared token width.
        heads: attention heads; must divide ``dim``.
        dropout: dropout probability in attention and MLPs (not on the reported weights), in ``[0, 1)``.

    Inputs: ``features[m]`` ``[B, D_m]``, ``presence`` ``[B, M]``. Output: :class:`FusionOutput`, ``gates``
    the sigmoid gates.
    """

    def __init__(
        self, modality_dims: Mapping[Modality, int], dim: int = 64, heads: int = 4, dropout: float = 0.1
    ) -> None:
        super().__init__(modality_dims, dim, heads, dropout, attention=True, gates=True)


class AttentionFusion(_ModalityTokenFusion):
    """Ablation of :class:`GatedAttentionFusion` without gates: attention alone weighs the modalities.

    Args:
        modality_dims: width ``D_m`` of each modality's encoder output, for the model's modalities.
        dim: shared token width.
        heads: attention heads; must divide ``dim``.
        dropout: dropout probability in attention and MLPs, in ``[0, 1)``.

    Output ``gates``: the pooling attention weight of each modality (averaged over heads), in ``[0, 1]``;
    the remainder of each row goes to the no-evidence token.
    """

    def __init__(
        self, modality_dims: Mapping[Modality, int], dim: int = 64, heads: int = 4, dropout: float = 0.1
    ) -> None:
        super().__init__(modality_dims, dim, heads, dropout, attention=True, gates=False)


class GatedFusion(_ModalityTokenFusion):
    """Ablation of :class:`GatedAttentionFusion` without attention: a gated mean of the modality tokens.

    Each gate sees its modality's token and the mean of the present tokens.

    Args:
        modality_dims: width ``D_m`` of each modality's encoder output, for the model's modalities.
        dim: shared token width.
        dropout: dropout probability in the head MLP, in ``[0, 1)``.

    Output ``gates``: the sigmoid gates.
    """

    def __init__(self, modality_dims: Mapping[Modality, int], dim: int = 64, dropout: float = 0.1) -> None:
        super().__init__(modality_dims, dim, 1, dropout, attention=False, gates=True)


class ConcatFusion(Fusion):
    """Early fusion baseline: projected modality vectors (zero where absent) and the presence indicators,
    concatenated ``[B, K * dim + K]``, into an MLP.

    Args:
        modality_dims: width ``D_m`` of each modality's encoder output, for the model's modalities.
        dim: width of each projection and of the hidden layer.
        dropout: dropout probability in the MLP, in ``[0, 1)``.

    Output ``gates``: ``1 / n_present`` for each present modality (the MLP has no per-modality weight).
    """

    def __init__(self, modality_dims: Mapping[Modality, int], dim: int = 64, dropout: float = 0.1) -> None:
        super().__init__(modality_dims, dim, dropout)
        self.projections = nn.ModuleDict(
            {str(m): ModalityProjection(d, dim) for m, d in self.modality_dims.items()}
        )
        k = len(self.modalities)
        self.head = _mlp_head(dim, k * dim + k, self.dropout_p)

    def fuse(self, inputs: list[Tensor], present: Tensor) -> tuple[Tensor, Tensor, None]:
        parts = [
            torch.where(present[:, k, None], self.projections[m](x), 0.0)
            for k, (m, x) in enumerate(zip(self.modalities, inputs, strict=True))
        ]
        indicators = present.to(parts[0].dtype)
        logits = self.head(torch.cat([*parts, indicators], dim=1)).squeeze(-1)
        return logits, indicators / indicators.sum(dim=1, keepdim=True).clamp_min(1.0), None


class LateFusion(Fusion):
    """Late fusion baseline: one classifier per modality, logits averaged over the modalities present.

    Each modality has its own head ``Linear(D_m, dim) - LayerNorm - GELU - Dropout - Linear(dim, 1)``; the
    fused logit is the mean of the present modalities' logits, or a learned bias for a case with none.

    Args:
        modality_dims: width ``D_m`` of each modality's encoder output, for the model's modalities.
        dim: hidden width of each head.
        dropout: dropout probability in the heads, in ``[0, 1)``.

    Output ``gates``: ``1 / n_present`` per present modality; ``modality_logits``: each head's logit.
    """

    def __init__(self, modality_dims: Mapping[Modality, int], dim: int = 64, dropout: float = 0.1) -> None:
        super().__init__(modality_dims, dim, dropout)
        self.heads = nn.ModuleDict(
            {
                str(m): nn.Sequential(
                    ModalityProjection(d, dim), nn.GELU(), nn.Dropout(self.dropout_p), nn.Linear(dim, 1)
                )
                for m, d in self.modality_dims.items()
            }
        )
        self.no_evidence_logit = nn.Parameter(torch.zeros(()))

    def fuse(self, inputs: list[Tensor], present: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        own = torch.cat([self.heads[m](x) for m, x in zip(self.modalities, inputs, strict=True)], dim=1)
        own = torch.where(present, own, 0.0)  # [B, K]
        count = present.sum(dim=1).to(own.dtype)
        mean = own.sum(dim=1) / count.clamp_min(1.0)
        logits = torch.where(count > 0, mean, self.no_evidence_logit.to(own.dtype))
        weights = present.to(own.dtype) / count.clamp_min(1.0).unsqueeze(1)
        return logits, weights, own


@dataclass(frozen=True)
class FusionSpec:
    """One fusion: its config name, its class (called with ``modality_dims``, ``dim`` and the config's
    keyword arguments) and a line for listings."""

    name: str
    build: type[Fusion]
    description: str


#: The fusions by config name (``model.fusion.name``), in listing order; the first is the default.
FUSIONS: Registry[FusionSpec] = Registry("fusion")
FUSIONS.register(
    FusionSpec(
        "gated_attention", GatedAttentionFusion, "projections, cross-modal attention, a gate per modality"
    )
)
FUSIONS.register(FusionSpec("attention", AttentionFusion, "gated_attention without the gates"))
FUSIONS.register(FusionSpec("gated", GatedFusion, "gated_attention without the attention"))
FUSIONS.register(FusionSpec("concat", ConcatFusion, "concatenated projections and presence into an MLP"))
FUSIONS.register(FusionSpec("late", LateFusion, "one logit per modality, averaged over those present"))

DEFAULT_FUSION = "gated_attention"


def build_fusion(name: str, modality_dims: Mapping[Modality, int], dim: int = 64, **kwargs: Any) -> Fusion:
    """Build the fusion registered as ``name`` for modalities of the given widths.

    >>> fusion = build_fusion("gated_attention", {Modality.IMAGE: 128, Modality.TABULAR: 64}, dim=32)

    Raises :class:`~mmdx.errors.MmdxError` for an unknown name or argument, and
    :class:`~mmdx.models.hparams.HyperParameterError` (also a ``ValueError``) for a bad hyper-parameter.
    """
    cls = FUSIONS.get(name).build
    check_keyword_arguments(f"fusion '{name}'", cls, {"modality_dims": modality_dims, "dim": dim, **kwargs})
    return cls(modality_dims, dim=dim, **kwargs)
