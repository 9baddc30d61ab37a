"""The versioned Parquet feature store: one folder per feature set, parts committed atomically.

Layout under a feature set's folder (any fsspec URL):
    feature_set.json          lineage: the spec whose hash is the folder's name, versions, creation time
    part-<hash>.parquet       rows of a group of videos; its footer lists the group's video ids
    errors/part-<hash>.parquet  one row per video that could not be processed
    _tmp/                     files being written; never read
A part is written under _tmp/ and then renamed, so a video's rows appear all
at once or not at all; its name is a hash of its video ids, so a retried
task rewrites the same part instead of adding one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import (
    ERRORS_SCHEMA,
    EVENT_TIMESTAMP_TYPE,
    LINEAGE_KEY,
    FeatureSetSpec,
    content_hash,
    frame_features_schema,
    lineage_record,
    spatial_shape_of,
)
from schemas import columns as c

log = logging.getLogger(__name__)

FEATURE_SET_FILE = "feature_set.json"
ERRORS_DIR = "errors"
TMP_DIR = "_tmp"
PART_PREFIX = "part-"
VIDEO_IDS_KEY = b"vidpipe.video_ids"
# Only the small key columns get dictionaries and statistics; features are dense floats.
_DICTIONARY_COLUMNS = [c.VIDEO_ID, c.STREAM, c.DECODER]
_STATISTICS_COLUMNS = [c.VIDEO_ID, c.FRAME_INDEX, c.TIMESTAMP_S, c.STREAM, c.EVENT_TIMESTAMP]


def feature_set_uri(root: str, feature_set_id: str) -> str:
    """Where the feature set `feature_set_id` lives under the store root `root`."""
    return f"{root.rstrip('/')}/features/{feature_set_id}"


def _fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(uri)


@dataclass(frozen=True)
class VideoFeatures:
    """One video's rows of one stream, as arrays in frame order."""

    video_id: str
    stream: str
    decoder: str
    frame_index: np.ndarray  # (T,) int32
    timestamp_s: np.ndarray  # (T,) float64
    feature: np.ndarray  # (T, D)
    spatial_map: np.ndarray | None  # (T, C, H, W)

    def __post_init__(self) -> None:
        num_frames = len(self.frame_index)
        if len(self.timestamp_s) != num_frames or len(self.feature) != num_frames:
            raise ValueError(
                f"video {self.video_id!r}: {num_frames} frame indices, {len(self.timestamp_s)} "
                f"timestamps and {len(self.feature)} feature rows must agree"
            )
        if self.spatial_map is not None and len(self.spatial_map) != num_frames:
            raise ValueError(
                f"video {self.video_id!r}: {len(self.spatial_map)} spatial maps for {num_frames} frames"
            )


# ---------------------------------------------------------------- feature_set.json


def create_or_open_feature_set(
    uri: str, spec: FeatureSetSpec, *, feature_dim: int, spatial_shape
) -> dict:
    """The feature set's lineage record, writing feature_set.json on first use.

    A folder whose record holds a different spec is refused: a folder never mixes settings.
    """
    fs, path = _fs(uri)
    existing = read_feature_set_record(uri) if fs.exists(f"{path}/{FEATURE_SET_FILE}") else None
    if existing is not None:
        if FeatureSetSpec.from_json(existing["spec"]).hashed_fields() != spec.hashed_fields():
            raise ValueError(
                f"{uri} holds a feature set with different settings; refusing to mix them"
            )
        return existing
    record = lineage_record(
        "feature_set",
        spec.to_json(),
        feature_set_id=spec.feature_set_id,
        feature_dim=feature_dim,
        spatial_shape=list(spatial_shape) if spatial_shape else None,
        schema=frame_features_schema(
            feature_dim, dtype=spec.dtype, spatial_shape=spatial_shape
        ).to_string(show_schema_metadata=False),
    )
    fs.makedirs(path, exist_ok=True)
    _atomic_write_bytes(
        fs, path, FEATURE_SET_FILE, json.dumps(record, indent=2, sort_keys=True).encode()
    )
    return record


def read_feature_set_record(uri: str) -> dict:
    fs, path = _fs(uri)
    target = f"{path}/{FEATURE_SET_FILE}"
    if not fs.exists(target):
        raise FileNotFoundError(f"no feature set at {uri} ({FEATURE_SET_FILE} is missing)")
    with fs.open(target, "r") as f:
        return json.load(f)


# ---------------------------------------------------------------- building tables (pure)


def part_name(video_ids: Iterable[str]) -> str:
    """The file name of the part holding exactly these videos."""
    return f"{PART_PREFIX}{content_hash(sorted(video_ids), 16)}.parquet"


