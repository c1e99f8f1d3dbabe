"""Encoders, one module per modality: :mod:`.imaging`, :mod:`.tabular`, :mod:`.text`.

Each module registers its encoders in :data:`ENCODERS` where it defines them;
:mod:`mmdx.models.registry` imports all three, so the registry is complete once it is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmdx.keys import Modality
from mmdx.registry import Registry

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder.

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


#: Every encoder by config name, in registration order (imaging, tabular, text).
ENCODERS: Registry[EncoderSpec] = Registry("encoder")
