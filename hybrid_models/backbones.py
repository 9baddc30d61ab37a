"""Frame backbones: torchvision classifiers (and our small_cnn) as feature extractors.

Each gives one pooled vector per frame and, optionally, its last spatial map (for ConvLSTM
and spatial attention), plus the preprocessing numbers the weights expect.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torchvision.models as tvm
from torch import Tensor, nn

from hybrid_models.small_cnn import SmallCNN, SmallCNNConfig

if TYPE_CHECKING:
    from hybrid_models.weights import LoadedWeights

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True, kw_only=True)
class Preprocessing:
    """How frames become model input: resize the shorter side, centre-crop, normalise."""

    resize_size: int  # pixels of the shorter side after resizing
    crop_size: int  # side of the square centre crop the model sees
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    antialias: bool = True

    def __post_init__(self) -> None:
        if self.crop_size <= 0:
            raise ValueError(f"crop_size ({self.crop_size}) must be > 0")
        if self.resize_size < self.crop_size:
            raise ValueError(
                f"resize_size ({self.resize_size}) must be >= crop_size ({self.crop_size})"
            )
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean {self.mean} and std {self.std} must have 3 values each")
        if min(self.std) <= 0:
            raise ValueError(f"std {self.std} must be > 0")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}"
            )


FeatureFn = Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]]


@dataclass(frozen=True, kw_only=True)
class BackboneSpec:
    """One backbone: how to build it, which part to cut off, and the shapes it gives."""

    build: Callable[[], nn.Module]  # the whole classification model, randomly initialised
    features: FeatureFn  # (model, x) -> (pooled (B, D), last spatial map (B, C, h, w))
    head: str  # dotted name of the classifier part the features never use
    feature_dim: int
    spatial_channels: int
    stride: int  # input pixels per spatial-map cell
    ceil_mode: bool = True  # padded stride-2 convs round sizes up; VGG's max pools round down
    default_input_size: int = 224
    min_input_size: int = 32
    fixed_input_size: int | None = None  # a model that takes one size only (ViT's positions)
    torchvision_name: str | None = None  # name for torchvision's weights enums; None for ours
    channels_last: bool = True  # convolutions run faster in NHWC on CPU and GPU

    def check_input_size(self, input_size: int) -> None:
        if self.fixed_input_size is not None and input_size != self.fixed_input_size:
            raise ValueError(f"input_size ({input_size}) must be {self.fixed_input_size}")
        if input_size < self.min_input_size:
            raise ValueError(f"input_size ({input_size}) must be >= {self.min_input_size}")

    def spatial_map_shape(self, input_size: int) -> tuple[int, int, int]:
        """(C, h, w) of the last spatial map for square `input_size` input, without a run."""
        self.check_input_size(input_size)
        side = -(-input_size // self.stride) if self.ceil_mode else input_size // self.stride
        return self.spatial_channels, side, side


def _resnet_features(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    spatial = model.layer4(model.layer3(model.layer2(model.layer1(x))))  # (B, C, h, w)
    return model.avgpool(spatial).flatten(1), spatial


def _pooled_trunk_features(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    # MobileNetV3 and EfficientNet: `features` is the whole conv trunk, `avgpool` global.
    spatial = model.features(x)  # (B, C, h, w)
    return model.avgpool(spatial).flatten(1), spatial


def _vgg_fc7_features(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    spatial = model.features(x)  # (B, 512, h, w), after pool5
    x = model.avgpool(spatial).flatten(1)  # (B, 512 * 7 * 7)
    classifier = model.classifier
    # fc6 → ReLU → dropout → fc7 → ReLU: fc7 is taken before its own dropout.
    fc7 = classifier[4](classifier[3](classifier[2](classifier[1](classifier[0](x)))))
    return fc7, spatial


def _vit_features(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    batch = x.shape[0]
    x = model.conv_proj(x)  # (B, D, h, w)
    height, width = x.shape[-2:]
    x = x.flatten(2).transpose(1, 2)  # (B, h*w, D)
    x = torch.cat([model.class_token.expand(batch, -1, -1), x], dim=1)  # (B, 1 + h*w, D)
    x = model.encoder(x)  # ends with the final LayerNorm
    patches = x[:, 1:].transpose(1, 2).reshape(batch, -1, height, width)  # (B, D, h, w)
    return x[:, 0], patches


def _small_cnn_features(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    return model.forward_features(x)


def _small_cnn(config: SmallCNNConfig) -> BackboneSpec:
    return BackboneSpec(
        build=partial(SmallCNN, config),
        features=_small_cnn_features,
        head="head",
        feature_dim=config.feature_dim,
        spatial_channels=config.widths[-1],
        stride=config.stride,
        default_input_size=64,
        min_input_size=config.stride,
    )


# The one place that says which backbones exist.
BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec(
        build=tvm.resnet18,
        torchvision_name="resnet18",
        features=_resnet_features,
        head="fc",
        feature_dim=512,
        spatial_channels=512,
        stride=32,
    ),
    "resnet34": BackboneSpec(
        build=tvm.resnet34,
        torchvision_name="resnet34",
        features=_resnet_features,
        head="fc",
        feature_dim=512,
        spatial_channels=512,
        stride=32,
    ),
    "resnet50": BackboneSpec(
        build=tvm.resnet50,
        torchvision_name="resnet50",
        features=_resnet_features,
        head="fc",
        feature_dim=2048,
        spatial_channels=2048,
        stride=32,
    ),
    "mobilenet_v3_small": BackboneSpec(
        build=tvm.mobilenet_v3_small,
        torchvision_name="mobilenet_v3_small",
        features=_pooled_trunk_features,
        head="classifier",
        feature_dim=576,
        spatial_channels=576,
        stride=32,
    ),
    "mobilenet_v3_large": BackboneSpec(
        build=tvm.mobilenet_v3_large,
        torchvision_name="mobilenet_v3_large",
        features=_pooled_trunk_features,
        head="classifier",
        feature_dim=960,
        spatial_channels=960,
        stride=32,
    ),
    "efficientnet_b0": BackboneSpec(
        build=tvm.efficientnet_b0,
        torchvision_name="efficientnet_b0",
        features=_pooled_trunk_features,
        head="classifier",
        feature_dim=1280,
        spatial_channels=1280,
        stride=32,
    ),
    "vgg16": BackboneSpec(
        build=tvm.vgg16,
        torchvision_name="vgg16",
        features=_vgg_fc7_features,
        head="classifier.6",
        feature_dim=4096,
        spatial_channels=512,
        stride=32,
        ceil_mode=False,
    ),
    "vit_b_16": BackboneSpec(
        build=tvm.vit_b_16,
        torchvision_name="vit_b_16",
        features=_vit_features,
        head="heads",
        feature_dim=768,
        spatial_channels=768,
        stride=16,
        fixed_input_size=224,
        channels_last=False,
    ),
    # GAP over CoordConv features: 128-d, position learnable; the first block at full
    # resolution, so that small objects keep their shape (see SmallCNNConfig).
    "small_cnn": _small_cnn(SmallCNNConfig(first_stride=1)),
    # A 2×2 grid of pooled cells: 512-d, coarse position kept even untrained.
    "small_cnn_grid": _small_cnn(SmallCNNConfig(pool_grid=2, first_stride=1)),
}


def backbone_spec(name: str) -> BackboneSpec:
    """The spec of backbone `name`; ValueError naming the known ones otherwise."""
    if name not in BACKBONES:
        raise ValueError(f"backbone {name!r} is not one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def headless_model(spec: BackboneSpec) -> nn.Module:
    """`spec`'s classification model (random init, global RNG) with its head made an Identity."""
    model = spec.build()
    parent_name, _, child_name = spec.head.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child_name, nn.Identity())
    return model


