"""Image augmentation of training batches: off by default, 2D and 3D, seeded, each transform on its own."""

from __future__ import annotations

import pytest
import torch

from mmdx.config import AugmentConfig
from mmdx.training.augment import build_augmentation


def test_off_unless_a_chance_is_set() -> None:
    assert build_augmentation(AugmentConfig()) is None
    assert build_augmentation(AugmentConfig(noise=0.5)) is not None


@pytest.mark.parametrize("shape", [(3, 1, 16, 16), (2, 1, 8, 12, 12)])
@pytest.mark.parametrize("kind", ["affine", "elastic", "intensity", "noise"])
def test_each_transform_changes_images_and_keeps_their_shape(shape, kind) -> None:
    augment = build_augmentation(AugmentConfig(**{kind: 1.0}))
    image = torch.rand(shape)
    augment.set_random_state(1)
    out = augment(image)
    assert out.shape == image.shape and out.dtype == image.dtype and torch.isfinite(out).all()
    assert not torch.allclose(out, image)


def test_the_same_seed_draws_the_same_augmentation() -> None:
    config = AugmentConfig(affine=0.5, elastic=0.5, intensity=0.5, noise=0.5)
    image = torch.rand(4, 1, 16, 16)
    a, b = build_augmentation(config), build_augmentation(config)
    a.set_random_state(3)
    b.set_random_state(3)
    assert torch.equal(a(image), b(image))
    b.set_random_state(4)
    assert not torch.equal(a(image), b(image))
