"""Per-frame feature rows and per-video error rows of the feature store.

The feature column is a fixed-size list so readers get a dense
(num_frames, dim) array without copying; `event_timestamp` lets a feature
store's offline Parquet source (Feast's FileSource) read the files as they are.
"""

from typing import Literal

import pyarrow as pa

from schemas import columns as c
from schemas._meta import versioned

FeatureDType = Literal["float32", "float16"]
STREAMS = ("rgb", "flow")

_ARROW_DTYPES = {"float32": pa.float32(), "float16": pa.float16()}
SPATIAL_SHAPE_KEY = b"vidpipe.spatial_shape"
EVENT_TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


def frame_features_schema(
    feature_dim: int,
    *,
    dtype: FeatureDType = "float32",
    spatial_shape: tuple[int, int, int] | None = None,
) -> pa.Schema:
    """Schema of a feature set's rows; `spatial_shape` (C, H, W) adds the last spatial map."""
    if feature_dim <= 0:
        raise ValueError(f"feature_dim ({feature_dim}) must be > 0")
    if dtype not in _ARROW_DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(_ARROW_DTYPES)}")
    value_type = _ARROW_DTYPES[dtype]
    fields = [
        pa.field(c.VIDEO_ID, pa.string(), nullable=False),
        pa.field(c.FRAME_INDEX, pa.int32(), nullable=False),
        pa.field(c.TIMESTAMP_S, pa.float64(), nullable=False),
        pa.field(c.STREAM, pa.string(), nullable=False),
        # Which decoder produced the frame ("decord" or "pyav"): with the "auto" policy a
        # feature set can hold both, and they differ by a colour level or two.
        pa.field(c.DECODER, pa.string(), nullable=False),
        pa.field(c.FEATURE, pa.list_(value_type, feature_dim), nullable=False),
    ]
    if spatial_shape is not None:
        if len(spatial_shape) != 3 or min(spatial_shape) <= 0:
            raise ValueError(
                f"spatial_shape {spatial_shape} must be three positive sizes (C, H, W)"
            )
        size = spatial_shape[0] * spatial_shape[1] * spatial_shape[2]
        shape_text = ",".join(str(s) for s in spatial_shape).encode()
        fields.append(
            pa.field(
                c.SPATIAL_MAP,
                pa.list_(value_type, size),
                nullable=False,
                metadata={SPATIAL_SHAPE_KEY: shape_text},
            )
        )
    fields.append(pa.field(c.EVENT_TIMESTAMP, EVENT_TIMESTAMP_TYPE, nullable=False))
    return versioned("frame_features", 1, fields)


def feature_dim_of(schema: pa.Schema) -> int:
    """Length of the feature vectors a frame-features schema holds."""
    return schema.field(c.FEATURE).type.list_size


def spatial_shape_of(schema: pa.Schema) -> tuple[int, int, int] | None:
    """(C, H, W) of the spatial map column, or None when the schema has none."""
    if c.SPATIAL_MAP not in schema.names:
        return None
    text = schema.field(c.SPATIAL_MAP).metadata[SPATIAL_SHAPE_KEY].decode()
    channels, height, width = (int(s) for s in text.split(","))
    return channels, height, width


ERRORS_SCHEMA = versioned(
    "errors",
    1,
    [
        pa.field(c.VIDEO_ID, pa.string(), nullable=False),
        pa.field(c.URI, pa.string()),
        pa.field(c.STAGE, pa.string(), nullable=False),
        pa.field(c.ERROR_TYPE, pa.string(), nullable=False),
        pa.field(c.MESSAGE, pa.string(), nullable=False),
        pa.field(c.ATTEMPTS, pa.int32(), nullable=False),
        pa.field(c.EVENT_TIMESTAMP, EVENT_TIMESTAMP_TYPE, nullable=False),
    ],
)
