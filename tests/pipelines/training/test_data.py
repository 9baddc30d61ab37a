import numpy as np
import pytest

from pipelines.training.data import load_training_data
from schemas import FeatureSetSpec, manifest_table, write_manifest
from workers import store

SPEC = FeatureSetSpec(
    backbone="small_cnn", weights="none", weights_digest="init-seed:0", input_size=32, resize_size=32,
    mean=(0.5,) * 3, std=(0.25,) * 3, sampling="uniform:3", streams=("rgb", "flow"), flow="farneback",
    decoder="auto", rotation="apply", dtype="float32", precision="fp32", spatial_map=False,
)  # fmt: skip


def videos(video_id, stream, offset):
    return store.VideoFeatures(
        video_id=video_id, stream=stream, decoder="decord", frame_index=np.array([0, 4, 8], np.int32),
        timestamp_s=np.array([0.0, 0.4, 0.8]), feature=np.full((3, 2), offset, np.float32), spatial_map=None,
    )  # fmt: skip


def test_features_join_the_manifest(tmp_path):
    uri = store.feature_set_uri(str(tmp_path), SPEC.feature_set_id)
    record = store.create_or_open_feature_set(uri, SPEC, feature_dim=2, spatial_shape=None)
    committed = [
        videos("a", "rgb", 1.0),
        videos("a", "flow", 2.0),
        videos("b", "rgb", 3.0),
        videos("b", "flow", 4.0),
    ]
    table = store.features_table(
        committed,
        feature_dim=2,
        dtype="float32",
        spatial_shape=None,
        event_timestamp=record["created_at"],
    )
    store.commit_part(uri, table, ["a", "b"], lineage=record)
    rows = [
        {"video_id": "a", "uri": "a.mp4", "split": "train", "label": "x", "captions": ["a cap"]},
        {"video_id": "b", "uri": "b.mp4", "split": "test", "label": "y"},
        {"video_id": "c", "uri": "c.mp4", "split": "train", "label": "z"},
    ]
    write_manifest(manifest_table(rows), str(tmp_path / "m.parquet"))
    data = load_training_data(uri, str(tmp_path / "m.parquet"))
    assert data.num_missing == 1
    assert [v.video_id for v in data.split("train")] == ["a"]
    (a,) = data.split("train")
    assert a.captions == ("a cap",) and a.features[0, 0] == 1.0 and a.flow[0, 0] == 2.0
    assert data.class_names() == ["x"]
    with pytest.raises(ValueError, match="has no spatial maps"):
        load_training_data(uri, str(tmp_path / "m.parquet"), spatial=True)
