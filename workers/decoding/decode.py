"""Decode the frames of one video in one call: probe, sample, decode, rotate, in this process.

`decode_video` is what a decoding process runs per video; `decode_frames`
decodes given indices. Both raise DecodeError for a bad video; the isolated
decoder runs them in a child process that a hang or a crash cannot take down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Literal

import numpy as np

from workers.decoding.decord_backend import decode_decord
from workers.decoding.probe import probe_local
from workers.decoding.pyav_backend import decode_pyav
from workers.decoding.results import Clip, DecodedFrames, DecodeError, VideoInfo
from workers.decoding.source import local_file
from workers.sampling import Rng, SamplingSpec, parse_sampling, sample_indices

logger = logging.getLogger(__name__)

DecoderChoice = Literal["auto", "decord", "pyav"]
RotationChoice = Literal["apply", "ignore"]
DECODERS = ("auto", "decord", "pyav")
ROTATIONS = ("apply", "ignore")
Sampling = SamplingSpec | str | Sequence[int]


def decode_frames(
    uri: str,
    indices: Sequence[int],
    *,
    decoder: DecoderChoice = "auto",
    rotation: RotationChoice = "apply",
    with_successors: bool = False,
    info: VideoInfo | None = None,
) -> Clip:
    """Frames `indices` (sorted, distinct, >= 0) of `uri`; indices past the last real frame are dropped.

    `decoder="auto"` tries decord and falls back to PyAV when decord cannot
    open or decode the file (`clip.decoder` and `clip.fallback_reason` say
    what happened). `rotation="apply"` turns frames by the probed display
    rotation after decoding, identically for both decoders. With
    `with_successors`, frame i+1 is decoded beside each frame i (frame i
    itself when i is the last). Pass `info` from an earlier `probe` to skip
    probing again. Raises DecodeError when the video cannot give a frame.
    """
    wanted = check_indices(indices)
    check_choices(decoder, rotation)
    with local_file(uri) as path:
        if info is None:
            info = probe_local(path, uri=uri)
        return decode_local(path, info, wanted, decoder, rotation, with_successors, name=uri)


def decode_video(
    uri: str,
    sampling: Sampling,
    *,
    decoder: DecoderChoice = "auto",
    rotation: RotationChoice = "apply",
    with_successors: bool = False,
    rng: Rng | None = None,
    progress: Callable[[str], None] | None = None,
) -> Clip:
    """Probe `uri`, pick frames by `sampling` (a spec, its text, or indices), decode them.

    One fetch of a remote file serves both steps. `rng` is passed to
    `sample_indices` (random TSN offsets). `progress` is called with "probe",
    then "decode:decord" or "decode:pyav" as each step starts, so a caller
    watching from another process knows where a hang or crash happened.
    """
    spec, wanted = check_sampling(sampling)
    check_choices(decoder, rotation)
    report = progress or (lambda stage: None)
    report("probe")
    with local_file(uri) as path:
        info = probe_local(path, uri=uri)
        if spec is not None:
            wanted = sample_indices(spec, info.timestamps_s, rng=rng)
        return decode_local(
            path, info, wanted, decoder, rotation, with_successors, name=uri, progress=report
        )


def decode_local(
    path: str,
    info: VideoInfo,
    indices: Sequence[int],
    decoder: DecoderChoice,
    rotation: RotationChoice,
    with_successors: bool,
    *,
    name: str,
    progress: Callable[[str], None] | None = None,
) -> Clip:
    """The decoding step of `decode_frames` on a local file already probed."""
    report = progress or (lambda stage: None)
    kept = [i for i in indices if i < info.num_frames]
    if len(kept) < len(indices):
        logger.info(
            "%s: %d indices past its %d frames dropped",
            name,
            len(indices) - len(kept),
            info.num_frames,
        )
    if not kept:
        raise DecodeError(
            "decode", "no_frames", f"{name}: no wanted frame among its {info.num_frames} frames"
        )
    quarter_turns = 0
    if rotation == "apply":
        if info.rotation_degrees % 90:
            raise DecodeError(
                "decode",
                "unsupported_rotation",
                f"{name}: display rotation {info.rotation_degrees} degrees is not a multiple of 90",
            )
        quarter_turns = info.rotation_degrees // 90
    wanted = (
        sorted(set(kept) | {i + 1 for i in kept if i + 1 < info.num_frames})
        if with_successors
        else kept
    )

    used, fallback_reason = decoder, None
    decoded: DecodedFrames | None = None
    if decoder in ("auto", "decord"):
        report("decode:decord")
        try:
            decoded = decode_decord(path, info, wanted, name=name)
            used = "decord"
        except DecodeError as error:
            if decoder == "decord":
                raise
            fallback_reason = error.message
            logger.info("%s: decord failed, decoding with PyAV: %s", name, error.message)
    if decoded is None:
        report("decode:pyav")
        decoded = decode_pyav(path, info, wanted, name=name)
        used = "pyav"
    return _clip(decoded, kept, info, used, quarter_turns, with_successors, fallback_reason, name)


def _clip(
    decoded: DecodedFrames,
    kept: Sequence[int],
    info: VideoInfo,
    decoder: str,
    quarter_turns: int,
    with_successors: bool,
    fallback_reason: str | None,
    name: str,
) -> Clip:
    row_of = {index: row for row, index in enumerate(decoded.indices)}
    sampled = [i for i in kept if i in row_of]
    if not sampled:
        raise DecodeError("decode", "no_frames", f"{name}: none of the wanted frames decoded")
    rows = [row_of[i] for i in sampled]
    # Without successors the backend's batch usually is the clip: no copy then.
    whole = rows == list(range(len(decoded.indices)))
    frames = decoded.frames if whole else decoded.frames[rows]
    frames = _rotate(frames, quarter_turns)  # (N, H, W, 3)
    successor_frames = successor_indices = None
    if with_successors:
        # The last frame (or one whose successor did not decode) is its own successor: zero flow.
        nexts = [i + 1 if i + 1 in row_of else i for i in sampled]
        successor_frames = _rotate(decoded.frames[[row_of[i] for i in nexts]], quarter_turns)
        successor_indices = np.asarray(nexts, dtype=np.int64)
    indices = np.asarray(sampled, dtype=np.int64)
    return Clip(
        frames=frames,
        frame_indices=indices,
        timestamps_s=info.timestamps_s[indices],
        decoder=decoder,
        rotation_degrees=quarter_turns * 90,
        info=info,
        successor_frames=successor_frames,
        successor_indices=successor_indices,
        num_decoded_frames=decoded.num_decoded_frames,
        fallback_reason=fallback_reason,
    )


def _rotate(frames: np.ndarray, quarter_turns: int) -> np.ndarray:
    if quarter_turns % 4 == 0:
        return frames
    # np.rot90 turns counter-clockwise, as the display matrix angle does.
    return np.ascontiguousarray(np.rot90(frames, quarter_turns, axes=(1, 2)))


def check_indices(indices: Sequence[int]) -> list[int]:
    """`indices` as a list of ints; ValueError unless they are sorted, distinct and >= 0."""
    if isinstance(indices, (str, bytes)):
        raise TypeError(f"indices must be a sequence of ints, got {type(indices).__name__}")
    values = list(indices)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"indices must be ints, got {value!r}")
    values = [int(v) for v in values]
    if not values:
        raise ValueError("indices is empty")
    if values[0] < 0:
        raise ValueError(f"indices must be >= 0, got {values[0]}")
    if any(b <= a for a, b in pairwise(values)):
        raise ValueError(f"indices must be sorted and distinct, got {values}")
    return values


def check_sampling(sampling: Sampling) -> tuple[SamplingSpec | None, list[int]]:
    """(spec, []) for a spec or its text, (None, indices) for indices; errors for anything else."""
    if isinstance(sampling, SamplingSpec):
        return sampling, []
    if isinstance(sampling, str):
        return parse_sampling(sampling), []
    return None, check_indices(sampling)


def check_choices(decoder: str, rotation: str) -> None:
    if decoder not in DECODERS:
        raise ValueError(f"decoder {decoder!r} is not one of {', '.join(DECODERS)}")
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation {rotation!r} is not one of {', '.join(ROTATIONS)}")
