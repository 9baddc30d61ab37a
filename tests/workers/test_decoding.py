import errno
import os
import re
import signal
import threading
import time

import av
import fsspec
import numpy as np
import pytest

from pipelines.datasets.video_writer import extension, write_video
from workers.decoding import (
    Clip,
    DecodeError,
    DecodeFailure,
    InProcessDecoder,
    IsolatedDecoder,
    decode_frames,
    decode_video,
    probe,
)

# Each frame carries its index in binary: bit b is an 8x8 block, white when set,
# in two rows of four blocks at the top left. Flat blocks survive compression.
BLOCK = 8
CODE_BITS = 8


def coded_frames(num_frames, height=32, width=32):
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    for index in range(num_frames):
        for bit in range(CODE_BITS):
            if index >> bit & 1:
                row, col = divmod(bit, 4)
                frames[index, row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK] = (
                    255
                )
    return frames


def read_codes(frames):
    codes = []
    for frame in frames:
        code = 0
        for bit in range(CODE_BITS):
            row, col = divmod(bit, 4)
            block = frame[row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK]
            code |= int(block.mean() > 127) << bit
        codes.append(code)
    return codes


def remux(src, dst, *, faststart=False):
    """Copy `src`'s packets to `dst` unchanged, moving the index to the front."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(src)) as source, av.open(str(dst), "w", options=options) as target:
        video = source.streams.video[0]
        stream = target.add_stream_from_template(video)
        for packet in source.demux(video):
            if packet.dts is None:
                continue
            packet.stream = stream
            target.mux(packet)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    paths = {}
    for codec in ("h264", "mpeg4", "vp9", "mjpeg", "av1"):
        paths[codec] = root / f"{codec}.{extension(codec)}"
        write_video(paths[codec], coded_frames(24), fps=12, codec=codec, gop=6)
    paths["long"] = root / "long.mp4"
    write_video(paths["long"], coded_frames(240), fps=24, gop=12)
    paths["vfr"] = root / "vfr.mp4"
    write_video(paths["vfr"], coded_frames(8), fps=12, timestamps_s=VFR_TIMES)
    paths["landscape"] = root / "landscape.mp4"
    write_video(paths["landscape"], coded_frames(12, height=32, width=48), fps=12)
    for degrees in (90, 180, 270, 45):
        paths[f"rotated{degrees}"] = root / f"rotated{degrees}.mp4"
        write_video(
            paths[f"rotated{degrees}"],
            coded_frames(12, height=32, width=48),
            fps=12,
            rotation_degrees=degrees,
        )
    return {name: str(path) for name, path in paths.items()}


VFR_TIMES = [0.0, 0.1, 0.15, 0.4, 0.45, 0.5, 1.0, 1.05]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, videos):
    root = tmp_path_factory.mktemp("bad")
    (root / "empty.mp4").write_bytes(b"")
    (root / "random.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (root / "notes.mp4").write_text("this is not a video\n" * 20)
    with open(videos["h264"], "rb") as source:
        data = source.read()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    write_audio(root / "audio.m4a")
    write_audio(root / "cover.mp4", cover_art=True)
    invalid = "cannot open {}: Invalid data found when processing input"
    expected = {
        "empty.mp4": ("empty_file", "{} is empty (0 bytes)"),
        "random.mp4": ("invalid_data", invalid),
        "notes.mp4": ("invalid_data", invalid),
        "truncated.mp4": ("invalid_data", invalid),
        "audio.m4a": ("no_video_stream", "{} has no video stream (streams: audio)"),
        "cover.mp4": ("no_video_stream", "{} has no video stream (streams: audio, cover art)"),
        "missing.mp4": ("not_found", "{} does not exist"),
    }
    return {
        name: (error_type, str(root / name), message.format(root / name))
        for name, (error_type, message) in expected.items()
    }


def write_audio(path, *, cover_art=False):
    """Half a second of silence in AAC; with `cover_art`, a picture stream beside it as music files have."""
    with av.open(str(path), "w") as container:
        audio = container.add_stream("aac", rate=8000)
        if cover_art:
            picture = container.add_stream("mjpeg", rate=1)
            picture.width, picture.height, picture.pix_fmt = 16, 16, "yuvj420p"
            picture.disposition = av.stream.Disposition.attached_pic
            image = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            image.pts = 0
            for packet in [*picture.encode(image), *picture.encode()]:
                container.mux(packet)
        sound = av.AudioFrame.from_ndarray(
            np.zeros((1, 4096), np.float32), format="fltp", layout="mono"
        )
        sound.rate = 8000
        for packet in [*audio.encode(sound), *audio.encode()]:
            container.mux(packet)


def test_probe_counts_timestamps_and_keyframes(videos):
    info = probe(videos["h264"])
    assert info.num_frames == 24
    np.testing.assert_allclose(info.timestamps_s, np.arange(24) / 12, atol=1e-9)
    assert info.keyframe_indices.tolist() == [0, 6, 12, 18]
    assert (info.width, info.height, info.codec, info.rotation_degrees) == (32, 32, "h264", 0)
    assert info.average_fps == 12.0
    assert info.duration_s == pytest.approx(2.0)
    assert info.header_num_frames == 24


def test_probe_reads_variable_frame_rate_timestamps(videos):
    info = probe(videos["vfr"])
    assert info.num_frames == 8
    np.testing.assert_allclose(info.timestamps_s, VFR_TIMES, atol=1e-6)


@pytest.mark.parametrize("codec", ["h264", "mpeg4", "vp9", "mjpeg"])
def test_decord_and_pyav_decode_the_same_frames(videos, codec):
    indices = [0, 5, 6, 13, 23]
    by_decord = decode_frames(videos[codec], indices, decoder="decord")
    by_pyav = decode_frames(videos[codec], indices, decoder="pyav")
    for clip, name in ((by_decord, "decord"), (by_pyav, "pyav")):
        assert clip.decoder == name
        assert clip.frame_indices.tolist() == indices
        assert read_codes(clip.frames) == indices
        # WebM stores milliseconds.
        np.testing.assert_allclose(clip.timestamps_s, np.asarray(indices) / 12, atol=1e-3)
    difference = np.abs(by_decord.frames.astype(int) - by_pyav.frames.astype(int))
    assert difference.mean() < 2.0  # the same bitstream; only colour conversion may differ


def test_variable_frame_rate_is_sampled_by_time(videos):
    clip = decode_video(videos["vfr"], "fps:4")
    assert clip.frame_indices.tolist() == [0, 3, 5, 6]
    assert read_codes(clip.frames) == [0, 3, 5, 6]
    np.testing.assert_allclose(clip.timestamps_s, [0.0, 0.4, 0.5, 1.0], atol=1e-6)


def test_av1_falls_back_to_pyav_in_auto(videos):
    clip = decode_video(videos["av1"], "uniform:4")
    assert clip.decoder == "pyav"
    assert clip.fallback_reason.startswith(f"decord cannot decode {videos['av1']}")
    assert read_codes(clip.frames) == [3, 9, 15, 21]
    with pytest.raises(DecodeError, match="^decord cannot decode") as caught:
        decode_video(videos["av1"], "uniform:4", decoder="decord")
    assert (caught.value.stage, caught.value.error_type) == ("decode", "decoder_error")


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_successors_come_from_the_same_decode(videos, decoder):
    clip = decode_frames(videos["h264"], [2, 7, 23], decoder=decoder, with_successors=True)
    assert clip.successor_indices.tolist() == [3, 8, 23]  # the last frame is its own successor
    assert read_codes(clip.successor_frames) == [3, 8, 23]
    assert read_codes(clip.frames) == [2, 7, 23]


def test_pyav_seeks_so_cost_follows_frames_asked_for(videos):
    every = decode_video(videos["long"], "all", decoder="pyav")
    assert every.num_decoded_frames == 240
    assert read_codes(every.frames) == list(range(240))
    # Frames 30, 90, 150, 210 sit 6 after keyframes 24, 84, 144, 204: 7 decoded each.
    few = decode_video(videos["long"], "uniform:4", decoder="pyav")
    assert read_codes(few.frames) == [30, 90, 150, 210]
    assert few.num_decoded_frames == 28
    # Never worse than one pass: frames close together share the decode between them.
    near = decode_frames(videos["long"], [1, 5, 11, 13], decoder="pyav")
    assert read_codes(near.frames) == [1, 5, 11, 13]
    assert near.num_decoded_frames == 14


def test_indices_past_the_end_are_dropped(videos):
    clip = decode_frames(videos["h264"], [22, 23, 24, 90], decoder="pyav")
    assert clip.frame_indices.tolist() == [22, 23]
    with pytest.raises(DecodeError, match=r"no wanted frame among its 24 frames$") as caught:
        decode_frames(videos["h264"], [24, 25])
    assert caught.value.error_type == "no_frames"


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_rotation_from_the_display_matrix_is_applied_after_decoding(videos, decoder):
    info = probe(videos["rotated90"])
    assert info.rotation_degrees == 90
    turned = decode_frames(videos["rotated90"], [1, 2, 3], decoder=decoder)
    plain = decode_frames(videos["rotated90"], [1, 2, 3], decoder=decoder, rotation="ignore")
    assert plain.frames.shape == (3, 32, 48, 3) and plain.rotation_degrees == 0
    assert turned.frames.shape == (3, 48, 32, 3) and turned.rotation_degrees == 90
    # 90 degrees counter-clockwise: the top-left block (bit 0, set in odd frames) ends bottom-left.
    corner = turned.frames[:, -BLOCK:, :BLOCK].reshape(3, -1).mean(axis=1)
    assert (corner > 200).tolist() == [True, False, True]
    np.testing.assert_array_equal(turned.frames, np.rot90(plain.frames, 1, axes=(1, 2)))
    assert read_codes(plain.frames) == [1, 2, 3]


@pytest.mark.parametrize(("degrees", "used"), [(90, "decord"), (180, "pyav"), (270, "decord")])
def test_both_decoders_rotate_identically(videos, degrees, used):
    path = videos[f"rotated{degrees}"]
    assert probe(path).rotation_degrees == degrees
    stored = decode_frames(path, [4, 5], decoder="pyav", rotation="ignore").frames
    clip = decode_frames(path, [4, 5])  # auto: decord gets 180 degrees wrong, so PyAV does it
    assert (clip.decoder, clip.rotation_degrees) == (used, degrees)
    expected = np.rot90(stored, degrees // 90, axes=(1, 2))
    assert clip.frames.shape == expected.shape
    assert np.abs(clip.frames.astype(int) - expected.astype(int)).mean() < 2.0
    if degrees == 180:
        with pytest.raises(DecodeError, match="180-degree display rotation$"):
            decode_frames(path, [4], decoder="decord")


def test_rotations_off_the_right_angles_are_refused_or_ignored(videos):
    path = videos["rotated45"]
    with pytest.raises(
        DecodeError, match="display rotation 45 degrees is not a multiple of 90$"
    ) as caught:
        decode_frames(path, [0])
    assert caught.value.error_type == "unsupported_rotation"
    clip = decode_frames(path, [0, 1], rotation="ignore")
    assert (clip.decoder, clip.frames.shape) == ("pyav", (2, 32, 48, 3))
    assert read_codes(clip.frames) == [0, 1]


@pytest.mark.parametrize(
    "name",
    [
        "empty.mp4",
        "random.mp4",
        "notes.mp4",
        "truncated.mp4",
        "audio.m4a",
        "cover.mp4",
        "missing.mp4",
    ],
)
def test_bad_inputs_raise_decode_errors_with_pinned_types(bad_inputs, name):
    error_type, path, message = bad_inputs[name]
    # FFmpeg's last log line is appended when PyAV logging is on (a process-wide setting).
    with pytest.raises(DecodeError, match=rf"^{re.escape(message)}( \(.+\))?$") as caught:
        decode_video(path, "uniform:4")
    assert (caught.value.stage, caught.value.error_type) == ("probe", error_type)


def test_damaged_packets_are_skipped_not_replaced(tmp_path):
    path = tmp_path / "noisy.mp4"
    frames = coded_frames(48)
    frames[:, 16:] = np.random.default_rng(0).integers(0, 255, (48, 16, 32, 3), dtype=np.uint8)
    write_video(path, frames, fps=12, gop=12)
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size, p.pts) for p in container.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    broken_pts = set()
    for pos, size, pts in packets[13:20]:  # decode order: frames in the second GOP
        data[pos : pos + size] = np.random.default_rng(pos).bytes(size)
        broken_pts.add(pts)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    clip = decode_video(str(damaged), "all", with_successors=True)
    assert clip.decoder == "pyav"  # decord refuses the damaged packets
    assert clip.fallback_reason is not None
    info = clip.info
    decoded = clip.frame_indices.tolist()
    assert set(decoded).isdisjoint(
        int(i) for i in np.flatnonzero(np.isin(info.pts, list(broken_pts)))
    )
    assert len(decoded) == 48 - len(broken_pts)
    # No frame stands in for another: where the code survives, it is the frame's own index.
    assert read_codes(clip.frames[:12]) == decoded[:12]


def test_a_cut_off_file_with_its_index_first_decodes_what_is_there(tmp_path, videos):
    whole = tmp_path / "faststart.mp4"
    remux(videos["long"], whole, faststart=True)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    info = probe(str(cut))
    assert info.header_num_frames == 240
    assert 0 < info.num_frames < 240  # counted from the packets, not the header
    clip = decode_video(str(cut), "all")
    assert read_codes(clip.frames) == clip.frame_indices.tolist()
    assert clip.frame_indices[-1] < info.num_frames


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_fsspec_urls_are_fetched_once_and_decoded(videos, decoder):
    url = f"memory://decoding-test/{decoder}/clip.mp4"
    with open(videos["h264"], "rb") as source, fsspec.open(url, "wb") as target:
        target.write(source.read())
    assert probe(url).num_frames == 24
    clip = decode_video(url, "stride:8", decoder=decoder)
    assert read_codes(clip.frames) == [0, 8, 16]
    with pytest.raises(DecodeError, match="^memory://decoding-test/nothing.mp4 does not exist$"):
        probe("memory://decoding-test/nothing.mp4")


def test_argument_errors_are_raised_not_returned(videos):
    with pytest.raises(ValueError, match="^decoder 'ffmpeg' is not one of auto, decord, pyav$"):
        decode_frames(videos["h264"], [0], decoder="ffmpeg")
    with pytest.raises(ValueError, match="^rotation 'auto' is not one of apply, ignore$"):
        decode_frames(videos["h264"], [0], rotation="auto")
    with pytest.raises(ValueError, match=r"^indices must be sorted and distinct, got \[3, 1\]$"):
        decode_frames(videos["h264"], [3, 1])
    with pytest.raises(ValueError, match="^indices must be >= 0, got -1$"):
        decode_frames(videos["h264"], [-1, 2])
    with pytest.raises(ValueError, match="^sampling 'uniform:0': K must be > 0$"):
        InProcessDecoder().decode(videos["h264"], "uniform:0")
    with pytest.raises(ValueError, match=r"^timeout_s \(0\) must be > 0$"):
        IsolatedDecoder(timeout_s=0)
    with pytest.raises(ValueError, match=r"^error_type 'oops' is not one of not_found, "):
        DecodeFailure(stage="probe", error_type="oops", message="", attempts=1)


# --- isolation: one child process for the tests that do not kill it ---------------------


@pytest.fixture(scope="module")
def isolated():
    with IsolatedDecoder(timeout_s=60, max_videos_per_process=1000) as decoder:
        yield decoder


def test_isolated_decode_matches_in_process(isolated, videos):
    here = InProcessDecoder().decode(videos["h264"], "segments:2,2", with_successors=True, seed=5)
    there = isolated.decode(videos["h264"], "segments:2,2", with_successors=True, seed=5)
    assert isinstance(there, Clip) and there.decoder == "decord"
    np.testing.assert_array_equal(there.frame_indices, here.frame_indices)
    np.testing.assert_array_equal(there.frames, here.frames)
    np.testing.assert_array_equal(there.successor_frames, here.successor_frames)
    np.testing.assert_array_equal(there.info.timestamps_s, here.info.timestamps_s)
    assert there.frames.flags.writeable and there.frames.flags.c_contiguous


def test_isolated_falls_back_and_takes_indices(isolated, videos):
    clip = isolated.decode(videos["av1"], [1, 2, 3], rotation="ignore")
    assert (clip.decoder, read_codes(clip.frames)) == ("pyav", [1, 2, 3])


def test_isolated_returns_failures_for_bad_inputs(isolated, bad_inputs):
    pid = isolated.child_pid
    for error_type, path, message in bad_inputs.values():
        failure = isolated.decode(path, "uniform:4")
        assert (failure.stage, failure.error_type, failure.attempts) == ("probe", error_type, 1)
        assert re.fullmatch(rf"{re.escape(message)}( \(.+\))?", failure.message)
    assert isolated.child_pid == pid  # ordinary failures do not cost the process


def test_isolated_raises_for_its_own_bad_arguments(isolated, videos):
    with pytest.raises(ValueError, match="^sampling 'fps:-1': R must be a finite number > 0$"):
        isolated.decode(videos["h264"], "fps:-1")
    with pytest.raises(ValueError, match="^decoder 'gpu' is not one of auto, decord, pyav$"):
        isolated.decode(videos["h264"], "all", decoder="gpu")
    with pytest.raises(TypeError, match="^seed must be an int or None, got 1.5$"):
        isolated.decode(videos["h264"], "all", seed=1.5)


def test_child_is_replaced_after_max_videos(videos):
    with IsolatedDecoder(max_videos_per_process=2) as decoder:
        started, alive = [], []
        for _ in range(5):
            assert isinstance(decoder.decode(videos["mjpeg"], "uniform:2"), Clip)
            started.append(decoder.num_processes_started)
            alive.append(decoder.child_pid is not None)
    assert started == [1, 1, 2, 2, 3]
    assert alive == [True, False, True, False, True]  # stopped after its second video


def test_a_hanging_video_times_out_and_the_decoder_goes_on(tmp_path, videos):
    fifo = tmp_path / "hang.mp4"
    os.mkfifo(fifo)  # open() blocks until a writer comes: a real hang in C, like a stuck mount
    with IsolatedDecoder(timeout_s=2, max_attempts=2) as decoder:
        failure = decoder.decode(str(fifo), "uniform:4")
        assert isinstance(failure, DecodeFailure)
        assert (failure.stage, failure.error_type, failure.attempts) == ("probe", "timeout", 2)
        assert failure.message == (
            f"{fifo}: no result within 2 s (during probe); decoding process killed"
        )
        clip = decoder.decode(videos["h264"], "uniform:4")
        assert read_codes(clip.frames) == [3, 9, 15, 21]
        assert decoder.num_processes_started == 3


def test_a_crashing_decode_is_a_failure_and_the_decoder_goes_on(tmp_path, videos):
    fifo = tmp_path / "crash.mp4"
    os.mkfifo(fifo)
    results = {}
    with IsolatedDecoder(timeout_s=60, max_attempts=1) as decoder:
        worker = threading.Thread(
            target=lambda: results.update(out=decoder.decode(str(fifo), "all"))
        )
        worker.start()
        writer = _open_writer_once_read(fifo)  # the child now blocks reading the empty pipe
        os.kill(decoder.child_pid, signal.SIGSEGV)
        worker.join(timeout=60)
        os.close(writer)
        failure = results["out"]
        assert (failure.stage, failure.error_type, failure.attempts) == ("probe", "crash", 1)
        assert re.fullmatch(
            rf"{re.escape(str(fifo))}: decoding process died \(killed by SIGSEGV\) during probe",
            failure.message,
        )
        assert isinstance(decoder.decode(videos["vp9"], "uniform:2"), Clip)


def _open_writer_once_read(path, limit_s=30.0):
    deadline = time.monotonic() + limit_s
    while True:
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:  # ENXIO: nobody has the pipe open for reading yet
            if error.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
