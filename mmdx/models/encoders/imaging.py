"""Imaging encoders: an image ``[B, C, H, W]`` or a volume ``[B, C, D, H, W]`` in, a vector ``[B, D]`` out.

Two families share one contract (:class:`ImagingEncoder`): :class:`SmallCNN`, a compact residual network
that trains in minutes on a CPU, and :class:`MonaiImageEncoder`, the feature extractor of a MONAI network
(DenseNet-121, ResNet-10/18/34/50, EfficientNet-B0) with its classification layer removed. Every encoder
checks its input in ``forward`` and says which shape it expected, including the smallest spatial size its
down-sampling supports (``min_input_size``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from mmdx.errors import MmdxError
from mmdx.keys import Modality
from mmdx.models.encoders import ENCODERS, EncoderSpec
from mmdx.models.hparams import (
    HyperParameterError,
    check_choice,
    check_dropout,
    check_positive_int,
    check_spatial_dims,
)


class ImagingEncoder(nn.Module):
    """Base of every imaging encoder: validates the input, then calls :meth:`extract`.

    Attributes:
        out_dim: width ``D`` of the output vector.
        tokens: always ``False``; the output is one pooled vector per image.
        spatial_dims: 2 for images ``[B, C, H, W]``, 3 for volumes ``[B, C, D, H, W]``.
        in_channels: ``C``, the number of input channels (1 for CT/MR intensities).
        min_input_size: the smallest size, in pixels/voxels, accepted along each spatial axis.
    """

    tokens: bool = False

    def __init__(self, spatial_dims: int, in_channels: int, out_dim: int, min_input_size: int) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_dim = out_dim
        self.min_input_size = min_input_size

    def forward(self, image: Tensor) -> Tensor:
        """``image``: ``[B, C, H, W]`` or ``[B, C, D, H, W]``, intensity-normalised -> ``[B, out_dim]``."""
        self.check_input(image)
        return self.extract(image)

    def extract(self, image: Tensor) -> Tensor:
        """The network itself, on an input already checked by :meth:`check_input`."""
        raise NotImplementedError

    #: the stage of :meth:`cam_layers` that class-activation maps (Grad-CAM) read by default
    default_cam_layer: str = ""

    def cam_layers(self) -> dict[str, nn.Module]:
        """The feature maps a class-activation map (Grad-CAM and its kin) can read: stage name -> module
        whose output is ``[B, C, *spatial]``, from the finest grid to the coarsest."""
        raise NotImplementedError(f"{type(self).__name__} names no target layers for class-activation maps")

    @property
    def fine_cam_layer(self) -> str:
        """The finest stage of :meth:`cam_layers`, which the maps that weigh each location by its own
        gradient (LayerCAM, HiResCAM) read by default: they need no channel average to be specific, so they
        gain from resolution (BENCHMARKS.md "The stage of the location-wise maps")."""
        return next(iter(self.cam_layers()))

    def check_input(self, image: Tensor) -> None:
        """Raise :class:`~mmdx.errors.MmdxError` when ``image`` does not have the shape this encoder needs."""
        name = type(self).__name__
        expected = "[B, C, H, W]" if self.spatial_dims == 2 else "[B, C, D, H, W]"
        if image.ndim != self.spatial_dims + 2:
            hint = (
                f"; build the encoder with spatial_dims={image.ndim - 2} or resample the images"
                if image.ndim in (4, 5)
                else ""
            )
            raise MmdxError(
                f"{name} (spatial_dims={self.spatial_dims}) expects images {expected}, "
                f"got shape {tuple(image.shape)}{hint}"
            )
        if image.shape[1] != self.in_channels:
            raise MmdxError(
                f"{name} expects {self.in_channels} input channel(s) on axis 1, "
                f"got shape {tuple(image.shape)}"
            )
        spatial = tuple(image.shape[2:])
        if min(spatial) < self.min_input_size:
            raise MmdxError(
                f"{name} needs at least {self.min_input_size} pixels along each spatial axis (its "
                f"down-sampling shrinks the image below one pixel otherwise), got spatial size {spatial}; "
                "resample the images to a larger grid"
            )


# --------------------------------------------------------------------------------------------------------
# SmallCNN


def _norm(kind: str, spatial_dims: int, channels: int) -> nn.Module:
    if kind == "batch":
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "instance":
        return (nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    return nn.GroupNorm(num_groups=min(8, channels), num_channels=channels)


class _ResidualStage(nn.Module):
    """conv-norm-act-conv-norm plus a shortcut; the first convolution down-samples when ``stride`` is 2."""

    def __init__(self, spatial_dims: int, in_ch: int, out_ch: int, stride: int, norm: str) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.body = nn.Sequential(
            conv(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False),
            _norm(norm, spatial_dims, out_ch),
            nn.ReLU(),
            conv(out_ch, out_ch, kernel_size=3, padding=1, bias=False),
            _norm(norm, spatial_dims, out_ch),
        )
        self.shortcut: nn.Module = (
            nn.Identity()
            if stride == 1 and in_ch == out_ch
            else nn.Sequential(
                conv(in_ch, out_ch, kernel_size=1, stride=stride, bias=False),
                _norm(norm, spatial_dims, out_ch),
            )
        )
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))


#: The global poolings :class:`SmallCNN` can summarise its last stage with.
POOLINGS = ("avg+max", "max", "avg")


class SmallCNN(ImagingEncoder):
    """A compact residual CNN for 2D images or 3D volumes, small enough to train on a CPU.

    A stem convolution is followed by one residual stage per entry of ``channels`` (He et al., "Deep
    Residual Learning for Image Recognition", CVPR 2016); every stage after the first halves the spatial
    size. The last feature map is summarised by global average *and* global max pooling (``pooling``): the
    max keeps a small bright lesion visible where the average would dilute it over the whole field of view.
    A linear layer maps the pooled features (``channels[-1]`` per pooling) to ``out_dim``.

    Args:
        spatial_dims: 2 for images ``[B, C, H, W]``, 3 for volumes ``[B, C, D, H, W]``.
        in_channels: ``C``, channels of the input image.
        channels: width of each stage; ``len(channels)`` stages, ``len(channels) - 1`` down-samplings.
        out_dim: width ``D`` of the output ``[B, D]``.
        norm: ``"batch"`` (default), ``"instance"`` or ``"group"``. Batch norm is an affine map in
            evaluation mode and keeps absolute intensities (Hounsfield units mean something), which suits
            Integrated Gradients along a path from a black image; instance and group norm make the network
            nearly blind to intensity scale, so such a path concentrates all attribution near the black
            image. Instance norm never mixes the cases of a batch, even in training.
        dropout: dropout probability on the pooled features, in ``[0, 1)``.
        stem_stride: 1 or 2; 2 halves every side in the stem, which makes a 3D volume about eight times
            cheaper (the choice for CPU training on volumes; lesions must span a few voxels).
        pooling: ``"avg+max"`` (default), ``"max"`` or ``"avg"``: the global poolings of the last stage.
            With ``"max"`` alone every channel's evidence comes from one location (a lesion detector that
            cannot spread credit over the whole field of view, which class-activation maps then show).

    Input ``image``: ``[B, C, H, W]`` or ``[B, C, D, H, W]``, each spatial side at least
    ``stem_stride * 2 ** len(channels)``. Output: ``[B, out_dim]``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128),
        out_dim: int = 128,
        norm: str = "batch",
        dropout: float = 0.0,
        stem_stride: int = 1,
        pooling: str = "avg+max",
    ) -> None:
        owner = "SmallCNN"
        spatial_dims = check_spatial_dims(owner, spatial_dims)
        check_positive_int(owner, "in_channels", in_channels)
        check_positive_int(owner, "out_dim", out_dim)
        channels = tuple(channels)
        if not channels:
            raise HyperParameterError(f"{owner}: channels must list at least one stage width, got ()")
        for width in channels:
            check_positive_int(owner, "each entry of channels", width)
        norm = check_choice(owner, "norm", norm, ("batch", "instance", "group"))
        dropout = check_dropout(owner, "dropout", dropout)
        stem_stride = check_choice(owner, "stem_stride", str(stem_stride), ("1", "2"))
        stem_stride = int(stem_stride)
        pooling = check_choice(owner, "pooling", pooling, POOLINGS)
        # Instance norm needs more than one voxel per channel in training (batch norm too, with a batch of
        # one), so the last stage must keep at least two voxels per axis.
        super().__init__(spatial_dims, in_channels, out_dim, min_input_size=stem_stride * 2 ** len(channels))
        self.channels = channels
        self.pooling = pooling
        self._pool_names = tuple(pooling.split("+"))
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.stem = nn.Sequential(
            conv(in_channels, channels[0], kernel_size=3, stride=stem_stride, padding=1, bias=False),
            _norm(norm, spatial_dims, channels[0]),
            nn.ReLU(),
        )
        stages = []
        previous = channels[0]
        for index, width in enumerate(channels):
            stages.append(_ResidualStage(spatial_dims, previous, width, 1 if index == 0 else 2, norm))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Linear(len(self._pool_names) * channels[-1], out_dim)
        # for the maps that average each channel's gradient (Grad-CAM, Grad-CAM++): the first residual stage,
        # at the stem's resolution (32^2 in the demo, 16^3 on a 32^3 volume with a stride-2 stem, where the
        # last stage is 4^3), which points best (BENCHMARKS.md, "Explanations by method")
        self.default_cam_layer = "stage0"

    def cam_layers(self) -> dict[str, nn.Module]:
        return {"stem": self.stem, **{f"stage{i}": stage for i, stage in enumerate(self.stages)}}

    def extract(self, image: Tensor) -> Tensor:
        x = self.stages(self.stem(image))
        flat = x.flatten(2)  # [B, C, voxels]
        pools = {"avg": lambda: flat.mean(dim=2), "max": lambda: flat.amax(dim=2)}
        pooled = torch.cat([pools[name]() for name in self._pool_names], dim=1)
        return self.project(self.dropout(pooled))