def features_table(
    videos: Sequence[VideoFeatures],
    *,
    feature_dim: int,
    dtype: str,
    spatial_shape: tuple[int, int, int] | None,
    event_timestamp: str,
) -> pa.Table:
    """Rows of `videos` (all streams) as a frame-features table."""
    schema = frame_features_schema(feature_dim, dtype=dtype, spatial_shape=spatial_shape)
    numpy_dtype = np.float16 if dtype == "float16" else np.float32
    num_rows = sum(len(v.frame_index) for v in videos)
    video_ids = [v.video_id for v in videos for _ in range(len(v.frame_index))]
    streams = [v.stream for v in videos for _ in range(len(v.frame_index))]
    decoders = [v.decoder for v in videos for _ in range(len(v.frame_index))]
    features = (
        np.concatenate([v.feature for v in videos]).astype(numpy_dtype, copy=False)
        if videos
        else np.zeros((0, feature_dim), numpy_dtype)
    )
    if features.shape != (num_rows, feature_dim):
        raise ValueError(
            f"features have shape {features.shape}, expected ({num_rows}, {feature_dim})"
        )
    arrays = {
        c.VIDEO_ID: pa.array(video_ids, pa.string()),
        c.FRAME_INDEX: pa.array(
            np.concatenate([v.frame_index for v in videos]) if videos else [], pa.int32()
        ),
        c.TIMESTAMP_S: pa.array(
            np.concatenate([v.timestamp_s for v in videos]) if videos else [], pa.float64()
        ),
        c.STREAM: pa.array(streams, pa.string()),
        c.DECODER: pa.array(decoders, pa.string()),
        c.FEATURE: _fixed_size_list(features, schema.field(c.FEATURE).type),
    }
    if spatial_shape is not None:
        size = int(np.prod(spatial_shape))
        maps = np.concatenate(
            [v.spatial_map.reshape(len(v.frame_index), size) for v in videos]
        ).astype(numpy_dtype, copy=False)
        arrays[c.SPATIAL_MAP] = _fixed_size_list(maps, schema.field(c.SPATIAL_MAP).type)
    stamp = dt.datetime.fromisoformat(event_timestamp)
    arrays[c.EVENT_TIMESTAMP] = pa.array([stamp] * num_rows, EVENT_TIMESTAMP_TYPE)
    return pa.Table.from_arrays([arrays[name] for name in schema.names], schema=schema)


def _fixed_size_list(matrix: np.ndarray, list_type: pa.DataType) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(matrix).reshape(-1), type=list_type.value_type)
    return pa.FixedSizeListArray.from_arrays(flat, list_type.list_size)


def error_table(errors: Sequence[dict], *, event_timestamp: str) -> pa.Table:
    """Error rows (dicts with video_id, uri, stage, error_type, message, attempts)."""
    stamp = dt.datetime.fromisoformat(event_timestamp)
    rows = [{**e, c.EVENT_TIMESTAMP: stamp} for e in errors]
    return pa.Table.from_pylist(rows, schema=ERRORS_SCHEMA) if rows else ERRORS_SCHEMA.empty_table()


# ---------------------------------------------------------------- committing


def commit_part(
    uri: str, table: pa.Table, video_ids: Sequence[str], *, lineage: dict, subdir: str = ""
) -> str:
    """Write `table` (the rows of exactly `video_ids`) as one part, atomically; returns its path.

    Writing the same videos again replaces the same file, so retries never duplicate rows.
    """
    if not video_ids:
        raise ValueError("a part must hold at least one video")
    fs, path = _fs(uri)
    folder = f"{path}/{subdir}" if subdir else path
    metadata = dict(table.schema.metadata or {})
    metadata[VIDEO_IDS_KEY] = json.dumps(sorted(video_ids)).encode()
    metadata[LINEAGE_KEY] = json.dumps(lineage, sort_keys=True).encode()
    table = table.replace_schema_metadata(metadata)
    buffer = pa.BufferOutputStream()
    pq.write_table(
        table,
        buffer,
        compression="zstd",
        use_dictionary=[n for n in _DICTIONARY_COLUMNS if n in table.column_names],
        write_statistics=[n for n in _STATISTICS_COLUMNS if n in table.column_names],
    )
    fs.makedirs(folder, exist_ok=True)
    return _atomic_write_bytes(
        fs, folder, part_name(video_ids), buffer.getvalue().to_pybytes(), tmp_root=path
    )


def _atomic_write_bytes(
    fs, folder: str, name: str, data: bytes, *, tmp_root: str | None = None
) -> str:
    tmp_folder = f"{tmp_root or folder}/{TMP_DIR}"
    fs.makedirs(tmp_folder, exist_ok=True)
    temporary = f"{tmp_folder}/{name}.{uuid.uuid4().hex}"
    with fs.open(temporary, "wb") as f:
        f.write(data)
    final = f"{folder}/{name}"
    fs.mv(temporary, final)
    return final


# ---------------------------------------------------------------- reading


def part_paths(uri: str, *, subdir: str = "") -> list[str]:
    """Committed parts (sorted); temporary files are never listed."""
    fs, path = _fs(uri)
    folder = f"{path}/{subdir}" if subdir else path
    if not fs.exists(folder):
        return []
    names = fs.ls(folder, detail=False)
    return sorted(
        n for n in names if n.rsplit("/", 1)[-1].startswith(PART_PREFIX) and n.endswith(".parquet")
    )


