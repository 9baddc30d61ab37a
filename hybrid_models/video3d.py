"""3D-CNN baseline for the 3D-vs-CNN-RNN comparison: torchvision's video ResNets (Tran et al.
2018, https://arxiv.org/abs/1711.11248) trained from scratch on small raw clips, with a new head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import video as video_models

from hybrid_models.sequences import check_mask, lengths_of
from hybrid_models.temporal_classifier import ClassifierOutput

# The architectures, explicitly: name -> torchvision builder (always called with weights=None).
ARCHITECTURES: dict[str, Callable[..., video_models.VideoResNet]] = {
    "r3d_18": video_models.r3d_18,
    "mc3_18": video_models.mc3_18,
    "r2plus1d_18": video_models.r2plus1d_18,
}
_FEATURE_DIM = 512  # width of the last stage of every video ResNet-18


@dataclass(frozen=True, kw_only=True)
class Video3DConfig:
    num_classes: int
    arch: str = "r3d_18"
    num_frames: int = 8  # every clip is resampled to this many frames
    dropout: float = 0.0
    multi_label: bool = False

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch {self.arch!r} must be one of {', '.join(ARCHITECTURES)}")
        if self.num_classes <= 0:
            raise ValueError(f"num_classes ({self.num_classes}) must be > 0")
        if self.num_frames <= 0:
            raise ValueError(f"num_frames ({self.num_frames}) must be > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout ({self.dropout}) must be in [0, 1)")


def resample_indices(mask: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B, T) mask -> (B, K) frame indices spread uniformly over each video's real frames.

    Index k is ⌊(2k+1)·L / 2K⌋, the frame at the centre of the k-th of K equal slices; short
    videos repeat frames. Depends only on L, so padding cannot change a clip.
    """
    lengths = lengths_of(mask).unsqueeze(1)  # (B, 1)
    slices = torch.arange(num_frames, device=mask.device).unsqueeze(0)  # (1, K)
    return (2 * slices + 1) * lengths // (2 * num_frames)  # (B, K)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements in `model` (only those with requires_grad if asked)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class Video3DClassifier(nn.Module):
    """forward(clips (B, 3, T, H, W), mask (B, T)) -> `ClassifierOutput` (attention None).

    Clips are resampled to `num_frames` real frames first, so videos of any length share a
    batch and padding never reaches the convolutions. Weights are initialised as torchvision
    does (Kaiming-normal convolutions, unit BatchNorm, N(0, 0.01) head) but from `generator`
    when one is given, leaving the global RNG untouched.
    """

    def __init__(self, config: Video3DConfig, *, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        # Built on the meta device: torchvision's own random init would draw from the global
        # RNG (twice, for 33M weights); we initialise once below instead.
        with torch.device("meta"):
            self.backbone = ARCHITECTURES[config.arch](weights=None)
            self.backbone.fc = nn.Identity()
            self.head = nn.Sequential(
                nn.Dropout(config.dropout), nn.Linear(_FEATURE_DIM, config.num_classes)
            )
        self.to_empty(device="cpu")
        self._initialise(generator)

    @torch.no_grad()
    def _initialise(self, generator: torch.Generator | None) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm3d):
                module.reset_parameters()  # weight 1, bias 0, running stats reset
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0.0, 0.01, generator=generator)
                module.bias.zero_()

    def forward(self, clips: torch.Tensor, mask: torch.Tensor) -> ClassifierOutput:
        if clips.dim() != 5 or clips.shape[1] != 3:
            raise ValueError(f"clips must be (B, 3, T, H, W), got {tuple(clips.shape)}")
        check_mask(clips.transpose(1, 2), mask)
        b, channels, _, height, width = clips.shape
        index = resample_indices(mask, self.config.num_frames)  # (B, K)
        index = index.view(b, 1, -1, 1, 1).expand(b, channels, -1, height, width)
        resampled = clips.gather(2, index)  # (B, 3, K, H, W)
        return ClassifierOutput(self.head(self.backbone(resampled)), None)
