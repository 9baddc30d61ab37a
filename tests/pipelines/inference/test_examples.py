import numpy as np
import pyarrow as pa
import pytest

from pipelines.inference.examples import (
    FrameChunk,
    VideoExample,
    assemble_video,
    batches_of,
    frame_permutation,
    length_bucket,
    reorder,
    shuffle_seed,
    video_chunks,
)
from tests.pipelines.inference.stage2_data import STAMP, video_features
from workers import store


def chunk(stream, indices, offset=0.0):
    indices = np.asarray(indices, np.int64)
    feature = np.stack([indices + offset, -indices - offset], axis=1).astype(np.float32)
    return FrameChunk(stream=stream, frame_index=indices, feature=feature, spatial_map=None)


def test_chunks_of_a_row_group_split_by_video_and_stream():
    videos = [
        video_features(v, n, s, seed=0) for v, n in (("b", 3), ("a", 2)) for s in ("rgb", "flow")
    ]
    table = store.features_table(
        videos, feature_dim=4, dtype="float16", spatial_shape=None, event_timestamp=STAMP
    )
    table = table.take(pa.array(np.random.default_rng(0).permutation(table.num_rows)))
    chunks = video_chunks(table, ["rgb"])
    assert [(video_id, len(c.frame_index)) for video_id, c in chunks] == [("a", 2), ("b", 3)]
    (_, a_rgb), (_, b_rgb) = chunks
    assert a_rgb.stream == "rgb" and a_rgb.feature.dtype == np.float32
    expected = video_features("b", 3, "rgb", seed=0)
    row_of = {int(i): r for r, i in enumerate(b_rgb.frame_index)}
    for row, index in enumerate(expected.frame_index):
        np.testing.assert_array_equal(
            b_rgb.feature[row_of[int(index)]], expected.feature[row].astype(np.float16)
        )
    assert video_chunks(table, ["missing"]) == []


def test_assembly_sorts_frames_and_joins_streams():
    parts = [chunk("rgb", [4, 0]), chunk("flow", [0, 2, 4], 100.0), chunk("rgb", [2])]
    video = assemble_video("v", parts, ["rgb", "flow"])
    assert video.frame_order == "original" and video.frame_indices.tolist() == [0, 2, 4]
    assert video.features["rgb"][:, 0].tolist() == [0, 2, 4]
    assert video.features["flow"][:, 0].tolist() == [100, 102, 104]


def test_assembly_errors_name_the_video():
    with pytest.raises(ValueError, match=r"^video 'v' has no frames in the feature set$"):
        assemble_video("v", [], ["rgb"])
    with pytest.raises(ValueError, match=r"^video 'v' has no flow frames \(it has rgb\)$"):
        assemble_video("v", [chunk("rgb", [0])], ["rgb", "flow"])
    with pytest.raises(ValueError, match=r"^video 'v' repeats frame_index 2 in its rgb rows$"):
        assemble_video("v", [chunk("rgb", [0, 2]), chunk("rgb", [2])], ["rgb"])
    with pytest.raises(
        ValueError, match=r"^video 'v': its rgb and flow rows are for different frames$"
    ):
        assemble_video("v", [chunk("rgb", [0, 2]), chunk("flow", [0, 3])], ["rgb", "flow"])
    with pytest.raises(
        ValueError, match=r"^frame_order 'sideways' must be one of original, reversed, shuffled$"
    ):
        VideoExample(video_id="v", frame_order="sideways", frame_indices=np.arange(2), features={})


def test_frame_orders_move_every_array_together_and_shuffle_by_video_id():
    video = assemble_video("clip-7", [chunk("rgb", range(0, 16, 2))], ["rgb"])
    reversed_video = reorder(video, "reversed")
    assert reversed_video.frame_indices.tolist() == list(range(14, -1, -2))
    assert reversed_video.features["rgb"][:, 0].tolist() == list(range(14, -1, -2))
    shuffled = reorder(video, "shuffled")
    # The seed is the id's own (sha256), the same in every process and run.
    assert shuffle_seed("clip-7") == shuffle_seed("clip-7") != shuffle_seed("clip-8")
    expected = np.random.default_rng(shuffle_seed("clip-7")).permutation(8)
    np.testing.assert_array_equal(frame_permutation("clip-7", 8, "shuffled"), expected)
    assert shuffled.frame_indices.tolist() == (expected * 2).tolist()
    np.testing.assert_array_equal(shuffled.features["rgb"][:, 0], shuffled.frame_indices)
    assert sorted(shuffled.frame_indices.tolist()) == video.frame_indices.tolist()
    with pytest.raises(ValueError, match=r"^video 'clip-7' is already in reversed order$"):
        reorder(reversed_video, "shuffled")


def test_length_buckets_and_batches():
    assert [length_bucket(n) for n in (1, 2, 3, 4, 5, 8, 9, 16, 17)] == [0, 1, 2, 2, 3, 3, 4, 4, 5]
    assert list(batches_of(iter(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError, match=r"^num_frames \(0\) must be > 0$"):
        length_bucket(0)
    with pytest.raises(ValueError, match=r"^batch_size \(0\) must be > 0$"):
        list(batches_of([1], 0))
