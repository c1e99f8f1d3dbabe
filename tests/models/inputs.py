"""Small inputs for the model tests: one case dict per modality, made from a seed."""

from __future__ import annotations

import torch

from mmdx.keys import MODALITIES, Keys


def make_batch(
    batch: int = 4,
    *,
    spatial_dims: int = 2,
    size: int = 32,
    n_features: int = 6,
    cardinalities: tuple[int, ...] = (3, 4),
    vocab_size: int = 50,
    length: int = 9,
    seed: int = 0,
) -> dict:
    """A collated batch with every key, random presence (at least one absent cell) and padded text."""
    generator = torch.Generator().manual_seed(seed)
    missing = (torch.rand(batch, n_features, generator=generator) < 0.3).float()
    values = torch.randn(batch, n_features, generator=generator) * (1 - missing)
    categorical = torch.stack(
        [torch.randint(0, c, (batch,), generator=generator) for c in cardinalities], dim=1
    ).long()
    ids = torch.randint(1, vocab_size, (batch, length), generator=generator)
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    ids = ids * mask  # pad id 0 after each text
    presence = torch.rand(batch, len(MODALITIES), generator=generator) < 0.7
    presence[0] = True
    if batch > 1:
        presence[1, 0] = False
    return {
        Keys.IMAGE: torch.rand(batch, 1, *([size] * spatial_dims), generator=generator),
        Keys.TABULAR: values,
        Keys.TABULAR_MISSING: missing,
        Keys.CATEGORICAL: categorical,
        Keys.TEXT_IDS: ids,
        Keys.TEXT_MASK: mask,
        Keys.PRESENCE: presence,
    }
