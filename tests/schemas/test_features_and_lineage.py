import dataclasses

import pyarrow as pa
import pytest

from schemas import (
    ACTION_PREDICTIONS_SCHEMA,
    ANSWER_PREDICTIONS_SCHEMA,
    CAPTION_PREDICTIONS_SCHEMA,
    ERRORS_SCHEMA,
    FeatureSetSpec,
    feature_dim_of,
    frame_features_schema,
    schema_version,
    spatial_shape_of,
)


def test_frame_features_schema_shapes():
    schema = frame_features_schema(512, dtype="float16", spatial_shape=(512, 2, 2))
    assert feature_dim_of(schema) == 512
    assert spatial_shape_of(schema) == (512, 2, 2)
    assert schema.field("feature").type == pa.list_(pa.float16(), 512)
    assert schema.field("spatial_map").type.list_size == 2048
    assert schema_version(schema) == ("frame_features", 1)
    assert spatial_shape_of(frame_features_schema(8)) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature_dim": 0}, r"feature_dim \(0\) must be > 0"),
        ({"feature_dim": 4, "dtype": "int8"}, "dtype 'int8' is not one of float32, float16"),
        ({"feature_dim": 4, "spatial_shape": (4, 0, 2)}, "must be three positive sizes"),
    ],
)
def test_frame_features_schema_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        frame_features_schema(**kwargs)


def test_every_schema_is_versioned():
    versions = {
        schema_version(schema)
        for schema in (
            ERRORS_SCHEMA,
            ACTION_PREDICTIONS_SCHEMA,
            CAPTION_PREDICTIONS_SCHEMA,
            ANSWER_PREDICTIONS_SCHEMA,
        )
    }
    assert versions == {
        ("errors", 1),
        ("action_predictions", 2),  # 2: frame indices and attention over them
        ("caption_predictions", 1),
        ("answer_predictions", 1),
    }


def spec(**overrides):
    values = dict(
        backbone="resnet18",
        weights="none",
        weights_digest="init-seed:0",
        input_size=112,
        resize_size=112,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        sampling="uniform:8",
        streams=("rgb",),
        flow=None,
        decoder="auto",
        rotation="apply",
        dtype="float32",
        precision="fp32",
        spatial_map=False,
    )
    values.update(overrides)
    return FeatureSetSpec(**values)


def test_feature_set_id_depends_on_numbers_only():
    base = spec()
    assert base.feature_set_id.startswith("resnet18-")
    assert spec(weights="/some/other/path").feature_set_id == base.feature_set_id
    changed = [
        spec(weights_digest="sha256:ab"),
        spec(input_size=96),
        spec(resize_size=128),
        spec(sampling="uniform:16"),
        spec(streams=("rgb", "flow"), flow="farneback"),
        spec(dtype="float16"),
        spec(spatial_map=True),
        spec(precision="bf16"),
    ]
    ids = {s.feature_set_id for s in changed}
    assert len(ids) == len(changed) and base.feature_set_id not in ids


def test_feature_set_spec_round_trips_and_validates():
    base = spec()
    assert FeatureSetSpec.from_json(base.to_json()) == base
    with pytest.raises(ValueError, match="flow must describe"):
        spec(streams=("rgb", "flow"))
    with pytest.raises(ValueError, match=r"input_size \(0\) must be > 0"):
        spec(input_size=0)
    assert dataclasses.replace(base, sampling="all") != base
