"""The sampled frames of a few reported videos, decoded for the attention-over-frames figure.

A video whose frames cannot be decoded, or not as many as it has attention weights, is
shown with its weights alone: the figure is an aid, so its failure is logged, not fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from pipelines.evaluation.joins import URI_KEY

logger = logging.getLogger(__name__)


def frame_requests(
    sections: Mapping[str, dict[str, Any] | None], *, max_videos: int
) -> dict[str, tuple[str, list[int]]]:
    """video id -> (uri, frame indices) for the first `max_videos` videos shown with attention.

    A video shown twice (a caption and an answer) must show the same frames both times;
    one whose records disagree is left out rather than drawn wrongly.
    """
    records = [
        sample
        for name, key in (
            ("action", "attention_examples"),
            ("caption", "samples"),
            ("vqa", "samples"),
        )
        for sample in (sections.get(name) or {}).get(key, [])
        if sample.get("attention") is not None and sample.get(URI_KEY)
    ]
    wanted: dict[str, tuple[str, list[int]]] = {}
    conflicting: set[str] = set()
    for record in records:
        video_id, indices = record["video_id"], [int(i) for i in record["frame_indices"]]
        if video_id in wanted and wanted[video_id][1] != indices:
            conflicting.add(video_id)
        wanted.setdefault(video_id, (record[URI_KEY], indices))
    chosen = [v for v in wanted if v not in conflicting][:max_videos]
    return {video_id: wanted[video_id] for video_id in chosen}


def decode_requested(
    requests: Mapping[str, tuple[str, list[int]]], *, decoder: str = "auto", rotation: str = "apply"
) -> dict[str, np.ndarray]:
    """video id -> (T, H, W, 3) uint8 frames, in the order of its frame indices."""
    from workers.decoding import DecodeFailure, InProcessDecoder

    frames = {}
    with InProcessDecoder() as decoding:
        for video_id, (uri, indices) in requests.items():
            distinct = sorted(set(indices))
            try:
                clip = decoding.decode(uri, distinct, decoder=decoder, rotation=rotation)
            except (OSError, ValueError) as error:
                logger.warning("no frames for video %s (%s): %s", video_id, uri, error)
                continue
            if isinstance(clip, DecodeFailure):
                logger.warning("no frames for video %s (%s): %s", video_id, uri, clip.message)
                continue
            row_of = {int(index): row for row, index in enumerate(clip.frame_indices)}
            if any(index not in row_of for index in indices):
                logger.warning(
                    "video %s (%s): %d of its %d frames decoded; showing weights alone",
                    video_id,
                    uri,
                    len(row_of),
                    len(distinct),
                )
                continue
            frames[video_id] = clip.frames[[row_of[index] for index in indices]]  # (T, H, W, 3)
    return frames
