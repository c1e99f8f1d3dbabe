"""The multimodal classifier: one encoder per modality the model has, one fusion, one logit per case.

:meth:`MultimodalClassifier.forward` takes a collated batch (keys from :class:`mmdx.keys.Keys`);
:meth:`MultimodalClassifier.forward_parts` takes every input as its own tensor argument, with the text
already embedded, which is the form attribution methods need (Captum's Integrated Gradients differentiates
with respect to ``image``, ``tabular``, ``tabular_missing`` and ``text_embeds``). The two are one code path:
``forward(batch)`` embeds the token ids and calls ``forward_parts``.

Missing modalities are handled in two ways, both exact:

- an input absent from the batch (no ``Keys.IMAGE`` at all): the encoder is not run and the modality is
  absent for every case;
- a case whose ``presence`` row marks a modality absent: the encoder runs on the placeholder input the
  data pipeline collated for it (zeros, all padding) so that shapes stay fixed, and the fusion masks it.
  In evaluation mode the encoders treat each case independently, so the placeholder cannot influence the
  other cases; in training mode a batch-norm encoder (the MONAI networks, ``small_cnn`` by default)
  normalises with batch statistics that include the placeholders, while ``small_cnn`` with
  ``norm="instance"`` and the tabular and text encoders never mix cases.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES, Keys, Modality
from mmdx.models.encoders.text import TextEncoder
from mmdx.models.fusion import DEFAULT_FUSION, Fusion, build_fusion
from mmdx.models.registry import build_encoder, get_encoder_spec


class ModelOutput(NamedTuple):
    """A batch of predictions.

    Attributes:
        logits: ``[B]``, the diagnostic logit (probability = ``sigmoid(logits / temperature)``).
        gates: ``[B, M]`` per-modality weight in the order of :data:`~mmdx.keys.MODALITIES`, 0 for a modality
            the case lacks; see :class:`~mmdx.models.fusion.FusionOutput`.
        modality_logits: ``[B, M]`` per-modality logits for late fusion, else ``None``.
        aux_logits: ``[B, M]`` logits of the unimodal auxiliary heads (0 for modalities the model lacks),
            or ``None`` when the model has none; used only by the training loss.
    """

    logits: Tensor
    gates: Tensor
    modality_logits: Tensor | None
    aux_logits: Tensor | None = None


class MultimodalClassifier(nn.Module):
    """Encoders for 1 to 3 modalities and a fusion producing one logit per case.

    Args:
        encoders: modality -> encoder meeting the registry contract (``out_dim``, ``tokens=False``);
            the text encoder must be a :class:`~mmdx.models.encoders.text.TextEncoder`.
        fusion: a :class:`~mmdx.models.fusion.Fusion` built for exactly these modalities, with
            ``modality_dims[m] == encoders[m].out_dim``.
        aux_heads: add a linear head per encoder whose logits (``ModelOutput.aux_logits``) the trainer can
            supervise with an auxiliary unimodal loss.

    Attributes:
        modalities: the model's modalities, in the order of :data:`~mmdx.keys.MODALITIES`.
        config: the arguments :func:`build_model` was called with, as plain data (paths as strings,
            sequences as lists; ``None`` when built by hand); ``build_model(**config)`` rebuilds the same
            architecture.
    """

    def __init__(
        self, encoders: Mapping[Modality, nn.Module], fusion: Fusion, aux_heads: bool = False
    ) -> None:
        super().__init__()
        if not encoders:
            raise MmdxError("MultimodalClassifier needs at least one encoder, got none")
        for key, encoder in encoders.items():
            if key not in set(MODALITIES):
                raise MmdxError(
                    f"MultimodalClassifier: unknown modality {key!r}; use {', '.join(MODALITIES)}"
                )
            out_dim = getattr(encoder, "out_dim", None)
            tokens = getattr(encoder, "tokens", None)
            if not isinstance(out_dim, int) or tokens is not False:
                raise MmdxError(
                    f"MultimodalClassifier: the {key} encoder {type(encoder).__name__} must return one "
                    f"vector [B, out_dim] per case (got out_dim={out_dim!r}, tokens={tokens!r}); the fusion "
                    "takes pooled vectors, so build token encoders without return_tokens"
                )
        if Modality.TEXT in encoders and not isinstance(encoders[Modality.TEXT], TextEncoder):
            raise MmdxError(
                f"MultimodalClassifier: the text encoder must be a TextEncoder (embedding_layer, "
                f"forward_embeddings), got {type(encoders[Modality.TEXT]).__name__}"
            )
        self.modalities: tuple[Modality, ...] = tuple(m for m in MODALITIES if m in encoders)
        if tuple(fusion.modalities) != self.modalities:
            raise MmdxError(
                f"MultimodalClassifier: the fusion was built for {', '.join(fusion.modalities)} but the "
                f"encoders are for {', '.join(self.modalities)}"
            )
        for modality in self.modalities:
            if fusion.modality_dims[modality] != encoders[modality].out_dim:
                raise MmdxError(
                    f"MultimodalClassifier: the {modality} encoder returns {encoders[modality].out_dim} "
                    f"features but the fusion expects {fusion.modality_dims[modality]}"
                )
        self.encoders = nn.ModuleDict({str(m): encoders[m] for m in self.modalities})
        self.fusion = fusion
        # Unimodal heads for an auxiliary loss: each encoder must be informative on its own, so the fusion
        # cannot lean on the easiest modality and leave the others untrained (the "greedy" failure of
        # multimodal training; Wu et al., ICML 2022). They never enter the fused prediction.
        self.aux_heads: nn.ModuleDict | None = None
        if aux_heads:
            self.aux_heads = nn.ModuleDict(
                {str(m): nn.Linear(encoders[m].out_dim, 1) for m in self.modalities}
            )
        self.config: dict[str, Any] | None = None

    def penalty(self, modalities: Iterable[str] | None = None) -> Tensor | None:
        """The sum of the encoders' own regularisation terms (an encoder's ``penalty()``, such as the
        linear tabular encoder's group lasso), for the trainer to add to the loss; ``None`` when none has one.
        ``modalities``: only these encoders' terms (default: every encoder)."""
        chosen = None if modalities is None else {str(m) for m in modalities}
        terms = [
            term
            for name, encoder in self.encoders.items()
            if (chosen is None or name in chosen)
            and callable(getattr(encoder, "penalty", None))
            and (term := encoder.penalty()) is not None
        ]
        return torch.stack(terms).sum() if terms else None

    @property
    def text_embedding_layer(self) -> nn.Module | None:
        """The text encoder's token embedding module (for ``LayerIntegratedGradients``), or ``None``."""
        text = self.encoders[Modality.TEXT] if Modality.TEXT in self.modalities else None
        return None if text is None else text.embedding_layer

    def embed_text(self, ids: Tensor) -> Tensor:
        """``[B, T, E]``: the text encoder's token embeddings of ``ids`` (checked against its vocabulary), the
        ``text_embeds`` :meth:`forward_parts` takes."""
        if Modality.TEXT not in self.modalities:
            raise MmdxError("this model has no text encoder; it takes no text_ids")
        return self.encoders[Modality.TEXT].embed(ids)

    def forward(self, batch: Mapping[str, Any]) -> ModelOutput:
        """Predict a collated batch.

        Reads ``Keys.IMAGE`` ``[B, 1, H, W]`` / ``[B, 1, D, H, W]``, ``Keys.TABULAR`` ``[B, F]``,
        ``Keys.TABULAR_MISSING`` ``[B, F]``, ``Keys.CATEGORICAL`` ``[B, C]``, ``Keys.TEXT_IDS`` ``[B, T]``,
        ``Keys.TEXT_MASK`` ``[B, T]`` and ``Keys.PRESENCE`` ``[B, M]``, each where present; inputs of
        modalities the model does not have are ignored. Without ``Keys.PRESENCE`` a modality counts as
        present for every case whose batch holds its input.
        """
        return self.forward_parts(**batch_parts(self, batch))

    def forward_parts(
        self,
        image: Tensor | None = None,
        tabular: Tensor | None = None,
        tabular_missing: Tensor | None = None,
        categorical: Tensor | None = None,
        text_embeds: Tensor | None = None,
        text_mask: Tensor | None = None,
        presence: Tensor | None = None,
    ) -> ModelOutput:
        """Predict from separate tensors (the attribution-friendly form of :meth:`forward`).

        Args:
            image: ``[B, 1, H, W]`` or ``[B, 1, D, H, W]``.
            tabular: ``[B, F]`` normalised values, 0 where missing.
            tabular_missing: ``[B, F]``, 1 where missing (default: nothing missing if ``tabular`` is given).
            categorical: ``[B, C]`` int64, 0 = unknown (default: all unknown).
            text_embeds: ``[B, T, E]``, the output of :attr:`text_embedding_layer` for the token ids.
            text_mask: ``[B, T]``, 1 real token, 0 padding (default: all real).
            presence: ``[B, M]`` bool over :data:`~mmdx.keys.MODALITIES` (default: inferred from which
                inputs are given).
        """
        features = self._encode(image, tabular, tabular_missing, categorical, text_embeds, text_mask)
        if presence is None:
            presence = self._infer_presence(features)
        fused = self.fusion(features, presence)
        aux = None
        if self.aux_heads is not None and features:
            first = next(iter(features.values()))
            aux = torch.zeros(first.shape[0], len(MODALITIES), dtype=first.dtype, device=first.device)
            for modality, feature in features.items():
                aux[:, MODALITIES.index(modality)] = self.aux_heads[str(modality)](feature).squeeze(-1)
        return ModelOutput(fused.logits, fused.gates, fused.modality_logits, aux)

    def encode(self, batch: Mapping[str, Any]) -> dict[Modality, Tensor]:
        """Per-modality encoder outputs ``[B, out_dim]`` for the modalities whose input is in ``batch``."""
        text_embeds = None
        if Modality.TEXT in self.modalities and batch.get(Keys.TEXT_IDS) is not None:
            text_embeds = self.encoders[Modality.TEXT].embed(batch[Keys.TEXT_IDS])
        return self._encode(
            batch.get(Keys.IMAGE),
            batch.get(Keys.TABULAR),
            batch.get(Keys.TABULAR_MISSING),
            batch.get(Keys.CATEGORICAL),
            text_embeds,
            batch.get(Keys.TEXT_MASK),
        )

    def _encode(
        self,
        image: Tensor | None,
        tabular: Tensor | None,
        tabular_missing: Tensor | None,
        categorical: Tensor | None,
        text_embeds: Tensor | None,
        text_mask: Tensor | None,
    ) -> dict[Modality, Tensor]:
        features: dict[Modality, Tensor] = {}
        if Modality.IMAGE in self.modalities and image is not None:
            features[Modality.IMAGE] = self.encoders[Modality.IMAGE](image)
        if Modality.TABULAR in self.modalities and any(
            t is not None for t in (tabular, tabular_missing, categorical)
        ):
            features[Modality.TABULAR] = self.encoders[Modality.TABULAR](
                tabular, tabular_missing, categorical
            )
        if Modality.TEXT in self.modalities and text_embeds is not None:
            features[Modality.TEXT] = self.encoders[Modality.TEXT].forward_embeddings(text_embeds, text_mask)
        return features

    def _infer_presence(self, features: Mapping[Modality, Tensor]) -> Tensor:
        if not features:
            raise MmdxError(
                f"the batch holds no input for any of the model's modalities ({', '.join(self.modalities)}); "
                f"expected some of the keys {', '.join(self._input_keys())}"
            )
        first = next(iter(features.values()))
        presence = torch.zeros(first.shape[0], len(MODALITIES), dtype=torch.bool, device=first.device)
        for modality in features:
            presence[:, MODALITIES.index(modality)] = True
        return presence

    def _input_keys(self) -> list[str]:
        keys = {
            Modality.IMAGE: [Keys.IMAGE],
            Modality.TABULAR: [Keys.TABULAR, Keys.TABULAR_MISSING, Keys.CATEGORICAL],
            Modality.TEXT: [Keys.TEXT_IDS, Keys.TEXT_MASK],
        }
        return [str(k) for m in self.modalities for k in keys[m]]


