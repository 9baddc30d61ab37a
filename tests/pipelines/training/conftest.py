"""Tiny feature sets written without Ray, and the vidpipe command with train/ablate registered."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines import cli
from pipelines.commands import ablate, train
from schemas import FeatureSetSpec, manifest_table, write_manifest
from workers import store

CLASSES = ("fall", "flat", "rise")
FEATURE_DIM = 4
SPATIAL_SHAPE = (2, 2, 2)
SPLIT_SIZES = {"train": 8, "val": 3, "test": 3}  # videos per class


def _video(kind: str, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T, D) features whose class shows only in their order: dim 0 ramps up, down or stays."""
    ramp = np.linspace(0.0, 1.0, num_frames)
    values = {"rise": ramp, "fall": ramp[::-1], "flat": np.full(num_frames, 0.5)}[kind]
    features = rng.normal(0.0, 0.05, (num_frames, FEATURE_DIM))
    features[:, 0] += values
    features[:, 1] += rng.uniform(0, 1)  # a nuisance constant per video
    return features.astype(np.float32)


@pytest.fixture(scope="session")
def tiny_features(tmp_path_factory):
    """(feature set uri, manifest path): 42 videos of 3–6 frames, rgb and flow, spatial maps."""
    root = tmp_path_factory.mktemp("tiny-store")
    spec = FeatureSetSpec(
        backbone="small_cnn", weights="none", weights_digest="init-seed:0", input_size=32,
        resize_size=32, mean=(0.5,) * 3, std=(0.25,) * 3, sampling="uniform:6",
        streams=("rgb", "flow"), flow="farneback", decoder="auto", rotation="apply",
        dtype="float32", precision="fp32", spatial_map=True,
    )  # fmt: skip
    uri = store.feature_set_uri(str(root), spec.feature_set_id)
    record = store.create_or_open_feature_set(
        uri, spec, feature_dim=FEATURE_DIM, spatial_shape=SPATIAL_SHAPE
    )
    rng = np.random.default_rng(0)
    rows, videos = [], []
    for split, per_class in SPLIT_SIZES.items():
        for kind in CLASSES:
            for number in range(per_class):
                video_id = f"{split}-{kind}-{number}"
                num_frames = int(rng.integers(3, 7))
                rgb = _video(kind, num_frames, rng)
                flow = np.diff(rgb, axis=0, prepend=rgb[:1]) * 5  # motion: the change per frame
                for stream, feature in (("rgb", rgb), ("flow", flow)):
                    maps = np.repeat(feature[:, :1], 8, axis=1).reshape(num_frames, *SPATIAL_SHAPE)
                    videos.append(
                        store.VideoFeatures(
                            video_id=video_id,
                            stream=stream,
                            decoder="pyav",
                            frame_index=np.arange(num_frames, dtype=np.int32),
                            timestamp_s=np.arange(num_frames) / 12.0,
                            feature=feature,
                            spatial_map=maps.astype(np.float32),
                        )
                    )
                length = "long" if num_frames > 4 else "short"
                rows.append(
                    {
                        "video_id": video_id,
                        "uri": f"{video_id}.mp4",
                        "split": split,
                        "label": kind,
                        "labels": [kind, length],  # for multi-label heads
                    }
                )
    table = store.features_table(
        videos,
        feature_dim=FEATURE_DIM,
        dtype="float32",
        spatial_shape=SPATIAL_SHAPE,
        event_timestamp=record["created_at"],
    )
    store.commit_part(uri, table, [r["video_id"] for r in rows], lineage=record)
    manifest = root / "manifest.parquet"
    write_manifest(manifest_table(rows), str(manifest))
    return uri, str(manifest)


@pytest.fixture
def vidpipe(monkeypatch):
    """`vidpipe` as the command line runs it, with train and ablate registered; returns its exit code."""
    missing = [m for m in (train, ablate) if m not in cli.COMMAND_MODULES]  # once registered, as is
    monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, *missing])

    def run(*argv: str) -> int:
        try:
            return cli.main(list(argv))
        except SystemExit as exit_:  # argparse's own errors
            return int(exit_.code)

    return run
