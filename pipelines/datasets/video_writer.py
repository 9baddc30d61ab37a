"""Encode RGB frames into a real video file with PyAV (H.264, MPEG-4, VP9, AV1, MJPEG).

Used by the synthetic dataset and by tests, which need real encoded files
rather than arrays: decoders are where real pipelines break.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class Codec:
    encoder: str
    container: str
    pix_fmt: str = "yuv420p"
    options: tuple[tuple[str, str], ...] = ()


# Name -> how to write it. Quality options keep synthetic frames close to the
# rendered ones so that labels stay visible after compression.
CODECS = {
    "h264": Codec("libx264", "mp4", options=(("crf", "12"), ("preset", "veryfast"))),
    "mpeg4": Codec("mpeg4", "mp4", options=(("qscale", "2"),)),
    "vp9": Codec(
        "libvpx-vp9",
        "webm",
        options=(("crf", "20"), ("b", "0"), ("deadline", "realtime"), ("cpu-used", "8")),
    ),
    "av1": Codec("libsvtav1", "mp4", options=(("crf", "20"), ("preset", "12"))),
    "mjpeg": Codec("mjpeg", "avi", pix_fmt="yuvj420p", options=(("q:v", "2"),)),
}


def extension(codec: str) -> str:
    """The file suffix (without dot) that `codec` is written with."""
    return _codec(codec).container


def write_video(
    path: str | Path,
    frames: np.ndarray,
    *,
    fps: float,
    codec: str = "h264",
    timestamps_s: list[float] | None = None,
    gop: int | None = None,
    rotation_degrees: int = 0,
) -> None:
    """Write `frames` (T, H, W, 3) uint8 RGB to `path`.

    `timestamps_s` gives each frame its own presentation time (variable frame
    rate); otherwise frames are 1/fps apart. `gop` sets the keyframe interval.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if len(frames) == 0:
        raise ValueError("frames is empty")
    if fps <= 0:
        raise ValueError(f"fps ({fps}) must be > 0")
    if timestamps_s is not None and len(timestamps_s) != len(frames):
        raise ValueError(f"timestamps_s has {len(timestamps_s)} entries for {len(frames)} frames")
    spec = _codec(codec)
    if spec.encoder == "libsvtav1":
        # SVT-AV1 prints a banner per video at its default log level; keep errors only.
        os.environ.setdefault("SVT_LOG", "1")
    height, width = frames.shape[1:3]
    if spec.pix_fmt.startswith("yuv") and (height % 2 or width % 2):
        raise ValueError(f"frame size {width}x{height} must be even for {codec}")
    rate = Fraction(fps).limit_denominator(1000)
    # A fine time base lets variable-rate timestamps be represented exactly enough.
    # (60000 rather than 90000: mpeg4 refuses time-base denominators above 65535.)
    time_base = Fraction(1, 60000) if timestamps_s is not None else 1 / rate
    with av.open(str(path), "w") as container:
        stream = container.add_stream(spec.encoder, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, spec.pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if rotation_degrees:
            stream.set_display_rotation(rotation_degrees)
        # One encoder thread: x264 and mpeg4 output depends on the thread count,
        # and the same seed must give the same bytes on every machine.
        stream.codec_context.thread_count = 1
        options = dict(spec.options)
        if gop is not None:
            stream.codec_context.gop_size = gop
            if spec.encoder == "libx264":
                options["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        stream.options = options
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            seconds = timestamps_s[index] if timestamps_s is not None else index / rate
            frame.pts = round(Fraction(seconds).limit_denominator(10**6) / time_base)
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _codec(name: str) -> Codec:
    if name not in CODECS:
        raise ValueError(f"codec {name!r} is not one of {', '.join(CODECS)}")
    return CODECS[name]
