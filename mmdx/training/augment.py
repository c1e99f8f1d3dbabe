"""Random image augmentation of training batches, for small cohorts: MONAI random dictionary transforms.

:func:`build_augmentation` turns ``train.augment`` into an :class:`ImageAugmentation` (or ``None`` when every
chance is 0): a random affine transform (rotation, scaling, shift), an elastic deformation, an intensity
scale and shift, and Gaussian noise, each applied to a training image with its own chance, in 2D or 3D
(the dimensionality is read from the batch). The transforms run per case on the batch the loader collated
(``[B, 1, *spatial]``), after modality dropout and before the forward pass; validation, calibration and
prediction never see them. Every draw comes from one NumPy stream that the trainer re-seeds from (seed,
epoch) at the start of each epoch, so a seeded run, and a resumed one, draws the same augmentations.
"""

from __future__ import annotations

import math

import torch
from monai.transforms import (
    Compose,
    Rand2DElasticd,
    Rand3DElasticd,
    RandAffined,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
)

from mmdx.config import AugmentConfig

_KEY = "image"


def _transforms(config: AugmentConfig, dims: int, shape: tuple[int, ...]) -> list:
    """The random dictionary transforms for ``dims``-D images of grid ``shape`` (voxels)."""
    out: list = []
    if config.affine > 0:
        angle = math.radians(config.rotate_degrees)
        rotate = (angle,) if dims == 2 else (angle, angle, angle)
        out.append(
            RandAffined(
                keys=_KEY,
                prob=config.affine,
                rotate_range=rotate,
                scale_range=(config.scale,) * dims,
                translate_range=tuple(config.translate * s for s in shape),
                padding_mode="border",
                mode="bilinear",
            )
        )
    if config.elastic > 0:
        if dims == 2:
            spacing = tuple(max(2, s // 4) for s in shape)
            out.append(
                Rand2DElasticd(
                    keys=_KEY,
                    prob=config.elastic,
                    spacing=spacing,
                    magnitude_range=(0.5, 1.5),
                    padding_mode="border",
                )
            )
        else:
            sigma = max(1.0, min(shape) / 8)
            out.append(
                Rand3DElasticd(
                    keys=_KEY,
                    prob=config.elastic,
                    sigma_range=(sigma, 1.5 * sigma),
                    magnitude_range=(0.5 * sigma, sigma),
                    padding_mode="border",
                )
            )
    if config.intensity > 0:
        out.append(RandScaleIntensityd(keys=_KEY, prob=config.intensity, factors=config.intensity_range))
        out.append(RandShiftIntensityd(keys=_KEY, prob=config.intensity, offsets=config.intensity_range))
    if config.noise > 0 and config.noise_std > 0:
        out.append(RandGaussianNoised(keys=_KEY, prob=config.noise, std=config.noise_std))
    return out


class ImageAugmentation:
    """Applies ``train.augment`` to each image of a batch ``[B, 1, *spatial]`` (2D or 3D)."""

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config
        self._pipelines: dict[tuple[int, ...], Compose] = {}
        self._seed = 0

    def set_random_state(self, seed: int) -> None:
        """Re-seed every transform (the trainer calls this at the start of each epoch)."""
        self._seed = int(seed) % (2**32)
        for pipeline in self._pipelines.values():
            pipeline.set_random_state(seed=self._seed)

    def _pipeline(self, shape: tuple[int, ...]) -> Compose:
        if shape not in self._pipelines:
            pipeline = Compose(_transforms(self.config, len(shape), shape))
            pipeline.set_random_state(seed=self._seed)
            self._pipelines[shape] = pipeline
        return self._pipelines[shape]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        spatial = tuple(int(s) for s in image.shape[2:])
        pipeline = self._pipeline(spatial)
        device, dtype = image.device, image.dtype
        cases = []
        for case in image.detach().cpu():
            out = pipeline({_KEY: case})[_KEY]
            if hasattr(out, "as_tensor"):  # a MONAI MetaTensor
                out = out.as_tensor()
            cases.append(torch.as_tensor(out, dtype=dtype))
        return torch.stack(cases).to(device)


def build_augmentation(config: AugmentConfig) -> ImageAugmentation | None:
    """The augmentation ``config`` asks for, or ``None`` when it asks for none."""
    return ImageAugmentation(config) if config.enabled else None
