"""Imaging encoders: input checks, case independence, and that the small CNN finds a small lesion."""

from __future__ import annotations

import pytest
import torch

from mmdx.errors import MmdxError
from mmdx.models.encoders.imaging import MONAI_ARCHITECTURES, MonaiImageEncoder, SmallCNN
from mmdx.models.hparams import HyperParameterError


def lesion_images(n: int, size: int, spatial_dims: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy images with a smooth background; label 1 images hold one small bright disk/sphere."""
    generator = torch.Generator().manual_seed(seed)
    shape = (n, 1, *([size] * spatial_dims))
    grid = torch.stack(
        torch.meshgrid(*[torch.arange(size, dtype=torch.float32)] * spatial_dims, indexing="ij")
    )
    background = 0.3 + 0.2 * torch.rand(n, *([1] * (spatial_dims + 1)), generator=generator)
    gradient = (
        0.1 * torch.rand(n, 1, generator=generator).view(n, *([1] * (spatial_dims + 1))) * grid[0] / size
    )
    images = background + gradient + 0.08 * torch.randn(shape, generator=generator)
    labels = (torch.rand(n, generator=generator) < 0.5).float()
    radius = 2.5 if spatial_dims == 2 else 2.0
    for i in range(n):
        if labels[i]:
            centre = torch.randint(4, size - 4, (spatial_dims,), generator=generator).float()
            distance = (grid - centre.view(-1, *([1] * spatial_dims))).square().sum(0).sqrt()
            images[i, 0] += 0.35 * (distance <= radius).float()
    return images, labels


@pytest.mark.parametrize("spatial_dims", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_small_cnn_detects_a_small_bright_lesion(spatial_dims: int) -> None:
    torch.manual_seed(0)
    size = 32 if spatial_dims == 2 else 16
    encoder = SmallCNN(spatial_dims=spatial_dims, channels=(8, 16, 32), out_dim=16)
    head = torch.nn.Linear(16, 1)
    parameters = list(encoder.parameters()) + list(head.parameters())
    optimiser = torch.optim.Adam(parameters, lr=3e-3)
    train_x, train_y = lesion_images(256, size, spatial_dims, seed=1)
    for step in range(60):  # batch norm's running statistics need a few dozen steps to settle
        batch = slice((step * 32) % 256, (step * 32) % 256 + 32)
        optimiser.zero_grad()
        logits = head(encoder(train_x[batch])).squeeze(-1)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, train_y[batch]).backward()
        optimiser.step()
    test_x, test_y = lesion_images(128, size, spatial_dims, seed=2)
    encoder.eval()
    with torch.no_grad():
        accuracy = ((head(encoder(test_x)).squeeze(-1) > 0).float() == test_y).float().mean()
    assert accuracy > 0.9


def test_small_cnn_encodes_each_case_on_its_own_in_training_mode() -> None:
    encoder = SmallCNN(spatial_dims=2, channels=(8, 16), norm="instance").train()
    images = torch.rand(3, 1, 24, 24)
    together = encoder(images)
    alone = encoder(images[1:2])
    assert torch.allclose(together[1:2], alone, atol=1e-5)


@pytest.mark.parametrize(
    ("encoder", "image", "message"),
    [
        (
            SmallCNN(spatial_dims=2),
            torch.zeros(1, 1, 8, 8, 8),
            r"expects images \[B, C, H, W\].*spatial_dims=3",
        ),
        (SmallCNN(spatial_dims=3), torch.zeros(1, 1, 32, 32), r"\[B, C, D, H, W\].*spatial_dims=2"),
        (SmallCNN(spatial_dims=2), torch.zeros(1, 32, 32), r"got shape \(1, 32, 32\)"),
        (SmallCNN(spatial_dims=2), torch.zeros(1, 3, 32, 32), "expects 1 input channel"),
        (SmallCNN(spatial_dims=2), torch.zeros(1, 1, 32, 8), "at least 16 pixels"),
        (MonaiImageEncoder("densenet121", spatial_dims=2), torch.zeros(1, 1, 28, 64), "at least 32 pixels"),
    ],
)
def test_bad_images_are_explained(encoder, image: torch.Tensor, message: str) -> None:
    with pytest.raises(MmdxError, match=message):
        encoder(image)


@pytest.mark.parametrize("architecture", list(MONAI_ARCHITECTURES))
def test_monai_encoders_accept_their_minimum_size(architecture: str) -> None:
    encoder = MonaiImageEncoder(architecture, spatial_dims=2).eval()
    side = max(encoder.min_input_size, 2)
    with torch.no_grad():
        assert encoder(torch.rand(1, 1, side, side + 3)).shape == (1, encoder.out_dim)


def test_monai_encoders_use_out_of_place_activations() -> None:
    # In-place ReLUs break Captum's module hooks; the wrappers swap them for out-of-place ones.
    for architecture in ("densenet121", "resnet18"):
        encoder = MonaiImageEncoder(architecture)
        relus = [m for m in encoder.modules() if isinstance(m, torch.nn.ReLU)]
        assert relus and not any(m.inplace for m in relus)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spatial_dims": 1}, "spatial_dims must be 2"),
        ({"channels": ()}, "at least one stage"),
        ({"channels": (8, 0)}, "positive integer"),
        ({"norm": "batchnorm"}, "did you mean 'batch'"),
        ({"in_channels": 0}, "in_channels"),
        ({"pooling": "mean"}, "pooling"),
    ],
)
def test_small_cnn_rejects_bad_hyper_parameters(kwargs: dict, message: str) -> None:
    with pytest.raises(HyperParameterError, match=message):
        SmallCNN(**kwargs)


def test_unknown_monai_architecture() -> None:
    with pytest.raises(HyperParameterError, match="did you mean 'resnet18'"):
        MonaiImageEncoder("resnet19")


def test_stem_stride_halves_the_first_feature_map() -> None:
    import torch

    from mmdx.models.registry import build_encoder

    plain = build_encoder("small_cnn", spatial_dims=3, channels=[4, 8], out_dim=8)
    strided = build_encoder("small_cnn", spatial_dims=3, channels=[4, 8], out_dim=8, stem_stride=2)
    x = torch.rand(2, 1, 16, 16, 16)
    assert plain.stem(x).shape[-1] == 16 and strided.stem(x).shape[-1] == 8
    assert strided(x).shape == (2, 8)
    assert strided.min_input_size == 2 * plain.min_input_size
    with pytest.raises(ValueError, match="stem_stride"):
        build_encoder("small_cnn", spatial_dims=3, stem_stride=3)


def test_max_pooling_takes_each_channels_evidence_from_one_location() -> None:
    torch.manual_seed(0)
    both = SmallCNN(spatial_dims=2, channels=(4, 8), out_dim=6).eval()
    only_max = SmallCNN(spatial_dims=2, channels=(4, 8), out_dim=6, pooling="max").eval()
    assert both.project.in_features == 16 and only_max.project.in_features == 8
    features = {}
    only_max.stages.register_forward_hook(lambda _m, _i, out: features.__setitem__("last", out))
    output = only_max(torch.rand(1, 1, 16, 16)).sum()
    (at_last,) = torch.autograd.grad(output, [features["last"]])
    # one location per channel receives the gradient (the average would spread it over all of them), except
    # where the maximum is tied (a channel that is 0 everywhere after its ReLU)
    last = features["last"].flatten(2)
    unique = (last == last.amax(2, keepdim=True)).sum(2) == 1
    per_channel = (at_last.flatten(2) != 0).sum(2)
    assert unique.any() and bool((per_channel[unique] == 1).all())