# --------------------------------------------------------------------------------------------------------
# MONAI networks


@dataclass(frozen=True)
class _MonaiArchitecture:
    build: Callable[[int, int], nn.Module]  # (spatial_dims, in_channels) -> network returning [B, out_dim]
    out_dim: int
    min_input_size: int
    paper: str


def _densenet121(spatial_dims: int, in_channels: int) -> nn.Module:
    from monai.networks.nets import DenseNet121

    net = DenseNet121(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=1)
    net.class_layers.out = nn.Identity()  # keep relu -> global average pool -> flatten: [B, 1024]
    return net


def _resnet(depth: int) -> Callable[[int, int], nn.Module]:
    def build(spatial_dims: int, in_channels: int) -> nn.Module:
        from monai.networks.nets import resnet10, resnet18, resnet34, resnet50

        factory = {10: resnet10, 18: resnet18, 34: resnet34, 50: resnet50}[depth]
        # feed_forward=False drops the fully connected layer and returns the pooled features; a stride-2
        # stem is the original ResNet's (MONAI defaults to stride 1, four times the cost in 2D, eight in 3D).
        return factory(
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            feed_forward=False,
            conv1_t_stride=2,
        )

    return build


def _efficientnet_b0(spatial_dims: int, in_channels: int) -> nn.Module:
    from monai.networks.nets import EfficientNetBN

    net = EfficientNetBN(
        "efficientnet-b0", pretrained=False, spatial_dims=spatial_dims, in_channels=in_channels, num_classes=1
    )
    net._fc = nn.Identity()  # the head ends in pooled, dropped-out features [B, 1280]
    return net


