"""Batches made within a bundle by length bucket, and a part read whole into its videos."""

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.inference.examples import VideoExample
from pipelines.inference.pipeline import BatchByLength, inspect_part, read_part_videos
from schemas import columns as c
from tests.pipelines.inference.stage2_data import (
    EMPTY_VIDEO,
    FEATURE_DIM,
    GARBAGE_PART,
    LOST_VIDEO,
    make_feature_set,
)
from workers import store


def _example(video_id: str, num_frames: int) -> VideoExample:
    return VideoExample(
        video_id=video_id,
        frame_order="original",
        frame_indices=np.arange(num_frames),
        features={"rgb": np.zeros((num_frames, 2), np.float32)},
    )


def _shape(batch: list[VideoExample]) -> tuple[str, ...]:
    return tuple(sorted(e.video_id for e in batch))


def test_batches_hold_one_length_bucket_and_at_most_batch_size_videos():
    # Lengths 3 and 4 share bucket 2 (2 < n <= 4); 5 and 8 share bucket 3; 1 is bucket 0.
    lengths = {"a": 3, "b": 4, "c": 5, "d": 3, "e": 8, "f": 1, "g": 4}
    with test_pipeline.TestPipeline(runner="FnApiRunner") as pipeline:
        batches = (
            pipeline
            | beam.Create([_example(v, n) for v, n in lengths.items()], reshuffle=False)
            | beam.ParDo(BatchByLength(2))
            | beam.Map(_shape)
        )
        # In one bundle: full batches as they fill, then what is left per bucket.
        assert_that(batches, equal_to([("a", "b"), ("d", "g"), ("c", "e"), ("f",)]))


def test_batch_size_is_checked():
    with pytest.raises(ValueError, match=r"^batch_size \(0\) must be > 0$"):
        BatchByLength(0)


def test_a_part_is_read_whole_into_its_listed_videos(tmp_path):
    features = make_feature_set(tmp_path)
    broken = (GARBAGE_PART, store.part_name([LOST_VIDEO]))  # inspecting them fails first
    readable = [
        p for p in sorted(tmp_path.glob("features/*/part-*.parquet")) if p.name not in broken
    ]
    infos = [inspect_part(str(p), columns=[c.VIDEO_ID], feature_dim=FEATURE_DIM) for p in readable]
    assert len(infos) == 2 and all(info.uri.startswith(features) for info in infos)
    videos = {}
    for info in infos:
        for video_id, parts in read_part_videos(
            info,
            columns=[c.VIDEO_ID, c.FRAME_INDEX, c.STREAM, c.FEATURE],
            streams=("rgb",),
            spatial=False,
        ):
            videos[video_id] = parts
    (listing,) = [info.uri for info in infos if EMPTY_VIDEO in info.video_ids]
    assert videos[EMPTY_VIDEO] == {"chunks": [], "listed": [listing]}
    assert len(videos) == 12  # ten good videos, the NaN one, the listed one without rows
    (chunk,) = videos["v03"]["chunks"]
    assert sorted(chunk.frame_index.tolist()) == [0, 2, 4, 6, 8, 10]
    assert chunk.feature.shape == (6, FEATURE_DIM)
