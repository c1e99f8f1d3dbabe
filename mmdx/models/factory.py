"""From the ``model`` section of a config and the fitted preprocessing to :func:`build_model` arguments.

The config names each encoder and its hyper-parameters; the sizes that depend on the data (number of
tabular columns, categorical cardinalities, vocabulary size, image dimensionality) come from the
preprocessing fitted on the training split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdx.config import ModelConfig
from mmdx.data.dataset import Preprocessing
from mmdx.data.text import pad_id
from mmdx.keys import Modality
from mmdx.models.registry import get_encoder_spec


def pretrained_tokenizer(model: ModelConfig) -> Path | None:
    """The ``tokenizer.json`` a pretrained text encoder requires, or None (a tokenizer is trained instead)."""
    if model.text is None:
        return None
    spec = get_encoder_spec(model.text.name, Modality.TEXT)
    return spec.tokenizer(**model.text.params) if spec.tokenizer is not None else None


def model_arguments(model: ModelConfig, prep: Preprocessing) -> dict[str, Any]:
    """Keyword arguments of :func:`mmdx.models.classifier.build_model` for this config and data."""
    args: dict[str, Any] = {"image": None, "tabular": None, "text": None}
    if model.image is not None:
        image = prep.image_config
        args["image"] = {
            "name": model.image.name,
            "spatial_dims": image.dims if image else 2,
            **model.image.params,
        }
    if model.tabular is not None:
        args["tabular"] = {
            "name": model.tabular.name,
            "n_features": len(prep.tabular_columns),
            "categorical_cardinalities": prep.normaliser.cardinalities,
            **model.tabular.params,
        }
    if model.text is not None:
        params = dict(model.text.params)
        if get_encoder_spec(model.text.name, Modality.TEXT).tokenizer is None:
            assert prep.tokenizer is not None
            params = {
                "vocab_size": prep.tokenizer.get_vocab_size(),
                "max_length": prep.text_max_length,
                "pad_id": pad_id(prep.tokenizer),
                **params,
            }
        args["text"] = {"name": model.text.name, **params}
    args["fusion"] = {"name": model.fusion.name, **model.fusion.params}
    return args