def _part_video_ids(fs, part: str) -> list[str]:
    with fs.open(part, "rb") as f:
        metadata = pq.read_schema(f).metadata or {}
    return json.loads(metadata[VIDEO_IDS_KEY])


def committed_video_ids(uri: str) -> tuple[set[str], set[str]]:
    """(videos with committed features, videos with a committed error row)."""
    fs, _ = _fs(uri)
    done = {v for part in part_paths(uri) for v in _part_video_ids(fs, part)}
    failed = {v for part in part_paths(uri, subdir=ERRORS_DIR) for v in _part_video_ids(fs, part)}
    return done, failed


def read_features_table(
    uri: str, *, columns: Sequence[str] | None = None, filters=None
) -> pa.Table:
    """All committed feature rows of a feature set (optionally some columns or filtered)."""
    fs, _ = _fs(uri)
    parts = part_paths(uri)
    if not parts:
        return frame_features_schema(1).empty_table() if columns is None else pa.table({})
    dataset = pq.ParquetDataset(parts, filesystem=fs, filters=filters)
    return dataset.read(columns=list(columns) if columns else None)


def read_errors_table(uri: str) -> pa.Table:
    fs, _ = _fs(uri)
    parts = part_paths(uri, subdir=ERRORS_DIR)
    if not parts:
        return ERRORS_SCHEMA.empty_table()
    return pq.ParquetDataset(parts, filesystem=fs).read()


def load_video_features(
    uri: str, *, stream: str = "rgb", video_ids: Iterable[str] | None = None, spatial: bool = False
) -> dict[str, VideoFeatures]:
    """Per-video arrays of one stream, frames in order (for training and analysis)."""
    wanted = None if video_ids is None else set(video_ids)
    filters = [(c.STREAM, "=", stream)]
    columns = [c.VIDEO_ID, c.FRAME_INDEX, c.TIMESTAMP_S, c.DECODER, c.FEATURE]
    columns += [c.SPATIAL_MAP] if spatial else []
    table = read_features_table(uri, columns=columns, filters=filters)
    if table.num_rows == 0:
        return {}
    table = table.sort_by([(c.VIDEO_ID, "ascending"), (c.FRAME_INDEX, "ascending")])
    feature_type = table.schema.field(c.FEATURE).type
    features = table.column(c.FEATURE).combine_chunks().flatten().to_numpy(zero_copy_only=False)
    features = features.reshape(table.num_rows, feature_type.list_size)
    maps = None
    if spatial:
        shape = spatial_shape_of(read_features_schema(uri))
        if shape is None:
            raise ValueError(f"feature set {uri} has no spatial maps")
        maps = table.column(c.SPATIAL_MAP).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        maps = maps.reshape(table.num_rows, *shape)
    ids = table.column(c.VIDEO_ID).to_numpy(zero_copy_only=False)
    frame_index = table.column(c.FRAME_INDEX).to_numpy()
    timestamps = table.column(c.TIMESTAMP_S).to_numpy()
    decoders = table.column(c.DECODER).to_numpy(zero_copy_only=False)
    result = {}
    boundaries = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    for start, stop in zip(np.r_[0, boundaries], np.r_[boundaries, len(ids)], strict=True):
        video_id = str(ids[start])
        if wanted is not None and video_id not in wanted:
            continue
        result[video_id] = VideoFeatures(
            video_id=video_id,
            stream=stream,
            decoder=str(decoders[start]),
            frame_index=frame_index[start:stop],
            timestamp_s=timestamps[start:stop],
            feature=features[start:stop],
            spatial_map=None if maps is None else maps[start:stop],
        )
    return result


def read_features_schema(uri: str) -> pa.Schema:
    fs, _ = _fs(uri)
    parts = part_paths(uri)
    if not parts:
        raise FileNotFoundError(f"feature set {uri} has no committed parts")
    with fs.open(parts[0], "rb") as f:
        return pq.read_schema(f)


def clean_temporaries(uri: str) -> int:
    """Remove files left in _tmp/ by a killed run; returns how many."""
    fs, path = _fs(uri)
    folder = f"{path}/{TMP_DIR}"
    if not fs.exists(folder):
        return 0
    leftovers = fs.ls(folder, detail=False)
    for name in leftovers:
        fs.rm(name)
    return len(leftovers)


def list_feature_sets(root: str) -> list[dict]:
    """A summary per feature set under `root`: id, spec, counts, creation time."""
    fs, path = _fs(f"{root.rstrip('/')}/features")
    if not fs.exists(path):
        return []
    summaries = []
    for folder in sorted(fs.ls(path, detail=False)):
        uri = f"{root.rstrip('/')}/features/{folder.rsplit('/', 1)[-1]}"
        try:
            record = read_feature_set_record(uri)
        except FileNotFoundError:
            continue
        done, failed = committed_video_ids(uri)
        summaries.append(
            {
                "feature_set_id": record["feature_set_id"],
                "uri": uri,
                "spec": record["spec"],
                "created_at": record["created_at"],
                "num_videos": len(done),
                "num_errors": len(failed),
                "num_parts": len(part_paths(uri)),
            }
        )
    return summaries