class FeatureExtractor(nn.Module):
    """A backbone in eval mode: forward(x (B, 3, S, S)) → (pooled (B, D), spatial (B, C, h, w) | None)."""

    def __init__(
        self,
        *,
        name: str,
        model: nn.Module,
        preprocessing: Preprocessing,
        spatial_map: bool,
        weights_digest: str,
    ) -> None:
        super().__init__()
        self.name = name
        self.spec = BACKBONES[name]
        self.model = model
        self.preprocessing = preprocessing
        self.input_size = preprocessing.crop_size
        self.feature_dim = self.spec.feature_dim
        self.spatial_map = spatial_map
        # (C, h, w) of the spatial map that forward returns, None when it returns none.
        self.spatial_shape = self.spec.spatial_map_shape(self.input_size) if spatial_map else None
        self.weights_digest = weights_digest  # "sha256:…" or "init-seed:<n>", for lineage

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        expected = (3, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            shape_text = ", ".join(map(str, expected))
            raise ValueError(f"{self.name} takes (B, {shape_text}) input, got {tuple(x.shape)}")
        pooled, spatial = self.spec.features(self.model, x)
        return pooled, (spatial if self.spatial_map else None)


def resolve_device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device; ValueError when it is not here (never a CPU fallback)."""
    try:
        resolved = torch.device(device)
    except RuntimeError:
        resolved = None
    if resolved is not None and resolved.type == "cpu":
        return resolved
    if resolved is None or resolved.type != "cuda":
        raise ValueError(f"device {str(device)!r} is not cpu, cuda or cuda:<index>")
    if not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for but torch sees no CUDA GPU")
    index = torch.cuda.current_device() if resolved.index is None else resolved.index
    if index >= torch.cuda.device_count():
        raise ValueError(
            f"device {str(device)!r} was asked for but torch sees "
            f"{torch.cuda.device_count()} CUDA GPU(s)"
        )
    return torch.device("cuda", index)


def preprocessing_for(
    spec: BackboneSpec, weights: LoadedWeights | None, input_size: int | None
) -> Preprocessing:
    """The weights' own transforms for torchvision weights, else `input_size` and ImageNet stats.

    Torchvision weights at another `input_size` keep their resize-to-crop ratio (256/224).
    Other weights resize straight to the crop so no border is cut off: the synthetic
    objects can sit at the edges.
    """
    tv_weights = weights.torchvision_weights if weights is not None else None
    if tv_weights is None:
        size = spec.default_input_size if input_size is None else input_size
        return Preprocessing(resize_size=size, crop_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    transforms = tv_weights.transforms()
    crop_size, resize_size = transforms.crop_size[0], transforms.resize_size[0]
    if input_size is not None and input_size != crop_size:
        resize_size = round(resize_size * input_size / crop_size)
        crop_size = input_size
    return Preprocessing(
        resize_size=resize_size,
        crop_size=crop_size,
        mean=tuple(transforms.mean),
        std=tuple(transforms.std),
        interpolation=transforms.interpolation.value,
        antialias=bool(transforms.antialias),
    )


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    with torch.random.fork_rng(devices=[]):
        # Only the CPU generator feeds initialisation; torch.manual_seed would also queue a
        # CUDA seeding that outlives this block.
        torch.default_generator.manual_seed(seed)
        yield


def build_backbone(
    name: str,
    *,
    weights: LoadedWeights | None,
    seed: int = 0,
    spatial_map: bool = False,
    input_size: int | None = None,
    device: str | torch.device = "cpu",
) -> FeatureExtractor:
    """Backbone `name` as an eval-mode FeatureExtractor on `device`.

    `weights` None means random init from `seed` (same seed, same numbers; the global RNG
    is untouched). `input_size` None takes the weights' crop size, else the spec's default.
    """
    spec = backbone_spec(name)
    if weights is not None and weights.backbone != name:
        raise ValueError(f"weights {weights.source} were loaded for {weights.backbone}, not {name}")
    preprocessing = preprocessing_for(spec, weights, input_size)
    spec.check_input_size(preprocessing.crop_size)
    target = resolve_device(device)
    if weights is None:
        with _seeded(seed):
            model = headless_model(spec)
        digest = f"init-seed:{seed}"
    else:
        # Skip the random init that the weights would overwrite (seconds for vgg16).
        with torch.device("meta"):
            model = headless_model(spec)
        state = {
            key: value.to(torch.float32, copy=True) if value.is_floating_point() else value.clone()
            for key, value in weights.state_dict.items()
        }
        model.load_state_dict(state, strict=True, assign=True)
        left_on_meta = [
            n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta
        ]
        assert not left_on_meta, f"{name}: weights left {left_on_meta[:3]} unset"
        digest = weights.digest
    model = model.eval().to(target)
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    logger.info("built %s (%s) at %d px on %s", name, digest, preprocessing.crop_size, target)
    extractor = FeatureExtractor(
        name=name,
        model=model,
        preprocessing=preprocessing,
        spatial_map=spatial_map,
        weights_digest=digest,
    )
    return extractor.eval()


@contextlib.contextmanager
def _autocast(device: torch.device, precision: str) -> Iterator[None]:
    if precision == "fp32":
        yield
        return
    dtype = _AUTOCAST_DTYPES[precision]
    with torch.autocast(device.type, dtype=dtype):
        # Some torch builds warn and switch autocast off for a dtype they cannot do on a
        # device; that must not pass as a silent fp32 run.
        if not torch.is_autocast_enabled(device.type) or (
            torch.get_autocast_dtype(device.type) != dtype
        ):
            raise ValueError(
                f"precision {precision} is not supported on {device.type} "
                f"by torch {torch.__version__}; use fp32 or bf16"
            )
        yield


def extract(
    extractor: FeatureExtractor,
    batch: Tensor | np.ndarray,
    *,
    precision: Precision = "fp32",
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Features of preprocessed frames `batch` (B, 3, S, S) as float32 numpy arrays.

    Returns (pooled (B, D), spatial (B, C, h, w) or None). `device` must be where the
    extractor was built (`build_backbone(..., device=)`); a GPU asked for but absent is an
    error. bf16/fp16 run under autocast, on CUDA and on CPU.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    target = resolve_device(device)
    if extractor.training:
        raise ValueError(f"extractor {extractor.name} is in training mode; call .eval() first")
    on = next(extractor.model.parameters()).device
    if on != target:
        raise ValueError(
            f"extractor {extractor.name} is on {on}, not on device {target}; "
            f"build it with build_backbone(..., device={str(target)!r})"
        )
    x = torch.as_tensor(batch)
    if not x.is_floating_point():
        raise ValueError(f"batch must be float (preprocessed frames), got {x.dtype}")
    layout = torch.channels_last if extractor.spec.channels_last else torch.contiguous_format
    with torch.inference_mode(), _autocast(target, precision):
        x = x.to(target, dtype=torch.float32, memory_format=layout)
        pooled, spatial = extractor(x)
    pooled_array = pooled.float().cpu().numpy()
    if spatial is None:
        return pooled_array, None
    return pooled_array, spatial.float().contiguous().cpu().numpy()  # (B, C, h, w), NCHW order
