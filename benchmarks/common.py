"""Shared pieces of the benchmarks: the machine and its load, timing, peak memory of a process tree, videos.

Benchmark videos are rendered and encoded once into a cache folder named by their settings,
so a second `make bench` measures instead of encoding again.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import multiprocessing
import os
import platform
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.datasets import video_writer

log = logging.getLogger(__name__)

# Part of the cache folder's name: bump it when render_frames changes, so old videos are not reused.
RENDER_VERSION = 1
# PSS needs Linux 4.14+; without it only RSS is reported.
_HAS_SMAPS_ROLLUP = os.path.exists("/proc/self/smaps_rollup")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # units of utime and stime in /proc/<pid>/stat
# Pixels (frames x width x height) to encode before encoding in several processes pays.
PARALLEL_ENCODE_PIXELS = 100_000_000
LIBRARIES = ("torch", "torchvision", "av", "decord", "ray", "numpy", "pyarrow")


# ---------------------------------------------------------------- the machine


def usable_cores() -> int:
    """The cores this process may run on (its affinity), which is what `nproc` reports."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages, rounded for reports."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def machine_info() -> dict:
    """Cores, memory, CPU model, load and library versions: what a reader needs to weigh the numbers."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cores": usable_cores(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": load_average(),
        "versions": versions,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ---------------------------------------------------------------- timing


@dataclass(frozen=True)
class Rate:
    """`num_items` done in `seconds` of wall time, using `cpu_seconds` of CPU time (all threads)."""

    num_items: int
    seconds: float
    cpu_seconds: float | None = None

    @property
    def per_second(self) -> float:
        return self.num_items / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_item(self) -> float | None:
        """CPU milliseconds per item: unlike the wall rate, barely moved by other work on the box."""
        if self.cpu_seconds is None or self.num_items == 0:
            return None
        return 1000.0 * self.cpu_seconds / self.num_items


def repeat_for(
    step: Callable[[], int], *, min_seconds: float, min_calls: int = 1, warmup_calls: int = 1
) -> Rate:
    """Calls `step` (which returns the items it did) until both `min_seconds` and `min_calls` are met.

    The first `warmup_calls` calls are not counted: they pay for lazy initialisation
    (allocator, thread pools, caches) that a long job pays once.
    """
    if min_seconds < 0:
        raise ValueError(f"min_seconds ({min_seconds}) must be >= 0")
    if min_calls < 1:
        raise ValueError(f"min_calls ({min_calls}) must be >= 1")
    for _ in range(warmup_calls):
        step()
    num_items = num_calls = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    while True:
        num_items += step()
        num_calls += 1
        seconds = time.perf_counter() - started
        if num_calls >= min_calls and seconds >= min_seconds:
            cpu_seconds = time.process_time() - cpu_started  # every thread of this process
            return Rate(num_items=num_items, seconds=seconds, cpu_seconds=cpu_seconds)


def harmonic_bound(*rates: float) -> float:
    """The rate of stages that run one after another on the same cores: 1 / Σ 1/rate.

    Stages that share the cores cannot overlap into more than this; it is what a
    pipeline of them can reach at best.
    """
    if not rates or any(not (math.isfinite(r) and r > 0) for r in rates):
        raise ValueError(f"rates {rates} must be finite and > 0")
    return 1.0 / sum(1.0 / r for r in rates)


# ---------------------------------------------------------------- memory of a process tree


@dataclass(frozen=True)
class MemoryPeak:
    """The largest summed memory of a process and its descendants over a run."""

    peak_rss_bytes: int  # RSS summed over the tree: counts pages shared between processes twice
    # PSS summed: each shared page split between its users; None where /proc has no smaps_rollup.
    peak_pss_bytes: int | None
    max_processes: int  # the most processes the tree had at one sample
    num_samples: int


@dataclass(frozen=True)
class TreeSample:
    """A process tree at one moment, read from /proc (Linux; psutil is only vendored by Ray)."""

    time_s: float  # time.time(): one clock for every process, and for file modification times
    rss_bytes: int
    pss_bytes: int | None  # None where /proc has no smaps_rollup
    num_processes: int
    cpu_s: dict[int, float]  # pid -> CPU seconds (user + system) it has used so far


def sample_tree(pid: int, *, include_self: bool = True) -> TreeSample:
    """Memory and CPU time of the processes below `pid` (and `pid` itself with `include_self`)."""
    table = _process_table()
    members = _descendants(table, pid)
    if include_self and pid in table:
        members.insert(0, pid)
    rss, pss, counted, cpu = 0, 0, 0, {}
    for member in members:
        own_rss = _kib_field(f"/proc/{member}/status", "VmRSS:")
        if own_rss is None:
            continue  # it ended between listing and reading, or is a zombie without memory
        rss += own_rss
        counted += 1
        # smaps_rollup is one short read; walking all of smaps per sample would be slow.
        pss += _kib_field(f"/proc/{member}/smaps_rollup", "Pss:") or 0
        cpu[member] = table[member][1]
    return TreeSample(
        time_s=time.time(),
        rss_bytes=rss,
        pss_bytes=pss if _HAS_SMAPS_ROLLUP else None,
        num_processes=counted,
        cpu_s=cpu,
    )


def descendants(pid: int) -> list[int]:
    """Ids of the processes below `pid` in the process tree now."""
    return _descendants(_process_table(), pid)


def _descendants(table: dict[int, tuple[int, float]], pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for member, (parent, _) in table.items():
        children.setdefault(parent, []).append(member)
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _process_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used) of every process, from /proc/<pid>/stat."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone already
        # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
        # What follows starts at field 3 (state); ppid is field 4, utime 14, stime 15.
        fields = stat.rpartition(")")[2].split()
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS)
    return table


def _kib_field(path: str, key: str) -> int | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024  # the files say kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_between(series: Sequence[tuple[float, float]], start_s: float, end_s: float) -> float:
    """CPU seconds a sampled tree used from `start_s` to `end_s`, interpolating (time, CPU) samples."""
    if len(series) < 2:
        raise ValueError(f"series has {len(series)} samples; at least 2 are needed")
    if end_s < start_s:
        raise ValueError(f"end_s ({end_s}) must be >= start_s ({start_s})")
    times, totals = zip(*series, strict=True)
    return float(np.interp(end_s, times, totals) - np.interp(start_s, times, totals))


class ProcessTreeSampler:
    """Samples a process tree (`sample_tree`) on a thread every `interval_s` while in its block.

    Keeps the peak memory and the tree's cumulative CPU time over time; a process's
    CPU stays counted after it ends (as last seen, up to one interval short).
    """

    def __init__(self, pid: int, *, interval_s: float = 0.2, include_self: bool = True):
        if interval_s <= 0:
            raise ValueError(f"interval_s ({interval_s}) must be > 0")
        self.pid = pid
        self.interval_s = interval_s
        self.include_self = include_self
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)
        self._peak_rss = 0
        self._peak_pss: int | None = 0
        self._max_processes = 0
        self._num_samples = 0
        self._cpu_by_pid: dict[int, float] = {}
        self.cpu_series: list[tuple[float, float]] = []  # (time.time(), CPU seconds so far)

    def __enter__(self) -> ProcessTreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)
        self.sample()

    def sample(self) -> None:
        now = sample_tree(self.pid, include_self=self.include_self)
        self._num_samples += 1
        self._peak_rss = max(self._peak_rss, now.rss_bytes)
        if now.pss_bytes is None or self._peak_pss is None:
            self._peak_pss = None
        else:
            self._peak_pss = max(self._peak_pss, now.pss_bytes)
        self._max_processes = max(self._max_processes, now.num_processes)
        for pid, seconds in now.cpu_s.items():
            self._cpu_by_pid[pid] = max(self._cpu_by_pid.get(pid, 0.0), seconds)
        self.cpu_series.append((now.time_s, sum(self._cpu_by_pid.values())))

    def peak(self) -> MemoryPeak:
        return MemoryPeak(
            peak_rss_bytes=self._peak_rss,
            peak_pss_bytes=self._peak_pss,
            max_processes=self._max_processes,
            num_samples=self._num_samples,
        )


@dataclass(frozen=True)
class CommandRun:
    """One command run by `run_command`: how it ended, how long it took, its memory."""

    argv: tuple[str, ...]
    returncode: int
    started_at: float  # time.time() at launch: comparable with file modification times
    wall_s: float
    memory: MemoryPeak
    cpu_series: tuple[tuple[float, float], ...]  # (time.time(), CPU seconds of the tree so far)
    log_path: Path  # its stdout and stderr


def run_command(
    argv: Sequence[str],
    *,
    log_path: Path,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    interval_s: float = 0.2,
) -> CommandRun:
    """Runs `argv` to its end, sampling its whole process tree's memory and CPU; output to `log_path`.

    The command gets its own session so that, past `timeout_s`, it and every
    process it started are killed together; TimeoutError then.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as output:
        started_at = time.time()
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv),
            stdout=output,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
        with ProcessTreeSampler(process.pid, interval_s=interval_s) as sampler:
            try:
                returncode = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise TimeoutError(
                    f"{' '.join(argv[:4])} … ran past {timeout_s} s; see {log_path}"
                ) from None
        wall_s = time.perf_counter() - started
    return CommandRun(
        argv=tuple(argv),
        returncode=returncode,
        started_at=started_at,
        wall_s=wall_s,
        memory=sampler.peak(),
        cpu_series=tuple(sampler.cpu_series),
        log_path=log_path,
    )


