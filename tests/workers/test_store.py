import json

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from schemas import FeatureSetSpec, spatial_shape_of
from workers import store

SPEC = FeatureSetSpec(
    backbone="resnet18",
    weights="none",
    weights_digest="init-seed:0",
    input_size=64,
    resize_size=64,
    mean=(0.5, 0.5, 0.5),
    std=(0.25, 0.25, 0.25),
    sampling="uniform:3",
    streams=("rgb",),
    flow=None,
    decoder="auto",
    rotation="apply",
    dtype="float32",
    precision="fp32",
    spatial_map=True,
)
STAMP = "2026-01-02T03:04:05+00:00"


def video(video_id, num_frames, dim=4, offset=0.0):
    rng = np.random.default_rng(len(video_id) + num_frames)
    return store.VideoFeatures(
        video_id=video_id,
        stream="rgb",
        decoder="decord",
        frame_index=np.arange(num_frames, dtype=np.int32) * 5,
        timestamp_s=np.arange(num_frames) * 0.5,
        feature=rng.standard_normal((num_frames, dim)).astype(np.float32) + offset,
        spatial_map=rng.standard_normal((num_frames, 2, 1, 2)).astype(np.float32),
    )


def commit(uri, videos):
    record = store.create_or_open_feature_set(uri, SPEC, feature_dim=4, spatial_shape=(2, 1, 2))
    table = store.features_table(
        videos, feature_dim=4, dtype="float32", spatial_shape=(2, 1, 2), event_timestamp=STAMP
    )
    return store.commit_part(uri, table, [v.video_id for v in videos], lineage=record)


@pytest.mark.parametrize("root", ["memory://store-test", "local"])
def test_commit_and_read_back(root, tmp_path):
    root = str(tmp_path) if root == "local" else root
    uri = store.feature_set_uri(root, SPEC.feature_set_id)
    videos = [video("a", 3), video("bb", 2)]
    commit(uri, videos)
    commit(uri, [video("c", 1)])
    done, failed = store.committed_video_ids(uri)
    assert done == {"a", "bb", "c"} and failed == set()
    loaded = store.load_video_features(uri, spatial=True)
    assert sorted(loaded) == ["a", "bb", "c"]
    np.testing.assert_array_equal(loaded["a"].feature, videos[0].feature)
    np.testing.assert_array_equal(loaded["bb"].spatial_map, videos[1].spatial_map)
    np.testing.assert_array_equal(loaded["a"].frame_index, [0, 5, 10])
    assert store.read_features_table(uri).num_rows == 6
    assert spatial_shape_of(store.read_features_schema(uri)) == (2, 1, 2)


def test_retry_rewrites_the_same_part(tmp_path):
    uri = store.feature_set_uri(str(tmp_path), SPEC.feature_set_id)
    first = commit(uri, [video("a", 3), video("b", 2)])
    again = commit(uri, [video("b", 2), video("a", 3)])
    assert first == again
    assert len(store.part_paths(uri)) == 1
    assert store.read_features_table(uri).num_rows == 5


def test_parts_carry_lineage_and_readers_agree(tmp_path):
    uri = store.feature_set_uri(str(tmp_path), SPEC.feature_set_id)
    part = commit(uri, [video("a", 3)])
    metadata = pq.read_schema(part).metadata
    assert json.loads(metadata[b"vidpipe.lineage"])["spec"]["backbone"] == "resnet18"
    assert json.loads(metadata[b"vidpipe.video_ids"]) == ["a"]
    record = json.loads(
        (tmp_path / "features" / SPEC.feature_set_id / "feature_set.json").read_text()
    )
    assert record["feature_set_id"] == SPEC.feature_set_id and "torch" in record["libraries"]
    # pandas and duckdb read the same files as they are.
    frame = pq.read_table(part).to_pandas()
    assert list(frame["frame_index"]) == [0, 5, 10]
    (count,) = duckdb.sql(
        f"select count(*), min(event_timestamp) from read_parquet('{part}')"
    ).fetchall()
    assert count[0] == 3 and count[1].isoformat().startswith("2026-01-02T03:04:05")
    column = pq.ParquetFile(part).metadata.row_group(0).column(5)
    assert column.compression == "ZSTD" and "RLE_DICTIONARY" not in column.encodings


def test_a_folder_never_mixes_settings(tmp_path):
    uri = store.feature_set_uri(str(tmp_path), SPEC.feature_set_id)
    store.create_or_open_feature_set(uri, SPEC, feature_dim=4, spatial_shape=None)
    other = FeatureSetSpec.from_json({**SPEC.to_json(), "sampling": "uniform:9"})
    with pytest.raises(ValueError, match="holds a feature set with different settings"):
        store.create_or_open_feature_set(uri, other, feature_dim=4, spatial_shape=None)


def test_errors_and_temporaries(tmp_path):
    uri = store.feature_set_uri(str(tmp_path), SPEC.feature_set_id)
    record = store.create_or_open_feature_set(uri, SPEC, feature_dim=4, spatial_shape=None)
    errors = [
        dict(
            video_id="bad",
            uri="x.mp4",
            stage="decode",
            error_type="EmptyFile",
            message="0 bytes",
            attempts=2,
        )
    ]
    store.commit_part(
        uri,
        store.error_table(errors, event_timestamp=STAMP),
        ["bad"],
        lineage=record,
        subdir="errors",
    )
    assert store.committed_video_ids(uri) == (set(), {"bad"})
    assert store.read_errors_table(uri).column("error_type").to_pylist() == ["EmptyFile"]
    leftover = tmp_path / "features" / SPEC.feature_set_id / "_tmp" / "part-x.parquet.123"
    leftover.write_bytes(b"half written")
    assert store.part_paths(uri) == []
    assert store.clean_temporaries(uri) == 1 and not leftover.exists()


def test_list_feature_sets(tmp_path):
    uri = store.feature_set_uri(str(tmp_path), SPEC.feature_set_id)
    commit(uri, [video("a", 3)])
    (summary,) = store.list_feature_sets(str(tmp_path))
    assert summary["feature_set_id"] == SPEC.feature_set_id
    assert (summary["num_videos"], summary["num_errors"], summary["num_parts"]) == (1, 0, 1)


def test_video_features_checks_lengths():
    with pytest.raises(
        ValueError, match="3 frame indices, 2 timestamps and 3 feature rows must agree"
    ):
        store.VideoFeatures(
            video_id="v",
            stream="rgb",
            decoder="pyav",
            frame_index=np.arange(3),
            timestamp_s=np.arange(2),
            feature=np.zeros((3, 2)),
            spatial_map=None,
        )
