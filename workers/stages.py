"""The two stages of a stage-1 run, as callables over column batches (Ray Data's UDF shape).

`DecodeStage` turns a video into small uint8 frames (and flow images) on a
CPU; `EmbedStage` runs the CNN over the frames of many videos at once and
commits their rows. Neither imports Ray: the driver wires them into Ray Data,
and tests call them directly.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hybrid_models.backbones import build_backbone, extract
from hybrid_models.weights import load_weights_bytes
from schemas import FeatureSetSpec
from schemas import columns as c
from workers import store
from workers.decoding import Clip, DecodeFailure, IsolatedDecoder
from workers.flow import FlowConfig, farneback_flows, flow_to_image
from workers.preprocess import normalize, resize_and_crop

log = logging.getLogger(__name__)

# Columns that travel from the decode stage to the embed stage.
OK = "ok"
RGB = "rgb_frames"
FLOW = "flow_frames"
DECODER = "decoder"
MAX_FRAMES_PER_CALL = 256  # frames per backbone call: bounds activation memory


@dataclass(frozen=True, kw_only=True)
class DecodeSettings:
    sampling: str
    decoder: str
    rotation: str
    resize_size: int
    input_size: int
    with_flow: bool
    timeout_s: float
    flow: FlowConfig | None = None


def clip_to_row(clip: Clip, settings: DecodeSettings) -> dict[str, Any]:
    """A decoded clip as the uint8 arrays the embed stage needs: (N, 3, S, S) per stream."""
    rgb = resize_and_crop(clip.frames, resize=settings.resize_size, crop=settings.input_size)
    row = {
        OK: True,
        RGB: rgb.numpy(),
        c.FRAME_INDEX: np.asarray(clip.frame_indices, np.int32),
        c.TIMESTAMP_S: np.asarray(clip.timestamps_s, np.float64),
        DECODER: clip.decoder,
    }
    if settings.with_flow:
        # Flow is computed on the frames as the backbone sees them: cheaper than at
        # full resolution and aligned pixel for pixel with the RGB stream.
        successors = resize_and_crop(
            clip.successor_frames, resize=settings.resize_size, crop=settings.input_size
        )
        hwc = lambda t: t.permute(0, 2, 3, 1).contiguous().numpy()  # noqa: E731  (N, S, S, 3)
        flows = farneback_flows(hwc(rgb), hwc(successors), settings.flow)
        images = flow_to_image(flows, bound=settings.flow.bound)  # (N, S, S, 3)
        row[FLOW] = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return row


def failure_row(failure: DecodeFailure) -> dict[str, Any]:
    return {
        OK: False,
        c.STAGE: failure.stage,
        c.ERROR_TYPE: failure.error_type,
        c.MESSAGE: failure.message,
        c.ATTEMPTS: failure.attempts,
    }


class DecodeStage:
    """Decodes one video per call in an isolated child process; a bad video becomes a failure row."""

    def __init__(self, settings: DecodeSettings):
        self.settings = settings
        self.decoder = IsolatedDecoder(timeout_s=settings.timeout_s)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = []
        for video_id, uri in zip(batch[c.VIDEO_ID], batch[c.URI], strict=True):
            outcome = self.decoder.decode(
                str(uri),
                self.settings.sampling,
                decoder=self.settings.decoder,
                rotation=self.settings.rotation,
                with_successors=self.settings.with_flow,
            )
            row = (
                clip_to_row(outcome, self.settings)
                if isinstance(outcome, Clip)
                else failure_row(outcome)
            )
            rows.append({c.VIDEO_ID: str(video_id), c.URI: str(uri), **row})
        return _columns(rows)

    def __del__(self) -> None:
        self.decoder.close()


def _columns(rows: list[dict[str, Any]]) -> dict[str, list]:
    """Row dicts as columns; fields a row lacks are filled so every column has one value per row."""
    empty = np.zeros((0, 3, 1, 1), np.uint8)
    defaults = {
        RGB: empty,
        FLOW: empty,
        c.FRAME_INDEX: np.zeros(0, np.int32),
        c.TIMESTAMP_S: np.zeros(0, np.float64),
        DECODER: "",
        c.STAGE: "",
        c.ERROR_TYPE: "",
        c.MESSAGE: "",
        c.ATTEMPTS: 0,
    }
    names = [c.VIDEO_ID, c.URI, OK, *defaults]
    return {name: [row.get(name, defaults.get(name)) for row in rows] for name in names}


@dataclass(frozen=True, kw_only=True)
class EmbedSettings:
    feature_set_uri: str
    spec: dict  # FeatureSetSpec.to_json()
    lineage: dict  # the feature set's record, stamped into every part
    seed: int
    device: str
    num_threads: int


class EmbedStage:
    """Runs the backbone over the frames of a batch of videos and commits their rows as one part."""

    def __init__(self, settings: EmbedSettings, weights: bytes | None):
        self.settings = settings
        self.spec = FeatureSetSpec.from_json(settings.spec)
        if settings.device == "cpu":
            torch.set_num_threads(settings.num_threads)
        loaded = (
            None
            if weights is None
            else load_weights_bytes(self.spec.backbone, weights, "weights.safetensors")
        )
        self.extractor = build_backbone(
            self.spec.backbone,
            weights=loaded,
            seed=settings.seed,
            spatial_map=self.spec.spatial_map,
            input_size=self.spec.input_size,
            device=settings.device,
        )
        log.info("embed stage ready in process %d on %s", os.getpid(), settings.device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        video_ids = [str(v) for v in batch[c.VIDEO_ID]]
        ok = [bool(v) for v in batch[OK]]
        good = [i for i, flag in enumerate(ok) if flag]
        videos: list[store.VideoFeatures] = []
        for stream, column in (("rgb", RGB), ("flow", FLOW)):
            if stream in self.spec.streams and good:
                videos += self._embed_stream(stream, [batch[column][i] for i in good], batch, good)
        # Order rows by video so a part reads back grouped.
        videos.sort(key=lambda v: (v.video_id, v.stream))
        stamp = self.settings.lineage["created_at"]
        if good:
            table = store.features_table(
                videos,
                feature_dim=self.extractor.feature_dim,
                dtype=self.spec.dtype,
                spatial_shape=self.extractor.spatial_shape,
                event_timestamp=stamp,
            )
            store.commit_part(
                self.settings.feature_set_uri,
                table,
                [video_ids[i] for i in good],
                lineage=self.settings.lineage,
            )
        failed = [i for i, flag in enumerate(ok) if not flag]
        if failed:
            errors = [
                {
                    c.VIDEO_ID: video_ids[i],
                    c.URI: str(batch[c.URI][i]),
                    c.STAGE: str(batch[c.STAGE][i]),
                    c.ERROR_TYPE: str(batch[c.ERROR_TYPE][i]),
                    c.MESSAGE: str(batch[c.MESSAGE][i]),
                    c.ATTEMPTS: int(batch[c.ATTEMPTS][i]),
                }
                for i in failed
            ]
            store.commit_part(
                self.settings.feature_set_uri,
                store.error_table(errors, event_timestamp=stamp),
                [video_ids[i] for i in failed],
                lineage=self.settings.lineage,
                subdir=store.ERRORS_DIR,
            )
        return {
            c.VIDEO_ID: video_ids,
            OK: ok,
            "num_frames": [len(batch[c.FRAME_INDEX][i]) if ok[i] else 0 for i in range(len(ok))],
            c.ERROR_TYPE: [str(batch[c.ERROR_TYPE][i]) for i in range(len(ok))],
            c.MESSAGE: [str(batch[c.MESSAGE][i]) for i in range(len(ok))],
        }

    def _embed_stream(self, stream, frame_arrays, batch, good) -> list[store.VideoFeatures]:
        counts = [len(a) for a in frame_arrays]
        frames = torch.from_numpy(np.concatenate(frame_arrays))  # (sum N, 3, S, S) uint8
        pooled_parts, spatial_parts = [], []
        for start in range(0, len(frames), MAX_FRAMES_PER_CALL):
            # Mean and std from the spec: the driver resolved them from the weights' own transforms.
            chunk = normalize(
                frames[start : start + MAX_FRAMES_PER_CALL], mean=self.spec.mean, std=self.spec.std
            )
            pooled, spatial = extract(
                self.extractor, chunk, precision=self.spec.precision, device=self.settings.device
            )
            pooled_parts.append(pooled)
            if spatial is not None:
                spatial_parts.append(spatial)
        pooled = np.concatenate(pooled_parts)
        spatial = np.concatenate(spatial_parts) if spatial_parts else None
        offsets = np.cumsum([0, *counts])
        return [
            store.VideoFeatures(
                video_id=str(batch[c.VIDEO_ID][i]),
                stream=stream,
                decoder=str(batch[DECODER][i]),
                frame_index=np.asarray(batch[c.FRAME_INDEX][i], np.int32),
                timestamp_s=np.asarray(batch[c.TIMESTAMP_S][i], np.float64),
                feature=pooled[offsets[k] : offsets[k + 1]],
                spatial_map=None if spatial is None else spatial[offsets[k] : offsets[k + 1]],
            )
            for k, i in enumerate(good)
        ]
