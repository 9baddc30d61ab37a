"""Decode chosen frames with decord's `VideoReader.get_batch`, after checking that its frames are ours.

decord numbers frames from its own index; when that index disagrees with the
probe's timestamps for the wanted frames, its frame k is not our frame
k, so the batch is refused and "auto" decodes with PyAV instead; so are
display rotations decord gets wrong. Callers clamp
indices to frames that really demux, so decord is never asked for the frames
a header overstates (where it can hang).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import decord
import numpy as np
from decord._ffi.base import DECORDError

from workers.decoding.results import DecodedFrames, DecodeError, VideoInfo

logger = logging.getLogger(__name__)

# decord turns 90- and 270-degree videos itself (counter-clockwise, as we do), but gives
# four-channel garbage for 180 degrees and other angles (decord 0.6.0).
DECORD_ROTATIONS = (0, 90, 270)
# decord reports timestamps as float32 seconds.
TIMESTAMP_TOLERANCE_S = 1e-3
# What decord raises: its own error, RuntimeError when it cannot open a file,
# AssertionError for a zero frame count, IndexError for indices past its count.
DECORD_ERRORS = (DECORDError, RuntimeError, AssertionError, IndexError)


def decode_decord(
    path: str, info: VideoInfo, indices: Sequence[int], *, name: str
) -> DecodedFrames:
    """Frames `indices` (sorted, distinct, < info.num_frames) of the local file `path`."""
    if info.rotation_degrees not in DECORD_ROTATIONS:
        raise DecodeError(
            "decode",
            "decoder_error",
            f"decord mis-decodes {name}: it has a {info.rotation_degrees}-degree display rotation",
        )
    try:
        # One thread: a job decodes in one process per core, and decord's own threads would
        # only contend with them (measured: 16% more CPU per video with its default).
        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        _check_frame_table(reader, info, indices, name)
        batch = reader.get_batch(list(indices)).asnumpy()  # (N, H', W', 3), maybe turned
    except DECORD_ERRORS as error:
        message = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
        raise DecodeError(
            "decode", "decoder_error", f"decord cannot decode {name}: {message}"
        ) from error
    quarter_turns = info.rotation_degrees // 90
    turned = (info.width, info.height) if quarter_turns % 2 else (info.height, info.width)
    if batch.shape[1:] != (*turned, 3):
        raise DecodeError(
            "decode",
            "decoder_error",
            f"decord gave frames of shape {batch.shape[1:]} for {name}, expected {(*turned, 3)}",
        )
    if quarter_turns:
        # Undo decord's own turn so that both decoders hand over the stored picture.
        batch = np.ascontiguousarray(np.rot90(batch, -quarter_turns, axes=(1, 2)))  # (N, H, W, 3)
    return DecodedFrames(frames=batch, indices=list(indices), num_decoded_frames=None)


def _check_frame_table(reader, info: VideoInfo, indices: Sequence[int], name: str) -> None:
    num_frames = len(reader)
    if num_frames != info.num_frames:
        # decord counts from the header, which can overstate; we never ask past the probe's count.
        logger.info(
            "decord counts %d frames in %s, its packets hold %d", num_frames, name, info.num_frames
        )
    if indices and indices[-1] >= num_frames:
        raise DecodeError(
            "decode",
            "decoder_error",
            f"decord sees {num_frames} frames in {name}; frame {indices[-1]} is past its end",
        )
    starts = reader.get_frame_timestamp(list(indices))[:, 0]  # (N,) float32 seconds
    expected = info.timestamps_s[np.asarray(indices, dtype=np.int64)]
    wrong = np.flatnonzero(np.abs(starts - expected) > TIMESTAMP_TOLERANCE_S)
    if wrong.size:
        first = int(wrong[0])
        raise DecodeError(
            "decode",
            "decoder_error",
            f"decord's frame {indices[first]} of {name} is at {float(starts[first]):.6f} s, "
            f"the probe's at {float(expected[first]):.6f} s",
        )