# ---------------------------------------------------------------- benchmark videos


@dataclass(frozen=True, kw_only=True)
class VideoSpec:
    """How benchmark videos look: size, rate, length and keyframe interval of real footage."""

    width: int = 480
    height: int = 360
    fps: float = 25.0
    duration_s: float = 20.0
    gop: int | None = 50  # frames from keyframe to keyframe; None: x264's own (250, scene cuts)
    codec: str = "h264"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 32 or value % 2:
                raise ValueError(f"{name} ({value!r}) must be an even integer >= 32")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps ({self.fps}) must be > 0")
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"duration_s ({self.duration_s}) must be > 0")
        if self.num_frames < 2:
            raise ValueError(
                f"fps ({self.fps}) x duration_s ({self.duration_s}) gives {self.num_frames} "
                "frames; at least 2 are needed"
            )
        if self.gop is not None and self.gop < 1:
            raise ValueError(f"gop ({self.gop}) must be >= 1")
        if self.codec not in video_writer.CODECS:
            raise ValueError(f"codec {self.codec!r} is not one of {', '.join(video_writer.CODECS)}")

    @property
    def num_frames(self) -> int:
        return round(self.fps * self.duration_s)

    def folder_name(self) -> str:
        """A cache folder name that changes whenever the videos would."""
        gop = f"gop{self.gop}" if self.gop is not None else "gop-x264"
        return (
            f"{self.width}x{self.height}-{self.fps:g}fps-{self.duration_s:g}s-{gop}-"
            f"{self.codec}-seed{self.seed}-r{RENDER_VERSION}"
        )

    def describe(self) -> str:
        keyframes = (
            f"keyframe every {self.gop} frames ({self.gop / self.fps:.3g} s)"
            if self.gop is not None
            else "x264 default keyframes (keyint 250, scene cuts)"
        )
        return (
            f"{self.width}x{self.height} {self.codec}, {self.duration_s:g} s at {self.fps:g} fps "
            f"({self.num_frames} frames), {keyframes}"
        )


