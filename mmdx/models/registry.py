"""The encoders mmdx can build by name, from the registry :data:`ENCODERS`.

Every encoder meets one contract: an ``nn.Module`` with ``out_dim: int`` and ``tokens: bool`` (``False``:
``forward`` returns one vector ``[B, out_dim]`` per case; ``True``: tokens ``[B, T, out_dim]``). The
modality-specific inputs are documented in :mod:`mmdx.models.encoders.imaging`, ``.tabular`` and ``.text``.
To add an encoder, write it in the module of its modality and register an :class:`EncoderSpec` there, below
the others; the registry tests build and check every entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from mmdx.errors import MmdxError, look_up_option
from mmdx.keys import Modality
from mmdx.models.encoders import ENCODERS, EncoderSpec

# the modules that register the encoders, imported so that the registry is complete
from mmdx.models.encoders import imaging as _imaging  # noqa: F401
from mmdx.models.encoders import tabular as _tabular  # noqa: F401
from mmdx.models.encoders import text as _text  # noqa: F401
from mmdx.models.hparams import check_keyword_arguments

__all__ = [
    "ENCODERS",
    "EncoderSpec",
    "build_encoder",
    "encoder_names",
    "get_encoder_spec",
    "pretrained_tokenizer_path",
]


def encoder_names(modality: Modality | None = None) -> list[str]:
    """Registered encoder names, all or those of one modality, in registry order."""
    return [spec.name for spec in ENCODERS if modality is None or spec.modality == modality]


def get_encoder_spec(name: str, modality: Modality | None = None) -> EncoderSpec:
    """The registry entry called ``name``; raises with a suggestion for a typo or a modality mismatch."""
    if modality is not None and name in ENCODERS and ENCODERS.get(name).modality != modality:
        raise MmdxError(
            f"encoder '{name}' reads {ENCODERS.get(name).modality} input, not {modality}; {modality} encoders: "
            f"{', '.join(encoder_names(modality))}"
        )
    what = f"{modality} encoder" if modality is not None else "encoder"
    return ENCODERS.get(look_up_option(name, encoder_names(modality), what=what))


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
