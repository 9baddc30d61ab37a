"""Videos as a model sees them: feature rows split per video, joined in frame order, reordered.

Pure functions between the Parquet read and RunInference. A shuffled order takes its seed from
the video id, so every run and every runner shuffles a video the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas import FRAME_ORDERS
from schemas import columns as c


@dataclass(frozen=True)
class Question:
    """One question about a video, numbered by its position in the manifest row."""

    question_index: int
    question: str
    question_type: str


@dataclass(frozen=True)
class FrameChunk:
    """Rows of one video and one stream from one Parquet row group, in file order."""

    stream: str
    frame_index: np.ndarray  # (n,) int64
    feature: np.ndarray  # (n, D) float32
    spatial_map: np.ndarray | None  # (n, C·H·W) float32, flat as stored


@dataclass(frozen=True)
class VideoExample:
    """One video in one frame order: what RunInference batches.

    Every array follows `frame_indices`, the order the model sees the frames in (reversed or
    shuffled for the temporal-order check), so attention lines up with frame indices.
    """

    video_id: str
    frame_order: str
    frame_indices: np.ndarray  # (T,) int64
    features: Mapping[str, np.ndarray]  # stream -> (T, D) float32
    spatial_map: np.ndarray | None = None  # (T, C, H, W) float32
    questions: tuple[Question, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.frame_order not in FRAME_ORDERS:
            raise ValueError(
                f"frame_order {self.frame_order!r} must be one of {', '.join(FRAME_ORDERS)}"
            )
        num_frames = len(self.frame_indices)
        if num_frames == 0:
            raise ValueError(f"video {self.video_id!r} has no frames")
        for stream, array in self.features.items():
            if array.ndim != 2 or len(array) != num_frames:
                raise ValueError(
                    f"video {self.video_id!r}: {stream} features have shape {array.shape}, "
                    f"expected ({num_frames}, D)"
                )
        if self.spatial_map is not None and len(self.spatial_map) != num_frames:
            raise ValueError(
                f"video {self.video_id!r}: {len(self.spatial_map)} spatial maps for "
                f"{num_frames} frames"
            )

    @property
    def num_frames(self) -> int:
        return len(self.frame_indices)

    @property
    def num_bytes(self) -> int:
        arrays = [*self.features.values(), self.frame_indices]
        if self.spatial_map is not None:
            arrays.append(self.spatial_map)
        return sum(array.nbytes for array in arrays)


def video_chunks(
    table: pa.Table, streams: Sequence[str], *, spatial: bool = False
) -> list[tuple[str, FrameChunk]]:
    """(video id, chunk) for each video and wanted stream in one row group of a feature part."""
    wanted = table.filter(pc.is_in(table.column(c.STREAM), pa.array(list(streams), pa.string())))
    if wanted.num_rows == 0:
        return []
    wanted = wanted.sort_by([(c.VIDEO_ID, "ascending"), (c.STREAM, "ascending")])
    video_ids = wanted.column(c.VIDEO_ID).to_numpy(zero_copy_only=False)
    stream_names = wanted.column(c.STREAM).to_numpy(zero_copy_only=False)
    frame_index = wanted.column(c.FRAME_INDEX).to_numpy().astype(np.int64)
    features = _matrix(wanted.column(c.FEATURE))  # (N, D)
    maps = _matrix(wanted.column(c.SPATIAL_MAP)) if spatial else None  # (N, C·H·W)
    starts = np.flatnonzero(
        np.r_[True, (video_ids[1:] != video_ids[:-1]) | (stream_names[1:] != stream_names[:-1])]
    )
    stops = np.r_[starts[1:], len(video_ids)]
    return [
        (
            str(video_ids[start]),
            FrameChunk(
                stream=str(stream_names[start]),
                frame_index=frame_index[start:stop],
                feature=features[start:stop],
                spatial_map=None if maps is None else maps[start:stop],
            ),
        )
        for start, stop in zip(starts, stops, strict=True)
    ]


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-size-list column as a dense float32 (N, size) array."""
    array = column.combine_chunks()
    size = array.type.list_size
    values = array.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float32, copy=False).reshape(len(array), size)