def render_frames(spec: VideoSpec, index: int) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of benchmark video `index`: a panning textured scene with moving boxes.

    A smooth random texture that pans gives the encoder real motion and detail to
    code (about 0.5 Mbit/s at 480x360, like web video); flat synthetic shapes alone
    would make decoding unrealistically cheap. Same spec and index, same frames.
    """
    rng = np.random.default_rng([spec.seed, index])
    height, width, num_frames = spec.height, spec.width, spec.num_frames
    speed = rng.uniform(1.0, 3.0)  # pixels per frame the camera pans
    span = width + math.ceil(speed * num_frames) + 1
    cell = 8
    coarse = rng.uniform(0, 255, (height // cell + 2, span // cell + 2, 3)).astype(np.float32)
    texture = np.repeat(np.repeat(coarse, cell, axis=0), cell, axis=1)
    # A box blur by summed-area table turns the blocks into soft blobs.
    table = np.cumsum(np.cumsum(texture, axis=0), axis=1)
    blurred = (
        table[cell:, cell:] - table[:-cell, cell:] - table[cell:, :-cell] + table[:-cell, :-cell]
    ) / (cell * cell)
    background = blurred[:height, :span].astype(np.uint8)  # (H, span, 3)
    num_boxes = int(rng.integers(3, 7))
    starts = rng.uniform(0, 1, (num_boxes, 2)) * (width, height)
    velocities = rng.uniform(-4, 4, (num_boxes, 2))
    sides = rng.integers(16, max(17, height // 5), num_boxes)
    colours = rng.integers(0, 256, (num_boxes, 3), dtype=np.uint8)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        left = int(speed * t)
        frames[t] = background[:, left : left + width]
        for start, velocity, side, colour in zip(starts, velocities, sides, colours, strict=True):
            x = int(start[0] + velocity[0] * t) % width
            y = int(start[1] + velocity[1] * t) % height
            frames[t, y : y + side, x : x + side] = colour
    return frames


def video_path(folder: Path, spec: VideoSpec, index: int) -> Path:
    return folder / f"bench-{index:04d}.{video_writer.extension(spec.codec)}"


def make_videos(folder: Path, spec: VideoSpec, num_videos: int, *, num_workers: int) -> list[Path]:
    """Paths of `num_videos` benchmark videos in `folder`, encoding only those not there yet.

    Each is written under a temporary name and renamed, so an interrupted run never
    leaves a cut-off file that a later run would take for a finished one.
    """
    if num_videos < 1:
        raise ValueError(f"num_videos ({num_videos}) must be >= 1")
    if num_workers < 1:
        raise ValueError(f"num_workers ({num_workers}) must be >= 1")
    folder.mkdir(parents=True, exist_ok=True)
    paths = [video_path(folder, spec, i) for i in range(num_videos)]
    missing = [i for i, path in enumerate(paths) if not path.exists()]
    if missing:
        log.info("encoding %d benchmark videos into %s", len(missing), folder)
        jobs = [(folder, spec, i) for i in missing]
        pixels = len(missing) * spec.num_frames * spec.width * spec.height
        # A spawned encoder costs seconds to start (it imports its parent's main module);
        # below a few seconds of encoding it does not pay.
        workers = min(num_workers, len(missing)) if pixels >= PARALLEL_ENCODE_PIXELS else 1
        if workers == 1:
            for job in jobs:
                _encode_one(job)
        else:
            # spawn: a fork of a parent holding torch's thread pools can deadlock.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                list(pool.map(_encode_one, jobs))
    return paths


def _encode_one(job: tuple[Path, VideoSpec, int]) -> None:
    folder, spec, index = job
    final = video_path(folder, spec, index)
    partial = final.with_name(f".{final.stem}.partial{final.suffix}")
    video_writer.write_video(
        partial, render_frames(spec, index), fps=spec.fps, codec=spec.codec, gop=spec.gop
    )
    os.replace(partial, final)


# ---------------------------------------------------------------- reports


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as aligned text columns; the first row is the header."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_bytes(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "n/a"
    return f"{num_bytes / 2**20:.0f} MiB"
