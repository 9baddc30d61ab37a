"""Render a `Scene` to RGB frames: anti-aliased shapes alpha-blended on a noisy background.

Pure and deterministic: the frames depend only on the scene, so a reversed
scene renders to exactly the reversed frames.
"""

from __future__ import annotations

import math

import numpy as np

from pipelines.datasets.scene import COLOURS, NOISE_STD, ObjectState, Scene

_INV_SQRT5 = 1 / math.sqrt(5)


def render_frames(scene: Scene) -> np.ndarray:
    """The scene's frames, (T, H, W, 3) uint8 RGB."""
    return np.stack([render_frame(scene, t) for t in range(scene.num_frames)])


def render_frame(scene: Scene, frame_index: int) -> np.ndarray:
    """Frame `frame_index` of the scene, (H, W, 3) uint8 RGB."""
    centres = np.arange(scene.size, dtype=np.float64) + 0.5  # pixel centres
    px, py = np.meshgrid(centres, centres)  # (H, W) each
    canvas = np.empty((scene.size, scene.size, 3), dtype=np.float64)
    canvas[:] = scene.background
    for obj in scene.objects:
        state = obj.state_at(frame_index, scene.num_frames)
        alpha = coverage(obj.shape, state, px, py) * state.opacity  # (H, W)
        colour = np.asarray(COLOURS[obj.colour], dtype=np.float64)
        canvas = canvas * (1 - alpha[..., None]) + colour * alpha[..., None]
    noise_rng = np.random.default_rng(scene.noise_seeds[frame_index])
    canvas = canvas + noise_rng.normal(0.0, NOISE_STD, size=canvas.shape)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def coverage(shape: str, state: ObjectState, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Fraction of each pixel the shape covers, from a signed distance (1 px ramp at the edge)."""
    dx, dy = px - state.x, py - state.y
    half = state.size / 2
    if shape == "circle":
        distance = np.hypot(dx, dy) - half
    elif shape == "square":
        distance = np.maximum(np.abs(dx), np.abs(dy)) - half
    elif shape == "triangle":
        # Apex at the top centre, base along the bottom of the bounding square. Inside
        # a convex polygon the largest edge distance is the exact signed distance.
        base = dy - half
        left = (-2 * dx - (dy + half)) * _INV_SQRT5
        right = (2 * dx - (dy + half)) * _INV_SQRT5
        distance = np.maximum(base, np.maximum(left, right))
    else:
        raise ValueError(f"shape {shape!r} is not one of circle, square, triangle")
    return np.clip(0.5 - distance, 0.0, 1.0)
