"""Optical flow for the two-stream model's motion stream: Farnebäck flow and its image encoding.

Flow is encoded as an image the way temporal segment networks feed it to an
ImageNet CNN (https://arxiv.org/abs/1608.00859): dx and dy each mapped
linearly from [-bound, bound] to [0, 255], plus the magnitude, so a network
that pools globally still sees the dominant direction of motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Pixels of displacement per frame that saturate the encoded image; TSN uses 20.
DEFAULT_BOUND = 20.0


@dataclass(frozen=True, kw_only=True)
class FlowConfig:
    """Parameters of `cv2.calcOpticalFlowFarneback` and of the image encoding; `describe()` goes into lineage.

    Defaults are OpenCV's tutorial values, which suit small frames: a 3-level
    pyramid halving each level, 15-pixel averaging windows, 3 iterations per
    level, and a degree-5 polynomial expansion with sigma 1.2.
    """

    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2
    bound: float = (
        DEFAULT_BOUND  # pixels of displacement that map to 0 and 255 in the encoded image
    )

    def __post_init__(self) -> None:
        if not 0 < self.pyr_scale < 1:
            raise ValueError(f"pyr_scale ({self.pyr_scale}) must be in (0, 1)")
        if self.levels < 1:
            raise ValueError(f"levels ({self.levels}) must be >= 1")
        if self.winsize < 3:
            raise ValueError(f"winsize ({self.winsize}) must be >= 3")
        if self.iterations < 1:
            raise ValueError(f"iterations ({self.iterations}) must be >= 1")
        if self.poly_n not in (5, 7):
            raise ValueError(f"poly_n ({self.poly_n}) must be 5 or 7")
        if not self.poly_sigma > 0:
            raise ValueError(f"poly_sigma ({self.poly_sigma}) must be > 0")
        if not self.bound > 0:
            raise ValueError(f"bound ({self.bound}) must be > 0")

    def describe(self) -> str:
        """The method and every parameter, e.g. for `FeatureSetSpec.flow`."""
        return (
            f"farneback(pyr_scale={self.pyr_scale},levels={self.levels},winsize={self.winsize},"
            f"iterations={self.iterations},poly_n={self.poly_n},poly_sigma={self.poly_sigma})"
            f"+tsn_image(bound={self.bound})"
        )


def farneback_flow(
    frame_a: np.ndarray, frame_b: np.ndarray, config: FlowConfig | None = None
) -> np.ndarray:
    """Dense flow (H, W, 2) float32 from RGB uint8 `frame_a` to `frame_b`: where each pixel of a moved, in pixels (dx, dy)."""
    config = config or FlowConfig()
    for name, frame in (("frame_a", frame_a), ("frame_b", frame_b)):
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"{name} must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    if frame_a.shape != frame_b.shape:
        raise ValueError(f"frame_a {frame_a.shape} and frame_b {frame_b.shape} differ in shape")
    gray_a = cv2.cvtColor(np.ascontiguousarray(frame_a), cv2.COLOR_RGB2GRAY)
    gray_b = cv2.cvtColor(np.ascontiguousarray(frame_b), cv2.COLOR_RGB2GRAY)
    flow = cv2.calcOpticalFlowFarneback(
        gray_a,
        gray_b,
        None,
        config.pyr_scale,
        config.levels,
        config.winsize,
        config.iterations,
        config.poly_n,
        config.poly_sigma,
        0,
    )
    return flow.astype(np.float32, copy=False)


def farneback_flows(
    frames: np.ndarray, successors: np.ndarray, config: FlowConfig | None = None
) -> np.ndarray:
    """Flow (N, H, W, 2) from each of `frames` (N, H, W, 3) to the same row of `successors`."""
    if frames.shape != successors.shape:
        raise ValueError(f"frames {frames.shape} and successors {successors.shape} differ in shape")
    if frames.ndim != 4:
        raise ValueError(f"frames must be (N, H, W, 3), got {frames.shape}")
    height, width = frames.shape[1:3]
    out = np.empty((len(frames), height, width, 2), dtype=np.float32)
    for i in range(len(frames)):  # OpenCV computes one pair at a time
        out[i] = farneback_flow(frames[i], successors[i], config)
    return out


def flow_to_image(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """(..., H, W, 3) uint8: dx and dy mapped from [-bound, bound] to [0, 255] (zero at 128), magnitude from [0, bound].

    Values beyond `bound` saturate. Works on one flow (H, W, 2) or a batch.
    """
    if flow.ndim < 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be (..., H, W, 2), got {flow.shape}")
    if not bound > 0:
        raise ValueError(f"bound ({bound}) must be > 0")
    flow = flow.astype(np.float32, copy=False)
    scaled = (flow + bound) * (255.0 / (2.0 * bound))  # (..., H, W, 2)
    magnitude = np.sqrt((flow**2).sum(axis=-1, keepdims=True)) * (255.0 / bound)  # (..., H, W, 1)
    image = np.concatenate([scaled, magnitude], axis=-1)
    return np.rint(np.clip(image, 0.0, 255.0)).astype(np.uint8)
