"""Training data: a feature set joined to its manifest, one record per video, grouped by split.

Videos of the manifest without committed features (failed or not extracted)
are left out and counted, never silently dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from schemas import SPLITS, read_manifest
from schemas import columns as c
from workers import store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingVideo:
    """One video's labels and features; arrays are in frame order."""

    video_id: str
    split: str
    label: str | None
    labels: tuple[str, ...]
    captions: tuple[str, ...]
    questions: tuple[dict, ...]  # {"question", "answer", "question_type"}
    frame_index: np.ndarray  # (T,)
    features: np.ndarray  # (T, D) of the first stream (rgb when present)
    flow: np.ndarray | None = field(default=None)  # (T, D) when the feature set has a flow stream
    spatial_map: np.ndarray | None = field(default=None)  # (T, C, H, W) when asked for


@dataclass(frozen=True)
class TrainingData:
    feature_set_uri: str
    feature_set: dict  # the feature set's lineage record
    videos: tuple[TrainingVideo, ...]
    num_missing: int  # manifest videos without committed features

    def split(self, name: str) -> list[TrainingVideo]:
        if name not in SPLITS:
            raise ValueError(f"split {name!r} is not one of {', '.join(SPLITS)}")
        return [v for v in self.videos if v.split == name]

    def class_names(self) -> list[str]:
        """Sorted single labels of the training split."""
        return sorted({v.label for v in self.split("train") if v.label is not None})

    def multi_label_names(self) -> list[str]:
        return sorted({label for v in self.split("train") for label in v.labels})


def load_training_data(
    features_uri: str, manifest_uri: str, *, spatial: bool = False, splits: Sequence[str] = SPLITS
) -> TrainingData:
    """The manifest's videos of `splits` with their features; raises FileNotFoundError/ValueError."""
    record = store.read_feature_set_record(features_uri)
    streams = record["spec"]["streams"]
    if spatial and not record["spec"]["spatial_map"]:
        raise ValueError(
            f"feature set {features_uri} has no spatial maps (extract with --spatial-map)"
        )
    manifest = read_manifest(manifest_uri).to_pylist()
    wanted = [row for row in manifest if row[c.SPLIT] in splits]
    ids = [row[c.VIDEO_ID] for row in wanted]
    first = store.load_video_features(
        features_uri, stream=streams[0], video_ids=ids, spatial=spatial
    )
    flow = (
        store.load_video_features(features_uri, stream="flow", video_ids=ids)
        if "flow" in streams and streams[0] != "flow"
        else {}
    )
    videos = []
    for row in wanted:
        features = first.get(row[c.VIDEO_ID])
        if features is None:
            continue
        flow_features = flow.get(row[c.VIDEO_ID])
        if flow_features is not None and not np.array_equal(
            flow_features.frame_index, features.frame_index
        ):
            raise ValueError(
                f"video {row[c.VIDEO_ID]!r}: rgb and flow rows are for different frames"
            )
        videos.append(
            TrainingVideo(
                video_id=row[c.VIDEO_ID],
                split=row[c.SPLIT],
                label=row[c.LABEL],
                labels=tuple(row[c.LABELS] or ()),
                captions=tuple(row[c.CAPTIONS] or ()),
                questions=tuple(row[c.QUESTIONS] or ()),
                frame_index=features.frame_index,
                features=np.asarray(features.feature, np.float32),
                flow=None
                if flow_features is None
                else np.asarray(flow_features.feature, np.float32),
                spatial_map=None
                if features.spatial_map is None
                else np.asarray(features.spatial_map, np.float32),
            )
        )
    missing = len(wanted) - len(videos)
    if missing:
        log.warning(
            "%d of %d manifest videos have no features in %s", missing, len(wanted), features_uri
        )
    return TrainingData(
        feature_set_uri=features_uri, feature_set=record, videos=tuple(videos), num_missing=missing
    )
