"""Decoding for stage 1: probe a video, decode chosen frames with decord or PyAV, isolate bad videos.

`IsolatedDecoder` is what a job uses: a hang or crash costs one video.
`decode_video`/`decode_frames` run in-process and raise `DecodeError`.
"""

from workers.decoding.decode import DECODERS, ROTATIONS, decode_frames, decode_video
from workers.decoding.isolated import InProcessDecoder, IsolatedDecoder, IsolatedDecoderConfig
from workers.decoding.probe import probe
from workers.decoding.results import (
    ERROR_TYPES,
    STAGES,
    Clip,
    DecodeError,
    DecodeFailure,
    VideoInfo,
)

__all__ = [
    "DECODERS",
    "ERROR_TYPES",
    "ROTATIONS",
    "STAGES",
    "Clip",
    "DecodeError",
    "DecodeFailure",
    "InProcessDecoder",
    "IsolatedDecoder",
    "IsolatedDecoderConfig",
    "VideoInfo",
    "decode_frames",
    "decode_video",
    "probe",
]
