"""From the ``model`` section of a config and the fitted preprocessing to :func:`build_model` arguments.

The config names each encoder and its hyper-parameters; the sizes that depend on the data (number of
tabular columns, categorical cardinalities, vocabulary size, image dimensionality) come from the
preprocessing fitted on the training split.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from mmdx.config import ComponentConfig, ModelConfig
from mmdx.data.dataset import Preprocessing
from mmdx.data.text import pad_id
from mmdx.errors import ConfigError, MmdxError, did_you_mean
from mmdx.keys import Modality
from mmdx.models.fusion import FUSIONS
from mmdx.models.registry import get_encoder_spec

#: arguments filled in from the fitted preprocessing, never from the config
DATA_DERIVED = {
    "spatial_dims",
    "n_features",
    "categorical_cardinalities",
    "vocab_size",
    "max_length",
    "pad_id",
    "negation",
}


def _accepted(builder) -> list[str]:
    parameters = inspect.signature(builder).parameters
    return [
        n
        for n, p in parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]


def check_model_config(model: ModelConfig) -> None:
    """Fail early, with the key's path and a suggestion, on an unknown encoder/fusion name or argument.

    ``model.fusion.hiden_dim: unknown key; did you mean 'dim'?``
    """
    parts: list[tuple[str, ComponentConfig, object]] = []
    for modality in (Modality.IMAGE, Modality.TABULAR, Modality.TEXT):
        component = getattr(model, modality.value)
        if component is None:
            continue
        try:
            spec = get_encoder_spec(component.name, modality)
        except MmdxError as exc:
            raise ConfigError(f"model.{modality.value}.name: {exc}") from None
        parts.append((f"model.{modality.value}", component, spec.builder))
    try:
        fusion = FUSIONS.get(model.fusion.name)
    except MmdxError as exc:
        raise ConfigError(f"model.fusion.name: {exc}") from None
    parts.append(("model.fusion", model.fusion, fusion.build))
    for where, component, builder in parts:
        accepted = [a for a in _accepted(builder) if a not in {"modality_dims", "architecture"}]
        for key in component.params:
            if key not in accepted:
                raise ConfigError(
                    f"{where}.{key}: unknown key{did_you_mean(key, accepted)} "
                    f"('{component.name}' accepts: {', '.join(a for a in accepted if a not in DATA_DERIVED)})"
                )
            if key in DATA_DERIVED and where != "model.fusion":
                raise ConfigError(f"{where}.{key}: set from the data by mmdx; remove it from the config")


def pretrained_tokenizer(model: ModelConfig) -> Path | None:
    """The ``tokenizer.json`` a pretrained text encoder requires, or None (a tokenizer is trained instead)."""
    if model.text is None:
        return None
    spec = get_encoder_spec(model.text.name, Modality.TEXT)
    return spec.tokenizer(**model.text.params) if spec.tokenizer is not None else None


def model_arguments(
    model: ModelConfig, preprocessing: Preprocessing, aux_heads: bool = False
) -> dict[str, Any]:
    """Keyword arguments of :func:`mmdx.models.classifier.build_model` for this config and data.

    ``aux_heads``: give each encoder a unimodal head for the auxiliary loss (``train.aux_loss_weight > 0``).
    """
    args: dict[str, Any] = {"image": None, "tabular": None, "text": None, "aux_heads": aux_heads}
    if model.image is not None:
        image = preprocessing.image_config
        args["image"] = {
            "name": model.image.name,
            "spatial_dims": image.dims if image else 2,
            **model.image.params,
        }
    if model.tabular is not None:
        args["tabular"] = {
            "name": model.tabular.name,
            "n_features": len(preprocessing.tabular_columns),
            "categorical_cardinalities": preprocessing.normaliser.cardinalities,
            **model.tabular.params,
        }
    if model.text is not None:
        params = dict(model.text.params)
        if get_encoder_spec(model.text.name, Modality.TEXT).tokenizer is None:
            assert preprocessing.tokenizer is not None
            params = {
                "vocab_size": preprocessing.tokenizer.get_vocab_size(),
                "max_length": preprocessing.text_max_length,
                "pad_id": pad_id(preprocessing.tokenizer),
                **params,
            }
            if preprocessing.text_negation:  # bundles without negation keep their architecture as it was
                params["negation"] = True
        args["text"] = {"name": model.text.name, **params}
    args["fusion"] = {"name": model.fusion.name, **model.fusion.params}
    return args
