"""What decoding gives back: `VideoInfo` from probing, a `Clip` of frames, or a `DecodeFailure`.

A bad video is data, not an exception that stops a job: inside this package
it is a `DecodeError` with a stage and a pinned error type, and the public
decoders turn it into a `DecodeFailure` value.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np

Stage = Literal["probe", "decode"]
DecoderName = Literal["decord", "pyav"]
STAGES = ("probe", "decode")
# Every error type a failure can carry; tests pin which input gives which.
ERROR_TYPES = (
    "not_found",  # no file at the uri
    "permission_denied",  # the file exists but cannot be read
    "not_a_file",  # the uri names a directory
    "empty_file",  # zero bytes
    "invalid_data",  # not a container FFmpeg can read (random bytes, text, a cut-off MP4)
    "no_video_stream",  # a container without video (audio only, subtitles)
    "no_frames",  # a video stream from which no frame could be demuxed or decoded
    "unsupported_rotation",  # a display matrix that is not a multiple of 90 degrees
    "decoder_error",  # the decoder that was asked for failed on a file that opens
    "io_error",  # reading failed (network, disk)
    "timeout",  # no result within the per-video time limit; the decoding process was killed
    "crash",  # the decoding process died (segfault, killed)
    "unexpected",  # an exception nobody anticipated, recorded with its type
)


@dataclass(frozen=True, kw_only=True)
class VideoInfo:
    """What probing found in a video's first video stream (cover art aside).

    `num_frames`, `timestamps_s`, `pts` and `keyframe_indices` come from the
    packets that really demux, in presentation order, not from the header
    (`header_num_frames`), which can overstate a cut-off file.
    `rotation_degrees` is the counter-clockwise turn the display matrix asks
    for, in [0, 360).
    """

    stream_index: int  # in the container, counting all streams
    num_frames: int
    timestamps_s: np.ndarray  # (num_frames,) float64 seconds, sorted
    pts: np.ndarray  # (num_frames,) int64, in units of time_base
    time_base: Fraction
    keyframe_indices: np.ndarray  # int64, sorted
    width: int
    height: int
    average_fps: float
    duration_s: float
    codec: str
    rotation_degrees: int
    header_num_frames: int  # what the container claims; 0 when it does not say

    def __post_init__(self) -> None:
        if self.num_frames <= 0:
            raise ValueError(f"num_frames ({self.num_frames}) must be > 0")
        # Own read-only copies: an info is shared by every clip decoded from it.
        for name, dtype in (
            ("timestamps_s", np.float64),
            ("pts", np.int64),
            ("keyframe_indices", np.int64),
        ):
            array = np.array(getattr(self, name), dtype=dtype)
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        for name in ("timestamps_s", "pts"):
            if getattr(self, name).shape != (self.num_frames,):
                raise ValueError(
                    f"{name} has shape {getattr(self, name).shape}, expected ({self.num_frames},)"
                )


@dataclass(frozen=True)
class DecodedFrames:
    """What a backend hands back: `frames[k]` (N, H, W, 3) is frame `indices[k]`; frames that did not decode are absent."""

    frames: np.ndarray
    indices: list[int]
    num_decoded_frames: int | None


class DecodeError(Exception):
    """A video that cannot be decoded, with the stage and error type its error row records."""

    def __init__(self, stage: Stage, error_type: str, message: str):
        assert stage in STAGES and error_type in ERROR_TYPES, (stage, error_type)
        super().__init__(message)
        self.stage = stage
        self.error_type = error_type
        self.message = message

    def __reduce__(self):  # keep the fields when pickled between processes
        return (type(self), (self.stage, self.error_type, self.message))


@dataclass(frozen=True, kw_only=True)
class DecodeFailure:
    """Why a video gave no frames: the fields of its row in `errors/`."""

    stage: Stage
    error_type: str
    message: str
    attempts: int

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage {self.stage!r} is not one of {', '.join(STAGES)}")
        if self.error_type not in ERROR_TYPES:
            raise ValueError(
                f"error_type {self.error_type!r} is not one of {', '.join(ERROR_TYPES)}"
            )
        if self.attempts < 1:
            raise ValueError(f"attempts ({self.attempts}) must be >= 1")

    @classmethod
    def from_error(cls, error: DecodeError, *, attempts: int = 1) -> DecodeFailure:
        return cls(
            stage=error.stage, error_type=error.error_type, message=error.message, attempts=attempts
        )


@dataclass(frozen=True, kw_only=True)
class Clip:
    """Decoded frames of one video with the index and timestamp of each.

    `frames` is (N, H, W, 3) uint8 RGB, already turned by `rotation_degrees`
    (counter-clockwise) when rotation was applied. With successors,
    `successor_frames[i]` is the frame after `frames[i]` (itself when there is
    none) so optical flow needs no second decode. `num_decoded_frames` counts
    every frame the decoder produced to deliver these, including those it
    skipped on the way (PyAV; None for decord, which does not report it).
    """

    frames: np.ndarray
    frame_indices: np.ndarray
    timestamps_s: np.ndarray
    decoder: DecoderName
    rotation_degrees: int
    info: VideoInfo
    successor_frames: np.ndarray | None = None
    successor_indices: np.ndarray | None = None
    num_decoded_frames: int | None = None
    fallback_reason: str | None = None  # why "auto" did not use decord

    def __post_init__(self) -> None:
        frames = self.frames
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}"
            )
        num = len(frames)
        for name in ("frame_indices", "timestamps_s"):
            if getattr(self, name).shape != (num,):
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected ({num},)")
        if (self.successor_frames is None) != (self.successor_indices is None):
            raise ValueError("successor_frames and successor_indices come together")
        if self.successor_frames is not None and self.successor_frames.shape != frames.shape:
            raise ValueError(
                f"successor_frames has shape {self.successor_frames.shape}, expected {frames.shape}"
            )
        if self.decoder not in ("decord", "pyav"):
            raise ValueError(f"decoder {self.decoder!r} is not one of decord, pyav")

    @property
    def num_frames(self) -> int:
        return len(self.frames)
