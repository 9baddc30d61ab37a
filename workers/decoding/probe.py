"""Probe a video by demuxing it with PyAV: the frames that really exist, their timestamps, keyframes, rotation.

Headers lie (a cut-off file still claims its full frame count, and decord can
hang asking for frames that are not there), so counts and timestamps come
from the packets themselves. Only the first frame is decoded, for the
display-matrix rotation FFmpeg attaches to decoded frames.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import numpy as np

from workers.decoding.results import DecodeError, Stage, VideoInfo
from workers.decoding.source import local_file

logger = logging.getLogger(__name__)

# Packets fed to the decoder while looking for the first frame (its rotation):
# enough for any B-frame or frame-thread delay, bounded for files that never decode.
MAX_PACKETS_FOR_FIRST_FRAME = 64


def probe(uri: str) -> VideoInfo:
    """What `uri` (a local path or fsspec URL) holds; DecodeError when it is not a readable video."""
    with local_file(uri) as path:
        return probe_local(path, uri=uri)


def probe_local(path: str, *, uri: str | None = None) -> VideoInfo:
    """`probe` of a local file; `uri` names the video in error messages."""
    name = uri or path
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as error:
        raise av_decode_error(error, "probe", f"cannot open {name}") from error
    with container:
        # Cover art is a one-picture "video" stream beside audio: not a video.
        videos = [
            s
            for s in container.streams.video
            if not s.disposition & av.stream.Disposition.attached_pic
        ]
        if not videos:
            kinds = ", ".join(sorted({_kind(s) for s in container.streams})) or "none"
            raise DecodeError(
                "probe", "no_video_stream", f"{name} has no video stream (streams: {kinds})"
            )
        return _demux(container, videos[0], name)


def _kind(stream: av.stream.Stream) -> str:
    if stream.type == "video" and stream.disposition & av.stream.Disposition.attached_pic:
        return "cover art"
    return stream.type


def av_decode_error(error: av.error.FFmpegError, stage: Stage, doing: str) -> DecodeError:
    """The DecodeError for a PyAV error raised while `doing` (e.g. "cannot open x.mp4")."""
    detail = error.strerror or type(error).__name__
    if isinstance(error.log, tuple) and len(error.log) == 3:
        # FFmpeg's own last line ("moov atom not found"), there when PyAV logging is on.
        detail = f"{detail} ({error.log[1]}: {str(error.log[2]).strip()})"
    if isinstance(error, av.error.FileNotFoundError):
        error_type = "not_found"
    elif isinstance(error, av.error.PermissionError):
        error_type = "permission_denied"
    elif isinstance(error, av.error.IsADirectoryError):
        error_type = "not_a_file"
    elif isinstance(error, av.error.InvalidDataError):
        error_type = "invalid_data" if stage == "probe" else "decoder_error"
    elif isinstance(error, OSError):
        error_type = "io_error"
    else:
        error_type = "decoder_error"
    return DecodeError(stage, error_type, f"{doing}: {detail}")


def _demux(container: av.container.InputContainer, stream: av.video.VideoStream, name: str):
    time_base = stream.time_base or Fraction(1, 1)
    stamps: list[int] = []
    keyframe_stamps: set[int] = set()
    last_duration = 0
    rotation: int | None = None
    packets_tried = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                # The final flush packet, and packets an edit list cuts: no frame of ours.
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None:
                continue
            stamps.append(stamp)
            last_duration = packet.duration or 0
            if packet.is_keyframe:
                keyframe_stamps.add(stamp)
            if rotation is None and packets_tried < MAX_PACKETS_FOR_FIRST_FRAME:
                packets_tried += 1
                rotation = _first_frame_rotation(stream, packet)
    except av.error.FFmpegError as error:
        if not stamps:
            raise av_decode_error(error, "probe", f"cannot demux {name}") from error
        # A cut-off or damaged tail: the frames before it are still the video.
        logger.warning("demuxing %s stopped after %d packets: %s", name, len(stamps), error)
    if rotation is None:
        rotation = _first_frame_rotation(stream, None)  # flush frames the decoder held back
    if not stamps:
        raise DecodeError("probe", "no_frames", f"{name} has no video packets with timestamps")
    pts = np.unique(np.asarray(stamps, dtype=np.int64))  # sorted: presentation order
    if len(pts) < len(stamps):
        logger.warning("%s: %d packets share a timestamp", name, len(stamps) - len(pts))
    timestamps_s = pts.astype(np.float64) * float(time_base)
    keyframes = np.searchsorted(pts, np.asarray(sorted(keyframe_stamps), dtype=np.int64))
    if len(keyframes) == 0 or keyframes[0] != 0:
        # Decoding from the very start always works, whatever the flags say.
        keyframes = np.concatenate([[0], keyframes]).astype(np.int64)
    rate = stream.average_rate or stream.guessed_rate
    if rate:
        average_fps = float(rate)
    elif len(pts) > 1:
        average_fps = (len(pts) - 1) / float(timestamps_s[-1] - timestamps_s[0])
    else:
        average_fps = 0.0
    last_frame_s = float(last_duration * time_base) if last_duration else 0.0
    if not last_frame_s and average_fps:
        last_frame_s = 1.0 / average_fps
    return VideoInfo(
        stream_index=stream.index,
        num_frames=len(pts),
        timestamps_s=timestamps_s,
        pts=pts,
        time_base=time_base,
        keyframe_indices=keyframes,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        average_fps=average_fps,
        duration_s=float(timestamps_s[-1] - timestamps_s[0]) + last_frame_s,
        codec=stream.codec_context.codec.canonical_name,
        rotation_degrees=rotation or 0,
        header_num_frames=stream.frames or 0,
    )


def _first_frame_rotation(stream: av.video.VideoStream, packet: av.Packet | None) -> int | None:
    """The display rotation of the first frame `packet` completes, or None while none has."""
    try:
        frames = stream.decode(packet)
    except av.error.FFmpegError:
        return None  # a damaged packet: try the next one
    if not frames:
        return None
    return round(frames[0].rotation) % 360