def batch_parts(model: nn.Module, batch: Mapping[str, Any]) -> dict[str, Tensor | None]:
    """The keyword arguments of ``model.forward_parts`` for a collated batch: its inputs by name, the token
    ids embedded by ``model.embed_text`` (a model without text ignores them)."""
    text_embeds = None
    if Modality.TEXT in model.modalities and batch.get(Keys.TEXT_IDS) is not None:
        text_embeds = model.embed_text(batch[Keys.TEXT_IDS])
    return {
        "image": batch.get(Keys.IMAGE),
        "tabular": batch.get(Keys.TABULAR),
        "tabular_missing": batch.get(Keys.TABULAR_MISSING),
        "categorical": batch.get(Keys.CATEGORICAL),
        "text_embeds": text_embeds,
        "text_mask": batch.get(Keys.TEXT_MASK),
        "presence": batch.get(Keys.PRESENCE),
    }


def _plain(value: Any) -> Any:
    """``value`` as plain YAML/JSON data: paths become strings, tuples lists (for ``model.config``)."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


def _part(where: str, spec: Any, default_name: str | None = None) -> tuple[str, dict[str, Any]]:
    """``spec`` (a name, a mapping with ``name``, or a pydantic model) -> (name, keyword arguments)."""
    if isinstance(spec, str):
        return spec, {}
    if hasattr(spec, "model_dump"):
        spec = spec.model_dump(exclude_none=True)
    if not isinstance(spec, Mapping):
        raise MmdxError(
            f"{where}: expected a name or a mapping with 'name' and its arguments, got {type(spec).__name__}"
        )
    arguments = dict(spec)
    name = arguments.pop("name", default_name)
    if not isinstance(name, str):
        raise MmdxError(f"{where}: missing 'name', got {dict(spec)!r}")
    return name, arguments


def build_model(
    image: Mapping[str, Any] | str | None = None,
    tabular: Mapping[str, Any] | str | None = None,
    text: Mapping[str, Any] | str | None = None,
    fusion: Mapping[str, Any] | str | None = None,
    aux_heads: bool = False,
) -> MultimodalClassifier:
    """Build a classifier from plain, config-like arguments.

    Each modality argument is ``None`` (the model does not have it), an encoder name, or a mapping with
    ``name`` and the encoder's keyword arguments; ``fusion`` likewise (default: ``gated_attention``, its
    ``dim`` defaulting to 64)::

        build_model(
            image={"name": "small_cnn", "spatial_dims": 2},
            tabular={"name": "ft_transformer", "n_features": 20, "categorical_cardinalities": [3, 5]},
            text={"name": "transformer", "vocab_size": 2000},
            fusion={"name": "gated_attention", "dim": 64},
        )

    ``aux_heads`` adds a unimodal head per encoder for the trainer's auxiliary loss (see
    :class:`MultimodalClassifier`).

    Raises :class:`~mmdx.errors.MmdxError` for an unknown name or argument, an encoder of the wrong
    modality, a bad hyper-parameter, or no modality at all.
    """
    given = {Modality.IMAGE: image, Modality.TABULAR: tabular, Modality.TEXT: text}
    config: dict[str, Any] = {}
    encoders: dict[Modality, nn.Module] = {}
    for modality, spec in given.items():
        config[str(modality)] = None
        if spec is None:
            continue
        name, arguments = _part(f"model.{modality}", spec)
        get_encoder_spec(name, modality)
        encoders[modality] = build_encoder(name, **arguments)
        config[str(modality)] = {"name": name, **_plain(arguments)}
    if not encoders:
        raise MmdxError("build_model needs at least one of image, tabular or text; all were None")
    fusion_name, fusion_arguments = _part("model.fusion", fusion or {}, default_name=DEFAULT_FUSION)
    fusion_module = build_fusion(fusion_name, {m: e.out_dim for m, e in encoders.items()}, **fusion_arguments)
    model = MultimodalClassifier(encoders, fusion_module, aux_heads=aux_heads)
    model.config = {
        **config,
        "fusion": {"name": fusion_name, **_plain(fusion_arguments)},
        "aux_heads": bool(aux_heads),
    }
    return model
