"""The encoders mmdx can build by name, in one explicit table.

Every encoder meets one contract: an ``nn.Module`` with ``out_dim: int`` and ``tokens: bool`` (``False``:
``forward`` returns one vector ``[B, out_dim]`` per case; ``True``: tokens ``[B, T, out_dim]``). The
modality-specific inputs are documented in :mod:`mmdx.models.encoders.imaging`, ``.tabular`` and ``.text``.
To add an encoder, write it in the module of its modality and add one line to :data:`ENCODERS`; the
registry tests build and check every entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from torch import nn

from mmdx.errors import MmdxError, look_up_option
from mmdx.keys import Modality
from mmdx.models.encoders.imaging import MonaiImageEncoder, SmallCNN
from mmdx.models.encoders.tabular import FTTransformer, TabularMLP
from mmdx.models.encoders.text import (
    PretrainedTextEncoder,
    TextCNN,
    TextTransformer,
    hf_local_tokenizer,
    minilm_encoder,
    minilm_tokenizer,
)
from mmdx.models.hparams import check_keyword_arguments


@dataclass(frozen=True)
class EncoderSpec:
    """One registry entry.

    Attributes:
        name: the name used in configs (``model.image.name: small_cnn``).
        modality: the modality whose input the encoder reads.
        builder: called with the config's keyword arguments; returns the encoder module.
        description: one line for listings and error messages.
        tokenizer: for a pretrained text encoder, called with the same keyword arguments, returns the
            ``tokenizer.json`` that must tokenise its input; ``None`` when the tokenizer is trained on the
            cohort.
    """

    name: str
    modality: Modality
    builder: Callable[..., nn.Module]
    description: str
    tokenizer: Callable[..., Path] | None = None


def _monai(architecture: str, description: str) -> EncoderSpec:
    return EncoderSpec(architecture, Modality.IMAGE, partial(MonaiImageEncoder, architecture), description)


ENCODERS: dict[str, EncoderSpec] = {
    spec.name: spec
    for spec in (
        EncoderSpec(
            "small_cnn",
            Modality.IMAGE,
            SmallCNN,
            "compact residual CNN with average+max pooling, 2D/3D, trains on a CPU",
        ),
        _monai("densenet121", "MONAI DenseNet-121 features (1024), 2D/3D, sides >= 32"),
        _monai("resnet10", "MONAI ResNet-10 features (512), 2D/3D"),
        _monai("resnet18", "MONAI ResNet-18 features (512), 2D/3D"),
        _monai("resnet34", "MONAI ResNet-34 features (512), 2D/3D"),
        _monai("resnet50", "MONAI ResNet-50 features (2048), 2D/3D"),
        _monai("efficientnet_b0", "MONAI EfficientNet-B0 features (1280), 2D/3D, sides >= 32"),
        EncoderSpec(
            "ft_transformer",
            Modality.TABULAR,
            FTTransformer,
            "FT-Transformer: a token per feature, learned missing-value embeddings, [CLS] output",
        ),
        EncoderSpec(
            "mlp",
            Modality.TABULAR,
            TabularMLP,
            "MLP over values, missing indicators and categorical embeddings",
        ),
        EncoderSpec(
            "transformer",
            Modality.TEXT,
            TextTransformer,
            "small Transformer over a tokenizer trained on the cohort's notes",
        ),
        EncoderSpec(
            "text_cnn",
            Modality.TEXT,
            TextCNN,
            "convolutional n-gram detectors with max pooling over a tokenizer trained on the cohort",
        ),
        EncoderSpec(
            "minilm",
            Modality.TEXT,
            minilm_encoder,
            "packaged all-MiniLM-L6-v2 (384), frozen or fine-tuned, offline",
            tokenizer=minilm_tokenizer,
        ),
        EncoderSpec(
            "hf_local",
            Modality.TEXT,
            PretrainedTextEncoder,
            "any local Hugging Face encoder folder (path=...), e.g. a clinical BERT, offline",
            tokenizer=hf_local_tokenizer,
        ),
    )
}


def encoder_names(modality: Modality | None = None) -> list[str]:
    """Registered encoder names, all or those of one modality, in registry order."""
    return [name for name, spec in ENCODERS.items() if modality is None or spec.modality == modality]


def get_encoder_spec(name: str, modality: Modality | None = None) -> EncoderSpec:
    """The registry entry called ``name``; raises with a suggestion for a typo or a modality mismatch."""
    if modality is not None and name in ENCODERS and ENCODERS[name].modality != modality:
        raise MmdxError(
            f"encoder '{name}' reads {ENCODERS[name].modality} input, not {modality}; {modality} encoders: "
            f"{', '.join(encoder_names(modality))}"
        )
    what = f"{modality} encoder" if modality is not None else "encoder"
    return ENCODERS[look_up_option(name, encoder_names(modality), what=what)]


def build_encoder(name: str, **kwargs: Any) -> nn.Module:
    """Build the encoder registered as ``name`` with the keyword arguments of its constructor.

    >>> encoder = build_encoder("small_cnn", spatial_dims=3, out_dim=64)
    >>> encoder.out_dim, encoder.tokens
    (64, False)

    Raises :class:`~mmdx.errors.MmdxError` for an unknown name (with "did you mean"), an unknown argument,
    or a bad hyper-parameter (:class:`~mmdx.models.hparams.HyperParameterError`, also a ``ValueError``).
    """
    spec = get_encoder_spec(name)
    check_keyword_arguments(f"encoder '{name}'", spec.builder, kwargs)
    return spec.builder(**kwargs)


def pretrained_tokenizer_path(name: str, **kwargs: Any) -> Path | None:
    """The ``tokenizer.json`` that tokenises the input of text encoder ``name`` built with ``kwargs``.

    ``None`` for an encoder whose tokenizer is trained on the cohort (``transformer``). Load the file with
    ``tokenizers.Tokenizer.from_file``.
    """
    spec = get_encoder_spec(name, Modality.TEXT)
    if spec.tokenizer is None:
        return None
    check_keyword_arguments(f"encoder '{name}'", spec.builder, kwargs)
    return spec.tokenizer(**kwargs)
