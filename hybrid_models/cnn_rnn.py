"""End-to-end CNN→RNN classifier on raw frames: one frame encoder shared across frames feeds a
`TemporalClassifier`. Freezing the encoder gives the multi-stage recipe (train the temporal
part on fixed features, then unfreeze and fine-tune everything at a lower rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hybrid_models.sequences import check_mask
from hybrid_models.temporal_classifier import (
    ClassifierOutput,
    TemporalClassifier,
    TemporalClassifierConfig,
)


class CNNRNNClassifier(nn.Module):
    """forward(frames (B, T, 3, H, W), mask (B, T)) -> the temporal classifier's output.

    `frame_encoder` is any module mapping (N, 3, H, W) -> (N, D) with D the temporal
    classifier's feature_dim. It runs on the real frames only: padding frames would cost time
    and, in training mode, pollute BatchNorm's batch statistics.
    """

    def __init__(self, frame_encoder: nn.Module, temporal: TemporalClassifier):
        super().__init__()
        self.frame_encoder = frame_encoder
        self.temporal = temporal
        self._frame_encoder_frozen = False

    @property
    def frame_encoder_frozen(self) -> bool:
        return self._frame_encoder_frozen

    def freeze_frame_encoder(self) -> None:
        """Stop training the frame encoder: no gradients, and BatchNorm keeps its running stats."""
        for parameter in self.frame_encoder.parameters():
            parameter.requires_grad_(False)
        self._frame_encoder_frozen = True
        self.frame_encoder.eval()

    def unfreeze_frame_encoder(self) -> None:
        """Train the frame encoder again (its mode follows the model's from here on)."""
        for parameter in self.frame_encoder.parameters():
            parameter.requires_grad_(True)
        self._frame_encoder_frozen = False
        self.frame_encoder.train(self.training)

    def train(self, mode: bool = True) -> CNNRNNClassifier:
        super().train(mode)
        if self._frame_encoder_frozen:
            # A training loop calls model.train() every epoch; a frozen encoder's BatchNorm
            # must still use (and not update) its running statistics.
            self.frame_encoder.eval()
        return self

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> ClassifierOutput:
        if frames.dim() != 5:
            raise ValueError(f"frames must be (B, T, 3, H, W), got {tuple(frames.shape)}")
        check_mask(frames, mask)
        encoded = self.frame_encoder(frames[mask])  # (N, D), N = real frames in the batch
        if encoded.dim() != 2:
            raise ValueError(f"frame_encoder must return (N, D), got {tuple(encoded.shape)}")
        features = encoded.new_zeros(*mask.shape, encoded.shape[1])  # (B, T, D)
        features[mask] = encoded
        return self.temporal(features, mask)


@dataclass(frozen=True, kw_only=True)
class CNNRNNConfig:
    temporal: TemporalClassifierConfig  # its feature_dim must equal conv_channels[-1]
    conv_channels: tuple[int, ...] = (16, 32)
    in_channels: int = 3

    def __post_init__(self) -> None:
        if not self.conv_channels or any(c <= 0 for c in self.conv_channels):
            raise ValueError(f"conv_channels {self.conv_channels} must be non-empty and all > 0")
        if self.in_channels <= 0:
            raise ValueError(f"in_channels ({self.in_channels}) must be > 0")
        if self.temporal.feature_dim != self.conv_channels[-1]:
            raise ValueError(
                f"temporal.feature_dim ({self.temporal.feature_dim}) must equal "
                f"conv_channels[-1] ({self.conv_channels[-1]})"
            )

    @property
    def multi_label(self) -> bool:
        return self.temporal.multi_label


class ConvFrameEncoder(nn.Sequential):
    """(N, C, H, W) -> (N, conv_channels[-1]): [conv3×3 → BatchNorm → ReLU → max-pool 2]×k → mean.

    The minimal frame encoder the "cnn_rnn" model-dict entry is built with, so that entry can be
    rebuilt from its config alone; any other (N, 3, H, W) -> (N, D) module works as well.
    """

    def __init__(self, in_channels: int, conv_channels: tuple[int, ...]):
        layers: list[nn.Module] = []
        for out_channels in conv_channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            in_channels = out_channels
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        super().__init__(*layers)


def build_cnn_rnn(config: CNNRNNConfig) -> CNNRNNClassifier:
    """A `CNNRNNClassifier` with a `ConvFrameEncoder`, as the model dict builds it."""
    return CNNRNNClassifier(
        ConvFrameEncoder(config.in_channels, config.conv_channels),
        TemporalClassifier(config.temporal),
    )
