"""Frames to backbone input: resize the shorter side, centre-crop, scale to [0, 1], normalise.

Numerically the same as torchvision's `ImageClassification` preset transforms
(what pretrained weights were evaluated with), done on a whole batch at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocess_frames(
    frames: np.ndarray | torch.Tensor,
    *,
    resize: int,
    crop: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """(N, 3, crop, crop) float32 from uint8 RGB `frames` (N, H, W, 3), on the frames' device.

    `resize_and_crop`, then `normalize`: the two halves exist apart so that a
    job can shrink frames where they are decoded and ship uint8 to the model.
    """
    return normalize(resize_and_crop(frames, resize=resize, crop=crop), mean=mean, std=std)


def resize_and_crop(frames: np.ndarray | torch.Tensor, *, resize: int, crop: int) -> torch.Tensor:
    """(N, 3, crop, crop) uint8 from uint8 RGB `frames` (N, H, W, 3).

    The shorter side is resized to `resize` (bilinear, antialiased, rounded
    back to integers as torchvision does for uint8 images), then the centre
    `crop` x `crop` is kept. The whole batch goes through each step at once.
    """
    if resize <= 0:
        raise ValueError(f"resize ({resize}) must be > 0")
    if crop <= 0:
        raise ValueError(f"crop ({crop}) must be > 0")
    if crop > resize:
        raise ValueError(f"crop ({crop}) must be <= resize ({resize})")
    tensor = (
        torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    )
    if tensor.ndim != 4 or tensor.shape[-1] != 3 or tensor.dtype != torch.uint8:
        raise ValueError(
            f"frames must be (N, H, W, 3) uint8, got {tuple(tensor.shape)} {tensor.dtype}"
        )
    images = tensor.permute(0, 3, 1, 2)  # (N, 3, H, W)
    height, width = images.shape[-2:]
    size = _resized(height, width, resize)
    if size != (height, width):
        resized = F.interpolate(
            images.to(torch.float32),
            size=size,
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        # torchvision resizes uint8 images back to uint8; rounding here keeps its numbers.
        images = resized.round_().clamp_(0, 255).to(torch.uint8)
    top = int(round((size[0] - crop) / 2.0))
    left = int(round((size[1] - crop) / 2.0))
    return images[:, :, top : top + crop, left : left + crop].contiguous()  # (N, 3, crop, crop)


def normalize(
    images: torch.Tensor,
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """(N, 3, S, S) uint8 images scaled to [0, 1] and normalised per channel, as float32."""
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean {tuple(mean)} and std {tuple(std)} must have 3 values each")
    if not all(math.isfinite(s) and s > 0 for s in std):
        raise ValueError(f"std {tuple(std)} must be finite and > 0")
    if images.ndim != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
        raise ValueError(
            f"images must be (N, 3, S, S) uint8, got {tuple(images.shape)} {images.dtype}"
        )
    mean_t = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    return (images.to(torch.float32) / 255.0 - mean_t) / std_t


def _resized(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) with the shorter side at `short_side`, the longer truncated as torchvision does."""
    if width <= height:
        return int(short_side * height / width), short_side
    return short_side, int(short_side * width / height)