_HE_2016 = "He et al., 'Deep Residual Learning for Image Recognition', CVPR 2016"
_HARA_2018 = (
    "Hara et al., 'Can Spatiotemporal 3D CNNs Retrace the History of 2D CNNs and ImageNet?', CVPR 2018"
)

MONAI_ARCHITECTURES: dict[str, _MonaiArchitecture] = {
    "densenet121": _MonaiArchitecture(
        _densenet121, 1024, 32, "Huang et al., 'Densely Connected Convolutional Networks', CVPR 2017"
    ),
    "resnet10": _MonaiArchitecture(_resnet(10), 512, 1, f"{_HE_2016}; {_HARA_2018}"),
    "resnet18": _MonaiArchitecture(_resnet(18), 512, 1, f"{_HE_2016}; {_HARA_2018}"),
    "resnet34": _MonaiArchitecture(_resnet(34), 512, 1, f"{_HE_2016}; {_HARA_2018}"),
    "resnet50": _MonaiArchitecture(_resnet(50), 2048, 1, f"{_HE_2016}; {_HARA_2018}"),
    "efficientnet_b0": _MonaiArchitecture(
        _efficientnet_b0,
        1280,
        32,
        "Tan and Le, 'EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks', ICML 2019",
    ),
}


class MonaiImageEncoder(ImagingEncoder):
    """The feature extractor of a MONAI network, randomly initialised, classification layer removed.

    Architectures (``out_dim``, smallest spatial side accepted, paper):

    - ``densenet121``: 1024, 32 (five 2x down-samplings; a smaller side pools to nothing) — Huang et al.,
      "Densely Connected Convolutional Networks", CVPR 2017.
    - ``resnet10``, ``resnet18``, ``resnet34``: 512; ``resnet50``: 2048; any size — He et al., "Deep Residual
      Learning for Image Recognition", CVPR 2016, in the 3D form of Hara et al., CVPR 2018. The stem
      convolution has stride 2, as in the original ResNet. With batch norm in training, the last stage must
      keep more than one value per channel: use a batch of two or more, or sides of 64 and more.
    - ``efficientnet_b0``: 1280, 32 (its padding is fixed for a 224 grid) — Tan and Le, "EfficientNet:
      Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019.

    Args:
        architecture: one of the names above.
        spatial_dims: 2 for images ``[B, C, H, W]``, 3 for volumes ``[B, C, D, H, W]``.
        in_channels: ``C``, channels of the input image.

    Input ``image``: ``[B, C, H, W]`` or ``[B, C, D, H, W]``. Output: ``[B, out_dim]``.
    """

    def __init__(self, architecture: str, spatial_dims: int = 2, in_channels: int = 1) -> None:
        owner = "MonaiImageEncoder"
        architecture = check_choice(owner, "architecture", architecture, MONAI_ARCHITECTURES)
        spatial_dims = check_spatial_dims(owner, spatial_dims)
        check_positive_int(owner, "in_channels", in_channels)
        spec = MONAI_ARCHITECTURES[architecture]
        super().__init__(spatial_dims, in_channels, spec.out_dim, spec.min_input_size)
        self.architecture = architecture
        self.network = spec.build(spatial_dims, in_channels)
        # MONAI's activations are in place (some hard-coded inside blocks); in-place operations break the
        # module hooks that Captum's layer attributions rely on.
        for module in self.network.modules():
            if getattr(module, "inplace", False) is True:
                module.inplace = False

    def extract(self, image: Tensor) -> Tensor:
        return self.network(image)

    def cam_layers(self) -> dict[str, nn.Module]:
        net = self.network
        if self.architecture == "densenet121":
            names = ["denseblock1", "denseblock2", "denseblock3", "denseblock4"]
            return {name: getattr(net.features, name) for name in names}
        if self.architecture.startswith("resnet"):
            return {f"layer{i}": getattr(net, f"layer{i}") for i in range(1, 5)}
        # EfficientNet-B0: the last block of each resolution (strides 2, 4, 8, 16, 32)
        blocks = list(net._blocks)
        return {f"block{i}": blocks[i] for i in (0, 2, 4, 10, 15) if i < len(blocks)}

    @property
    def default_cam_layer(self) -> str:  # type: ignore[override]
        # the second-to-last stage, as for small_cnn: the last is 1/32 of the side
        return list(self.cam_layers())[-2]


def _monai(architecture: str, description: str) -> EncoderSpec:
    return EncoderSpec(architecture, Modality.IMAGE, partial(MonaiImageEncoder, architecture), description)


ENCODERS.register(
    EncoderSpec(
        "small_cnn",
        Modality.IMAGE,
        SmallCNN,
        "compact residual CNN with average+max pooling, 2D/3D, trains on a CPU",
    )
)
for _spec in (
    _monai("densenet121", "MONAI DenseNet-121 features (1024), 2D/3D, sides >= 32"),
    _monai("resnet10", "MONAI ResNet-10 features (512), 2D/3D"),
    _monai("resnet18", "MONAI ResNet-18 features (512), 2D/3D"),
    _monai("resnet34", "MONAI ResNet-34 features (512), 2D/3D"),
    _monai("resnet50", "MONAI ResNet-50 features (2048), 2D/3D"),
    _monai("efficientnet_b0", "MONAI EfficientNet-B0 features (1280), 2D/3D, sides >= 32"),
):
    ENCODERS.register(_spec)