def assemble_video(
    video_id: str,
    chunks: Iterable[FrameChunk],
    streams: Sequence[str],
    *,
    spatial_shape: tuple[int, int, int] | None = None,
) -> VideoExample:
    """The video's frames of `streams`, sorted by frame index, in the original order.

    ValueError when the video has no frames, lacks a stream, repeats a frame, or its streams
    hold different frames: each becomes a dead-letter row.
    """
    by_stream: dict[str, list[FrameChunk]] = {}
    for chunk in chunks:
        by_stream.setdefault(chunk.stream, []).append(chunk)
    if not by_stream:
        raise ValueError(f"video {video_id!r} has no frames in the feature set")
    features, order_of = {}, None
    spatial_map = None
    for stream in streams:
        parts = by_stream.get(stream)
        if not parts:
            found = ", ".join(sorted(by_stream))
            raise ValueError(f"video {video_id!r} has no {stream} frames (it has {found})")
        frame_index = np.concatenate([part.frame_index for part in parts])
        order = np.argsort(frame_index, kind="stable")
        frame_index = frame_index[order]
        repeated = frame_index[1:][frame_index[1:] == frame_index[:-1]]
        if len(repeated):
            raise ValueError(
                f"video {video_id!r} repeats frame_index {int(repeated[0])} in its {stream} rows"
            )
        if order_of is None:
            order_of = frame_index
        elif not np.array_equal(order_of, frame_index):
            raise ValueError(
                f"video {video_id!r}: its {streams[0]} and {stream} rows are for different frames"
            )
        features[stream] = np.concatenate([part.feature for part in parts])[order]  # (T, D)
        if spatial_shape is not None and spatial_map is None:
            flat = np.concatenate([part.spatial_map for part in parts])[order]  # (T, C·H·W)
            spatial_map = flat.reshape(len(flat), *spatial_shape)  # (T, C, H, W)
    assert order_of is not None
    return VideoExample(
        video_id=video_id,
        frame_order="original",
        frame_indices=order_of,
        features=features,
        spatial_map=spatial_map,
    )


def shuffle_seed(video_id: str) -> int:
    """A seed fixed by the video id alone (Python's hash() differs between processes)."""
    digest = hashlib.sha256(f"vidpipe-shuffle:{video_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def frame_permutation(video_id: str, num_frames: int, frame_order: str) -> np.ndarray:
    """(T,) positions of the original frames in `frame_order`."""
    if frame_order == "original":
        return np.arange(num_frames)
    if frame_order == "reversed":
        return np.arange(num_frames)[::-1].copy()
    if frame_order == "shuffled":
        return np.random.default_rng(shuffle_seed(video_id)).permutation(num_frames)
    raise ValueError(f"frame_order {frame_order!r} must be one of {', '.join(FRAME_ORDERS)}")


def reorder(example: VideoExample, frame_order: str) -> VideoExample:
    """`example` (in original order) with its frames in `frame_order`."""
    if example.frame_order != "original":
        raise ValueError(f"video {example.video_id!r} is already in {example.frame_order} order")
    position = frame_permutation(example.video_id, example.num_frames, frame_order)
    return replace(
        example,
        frame_order=frame_order,
        frame_indices=example.frame_indices[position],
        features={stream: array[position] for stream, array in example.features.items()},
        spatial_map=None if example.spatial_map is None else example.spatial_map[position],
    )


def with_frame_orders(example: VideoExample, frame_orders: Sequence[str]) -> list[VideoExample]:
    """`example` once per frame order."""
    return [reorder(example, order) for order in frame_orders]


def with_questions(example: VideoExample, questions: Iterable[Question]) -> VideoExample:
    """`example` carrying the questions to answer about it, in question order."""
    return replace(example, questions=tuple(sorted(questions, key=lambda q: q.question_index)))


def length_bucket(num_frames: int) -> int:
    """k such that 2^(k-1) < num_frames <= 2^k: videos of one bucket pad by less than 2x."""
    if num_frames <= 0:
        raise ValueError(f"num_frames ({num_frames}) must be > 0")
    return (num_frames - 1).bit_length()


def batches_of(items: Iterable, batch_size: int) -> Iterator[list]:
    """Consecutive lists of at most `batch_size` items, read lazily."""
    if batch_size <= 0:
        raise ValueError(f"batch_size ({batch_size}) must be > 0")
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
