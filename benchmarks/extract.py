"""Stage-1 benchmark: how close `vidpipe extract` comes to what decoding and the CNN alone allow.

On the same videos it measures (a) the CNN alone on pre-decoded frames, (b) decoding alone as
the decode stage does it, (c) `vidpipe extract` end to end, (d) a naive one-process loop, and
the peak memory of the whole job at N and scale×N videos. Run: `python -m benchmarks.extract`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import queue
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import torch

from benchmarks.common import (
    ProcessTreeSampler,
    Rate,
    VideoSpec,
    cpu_between,
    format_bytes,
    format_table,
    harmonic_bound,
    load_average,
    machine_info,
    make_videos,
    repeat_for,
    run_command,
    usable_cores,
)
from hybrid_models.backbones import FeatureExtractor, backbone_spec, build_backbone, extract
from schemas import FeatureSetSpec, manifest_table, write_manifest
from schemas import columns as c
from workers import store
from workers.decoding import DECODERS, decode_video
from workers.extract import ExtractPlan, default_decoders, plan_extract
from workers.extract_config import ExtractConfig
from workers.preprocess import normalize, resize_and_crop
from workers.sampling import SamplingSpec, parse_sampling, sample_indices
from workers.stages import MAX_FRAMES_PER_CALL, OK, RGB, DecodeSettings, DecodeStage, clip_to_row

log = logging.getLogger(__name__)

NAME = "extract"
RESULT_FILE = "extract.json"
MAX_GAP = 0.15  # the target: end to end within 15% of the decode+model bound
MIN_SPEEDUP = 3.0  # the target: at least 3x the naive baseline
# Ours, not the issue's: a peak RSS at scale×N above this many times N's counts as growing.
MAX_MEMORY_GROWTH = 1.25
# Load per core before the start above which the report warns that figures are unreliable.
BUSY_LOAD_PER_CORE = 0.5
WORKER_START_TIMEOUT_S = 300.0  # a spawned decode-only worker imports torch: slow on a busy box


@dataclass(frozen=True, kw_only=True)
class ExtractBenchConfig:
    """What the stage-1 benchmark runs on; the defaults are what `make bench` measures."""

    num_videos: int = 24  # N distinct videos
    scale: int = 5  # the memory run lists each of the N files this many times; 1: no second run
    # Minute-long web video at 360p and 30 fps with a keyframe every 2 s, as in ActivityNet or
    # Charades: where sampling K frames must not cost a pass over the whole video. Short
    # clips (`--duration 10`) leave a CPU-only machine bound by the model instead (README).
    video: VideoSpec = field(
        default_factory=lambda: VideoSpec(width=640, height=360, fps=30.0, duration_s=60.0, gop=60)
    )
    sampling: str = "uniform:16"
    decoder: str = "auto"  # as `vidpipe extract --decoder`: decord, PyAV where decord fails
    backbone: str = "resnet18"
    input_size: int = 112
    batch_size: int = 8  # videos per model call, as `vidpipe extract --batch-size`
    num_processes: int | None = None  # decode-only processes and model threads; None: all cores
    model_seconds: float = 5.0  # at least this long timing the model alone
    timeout_s: float = 600.0  # per `vidpipe extract` run

    def __post_init__(self) -> None:
        parse_sampling(self.sampling)  # ValueError naming the text
        backbone_spec(self.backbone)  # ValueError naming the known backbones
        if self.batch_size < 1:
            raise ValueError(f"batch_size ({self.batch_size}) must be >= 1")
        if self.num_videos <= self.batch_size:
            # Steady state is read between the first and the last committed part.
            raise ValueError(
                f"num_videos ({self.num_videos}) must be > batch_size ({self.batch_size}) "
                "so that the job commits at least two parts"
            )
        if self.scale < 1:
            raise ValueError(f"scale ({self.scale}) must be >= 1")
        if self.input_size < 16:
            raise ValueError(f"input_size ({self.input_size}) must be >= 16")
        if self.num_processes is not None and self.num_processes < 1:
            raise ValueError(f"num_processes ({self.num_processes}) must be >= 1")
        if not self.model_seconds > 0:
            raise ValueError(f"model_seconds ({self.model_seconds}) must be > 0")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s ({self.timeout_s}) must be > 0")

    @property
    def processes(self) -> int:
        return self.num_processes or usable_cores()


# ---------------------------------------------------------------- inputs


def write_bench_manifest(paths: Sequence[Path], manifest_path: Path, *, copies: int) -> int:
    """A manifest listing each of `paths` `copies` times under distinct ids; returns its rows.

    Copies are rows, not files: each is decoded and embedded like a new video, and
    the page cache holds the files either way.
    """
    rows = [
        {c.VIDEO_ID: f"bench-{index:04d}-{copy}", c.URI: str(path.resolve()), c.SPLIT: "test"}
        for copy in range(copies)
        for index, path in enumerate(paths)
    ]
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(manifest_table(rows), str(manifest_path))
    return len(rows)


def extract_config(config: ExtractBenchConfig, manifest: Path, root: Path) -> ExtractConfig:
    """The `vidpipe extract` settings that `command_line` passes as flags; the rest are defaults."""
    return ExtractConfig(
        manifest=str(manifest),
        root=str(root),
        sampling=config.sampling,
        decoder=config.decoder,
        backbone=config.backbone,
        input_size=config.input_size,
        batch_size=config.batch_size,
        progress=False,
    )


def command_line(config: ExtractConfig) -> list[str]:
    """`vidpipe extract` with `config`'s flags, run with this interpreter."""
    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "extract",
        "--manifest",
        config.manifest,
        "--out",
        config.root,
        "--sampling",
        config.sampling,
        "--decoder",
        config.decoder,
        "--backbone",
        config.backbone,
        "--input-size",
        str(config.input_size),
        "--batch-size",
        str(config.batch_size),
        "--no-progress",
    ]


def decode_settings(plan: ExtractPlan) -> DecodeSettings:
    """The decode stage's settings as `workers.extract` builds them for `plan` (RGB only)."""
    if plan.spec.streams != ("rgb",):
        raise ValueError(f"streams {','.join(plan.spec.streams)!r}: the benchmark measures rgb")
    return DecodeSettings(
        sampling=plan.spec.sampling,
        decoder=plan.config.decoder,
        rotation=plan.config.rotation,
        resize_size=plan.spec.resize_size,
        input_size=plan.spec.input_size,
        with_flow=False,
        timeout_s=plan.config.decode_timeout_s,
        flow=None,
    )


@contextlib.contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Runs the block with torch using `num_threads` intra-op threads, then restores the old count."""
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_extractor(spec: FeatureSetSpec, seed: int) -> FeatureExtractor:
    """The CNN the embed stage builds for `spec` (random init from `seed`, on CPU)."""
    if spec.weights != "none":
        raise ValueError(f"weights {spec.weights!r}: the benchmark uses random init only")
    return build_backbone(
        spec.backbone,
        weights=None,
        seed=seed,
        spatial_map=spec.spatial_map,
        input_size=spec.input_size,
    )


# ---------------------------------------------------------------- (a) model only


def bench_model(
    plan: ExtractPlan, uris: Sequence[str], *, num_threads: int, min_seconds: float
) -> Rate:
    """Frames/s of normalise + CNN on pre-decoded frames, one batch of `batch_size` videos per call.

    The frames are the decode stage's own output for the first videos, so the model
    sees exactly what it sees in the job; the call is the embed stage's.
    """
    settings = decode_settings(plan)
    num_videos = plan.config.batch_size
    clips = [_decoded_rgb(uri, settings) for uri in uris[:num_videos]]
    videos = [clips[i % len(clips)] for i in range(num_videos)]
    frames = torch.from_numpy(np.concatenate(videos))  # (B·K, 3, S, S) uint8
    extractor = build_extractor(plan.spec, plan.config.seed)

    def step() -> int:
        for start in range(0, len(frames), MAX_FRAMES_PER_CALL):
            chunk = normalize(
                frames[start : start + MAX_FRAMES_PER_CALL], mean=plan.spec.mean, std=plan.spec.std
            )
            extract(extractor, chunk, precision=plan.spec.precision)
        return len(frames)

    with torch_threads(num_threads):
        return repeat_for(step, min_seconds=min_seconds, min_calls=3, warmup_calls=2)


def _decoded_rgb(uri: str, settings: DecodeSettings) -> np.ndarray:
    clip = decode_video(
        uri, settings.sampling, decoder=settings.decoder, rotation=settings.rotation
    )
    return clip_to_row(clip, settings)[RGB]  # (K, 3, S, S) uint8


# ---------------------------------------------------------------- (b) decode only


def bench_decode(settings: DecodeSettings, uris: Sequence[str], *, num_processes: int) -> Rate:
    """Sampled frames/s of `DecodeStage` itself in `num_processes` processes sharing a queue of videos.

    Each process starts its stage and decodes one video before a common start line,
    as a job's decode actors are warm after their first video; the time runs from the
    start line to the last process's last video, and the CPU time is the workers' and
    their decoding children's over that span.
    """
    context = multiprocessing.get_context("spawn")
    tasks, results = context.Queue(), context.Queue()
    for uri in uris:
        tasks.put(uri)
    for _ in range(num_processes):
        tasks.put(None)
    start_line = context.Barrier(num_processes)
    workers = [
        context.Process(
            target=_decode_worker,
            args=(settings, uris[0], tasks, results, start_line),
            name=f"bench-decode-{n}",
        )
        for n in range(num_processes)
    ]
    reports = []
    with ProcessTreeSampler(os.getpid(), include_self=False) as sampler:
        for worker in workers:
            worker.start()
        try:
            for _ in workers:
                reports.append(results.get(timeout=WORKER_START_TIMEOUT_S + 60 * len(uris)))
        except queue.Empty:
            raise RuntimeError("a decode-only worker gave no result; see the log above") from None
        finally:
            for worker in workers:
                worker.join(timeout=30)
                if worker.is_alive():
                    worker.kill()
                    worker.join()
    errors = [r["error"] for r in reports if r["error"]]
    if errors:
        raise RuntimeError(f"decode-only worker failed: {errors[0]}")
    num_frames = sum(r["num_frames"] for r in reports)
    started = min(r["started"] for r in reports)
    finished = max(r["finished"] for r in reports)
    return Rate(
        num_items=num_frames,
        seconds=finished - started,
        cpu_seconds=cpu_between(sampler.cpu_series, started, finished),
    )


def _decode_worker(settings, warmup_uri, tasks, results, start_line) -> None:
    # A Ray actor with num_cpus=1 runs with OMP_NUM_THREADS=1; the resize in the stage obeys it.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    stage = None
    try:
        stage = DecodeStage(settings)
        _decode_one(stage, warmup_uri)
        start_line.wait(timeout=WORKER_START_TIMEOUT_S)
        # time.time(): one clock for every process, and the parent's CPU samples use it.
        started = time.time()
        num_frames = num_videos = 0
        while (uri := tasks.get()) is not None:
            num_frames += _decode_one(stage, uri)
            num_videos += 1
        finished = time.time()
        results.put(
            {
                "num_frames": num_frames,
                "num_videos": num_videos,
                "started": started,
                "finished": finished,
                "error": None,
            }
        )
    except Exception as error:  # reported to the parent, which raises it
        start_line.abort()  # the other workers must not wait at the start line for this one
        results.put({"error": f"{type(error).__name__}: {error}"})
    finally:
        if stage is not None:
            stage.decoder.close()


def _decode_one(stage: DecodeStage, uri: str) -> int:
    out = stage({c.VIDEO_ID: np.asarray(["bench"]), c.URI: np.asarray([uri])})
    if not out[OK][0]:
        raise RuntimeError(f"{uri} did not decode: {out[c.ERROR_TYPE][0]}: {out[c.MESSAGE][0]}")
    return len(out[c.FRAME_INDEX][0])


# ---------------------------------------------------------------- (d) naive


@dataclass(frozen=True)
class NaiveRun:
    num_frames: int
    decode_s: float  # decoding every frame and converting the sampled ones to RGB
    model_s: float  # resize, crop, normalise and the CNN, 16 frames per call
    cpu_s: float  # CPU time of the process, all threads

    @property
    def per_second(self) -> float:
        return self.num_frames / (self.decode_s + self.model_s)


def naive_video(
    uri: str, extractor: FeatureExtractor, sampling: SamplingSpec, spec: FeatureSetSpec
) -> tuple[np.ndarray, float, float]:
    """(features (K, D), decode seconds, model seconds) of one video, the way a first script does it.

    PyAV decodes every frame in order, with its default threading; the frames that
    the sampling picks (by the header's frame count) are converted to RGB, then the
    CNN runs once over this video's frames.
    """
    started = time.perf_counter()
    with av.open(uri) as container:
        stream = container.streams.video[0]
        num_frames = stream.frames  # the header's count: a first script trusts it
        if num_frames <= 0:
            raise ValueError(f"{uri}: its header gives no frame count")
        rate = float(stream.average_rate or 1)
        wanted = set(sample_indices(sampling, np.arange(num_frames) / rate))
        picked = [
            frame.to_ndarray(format="rgb24")
            for index, frame in enumerate(container.decode(stream))
            if index in wanted
        ]
    decoded = time.perf_counter()
    images = resize_and_crop(np.stack(picked), resize=spec.resize_size, crop=spec.input_size)
    pooled, _ = extract(
        extractor, normalize(images, mean=spec.mean, std=spec.std), precision=spec.precision
    )
    return pooled, decoded - started, time.perf_counter() - decoded


def bench_naive(plan: ExtractPlan, uris: Sequence[str], *, num_threads: int) -> NaiveRun:
    """(d): one process, every video in turn; the first video warms up and is not counted."""
    extractor = build_extractor(plan.spec, plan.config.seed)
    sampling = parse_sampling(plan.spec.sampling)
    num_frames, decode_s, model_s = 0, 0.0, 0.0
    with torch_threads(num_threads):
        naive_video(uris[0], extractor, sampling, plan.spec)
        cpu_started = time.process_time()
        for uri in uris:
            pooled, decoding, modelling = naive_video(uri, extractor, sampling, plan.spec)
            num_frames += len(pooled)
            decode_s += decoding
            model_s += modelling
        cpu_s = time.process_time() - cpu_started
    return NaiveRun(num_frames=num_frames, decode_s=decode_s, model_s=model_s, cpu_s=cpu_s)


# ---------------------------------------------------------------- (c) end to end


def commit_times(feature_set_uri: str) -> list[tuple[float, int]]:
    """(modification time, rows) of each committed part, in commit order.

    A part is written under _tmp/ and renamed, which keeps its time: the time is
    when the part's bytes were complete.
    """
    times = []
    for path in store.part_paths(feature_set_uri):
        times.append((os.stat(path).st_mtime, pq.read_metadata(path).num_rows))
    return sorted(times)


def marginal_rate(small_run: dict, large_run: dict) -> float | None:
    """Frames/s of the large run's extra frames over its extra wall time; None if it was not slower.

    Interpreter, Ray, actors and the first batch cost both runs alike, so they cancel out.
    """
    extra_s = large_run["wall_s"] - small_run["wall_s"]
    extra_frames = large_run["num_frames"] - small_run["num_frames"]
    return extra_frames / extra_s if extra_frames > 0 and extra_s > 0 else None


def steady_state(commits: Sequence[tuple[float, int]]) -> Rate:
    """Rows committed after the first part over the time from the first to the last commit.

    Start-up (Ray, actors, the model) and the first batch's fill fall before the
    first commit and are left out; what remains is the rate a long job runs at.
    """
    if len(commits) < 2:
        raise ValueError(f"steady state needs at least 2 committed parts, got {len(commits)}")
    rows_after_first = sum(rows for _, rows in commits[1:])
    return Rate(num_items=rows_after_first, seconds=commits[-1][0] - commits[0][0])


def bench_end_to_end(
    config: ExtractConfig, *, expected_frames: int, log_path: Path, timeout_s: float
) -> dict:
    """(c): `vidpipe extract` in a subprocess on an empty store; wall time, steady state, peak memory."""
    shutil.rmtree(config.root, ignore_errors=True)  # a committed video would be skipped
    plan = plan_extract(config)
    run = run_command(command_line(config), log_path=log_path, timeout_s=timeout_s)
    if run.returncode != 0:
        raise RuntimeError(f"vidpipe extract exited with {run.returncode}; see {run.log_path}")
    commits = commit_times(plan.feature_set_uri)
    num_frames = sum(rows for _, rows in commits)
    if num_frames != expected_frames:
        raise RuntimeError(
            f"vidpipe extract stored {num_frames} frames, expected {expected_frames}; "
            f"see {run.log_path}"
        )
    steady = steady_state(commits)
    steady_cpu_s = cpu_between(run.cpu_series, commits[0][0], commits[-1][0])
    return {
        "num_videos": len(plan.videos),
        "num_frames": num_frames,
        "num_parts": len(commits),
        "wall_s": run.wall_s,
        "wall_fps": num_frames / run.wall_s,
        "first_commit_s": commits[0][0] - run.started_at,
        "steady_s": steady.seconds,
        "steady_fps": steady.per_second,
        # CPU of the whole tree (driver, Ray, actors, decoding children) per steady-state frame
        "steady_cpu_ms_per_frame": 1000.0 * steady_cpu_s / steady.num_items,
        "cpu_s": run.cpu_series[-1][1],
        "peak_rss_bytes": run.memory.peak_rss_bytes,
        "peak_pss_bytes": run.memory.peak_pss_bytes,
        "max_processes": run.memory.max_processes,
        "memory_samples": run.memory.num_samples,
        "log": str(run.log_path),
    }


# ---------------------------------------------------------------- the whole benchmark


@contextlib.contextmanager
def _phase(loads: dict[str, tuple[float, float]], name: str) -> Iterator[None]:
    """Records the 1-minute load average at the start and end of the block under `name`."""
    before = load_average()[0]
    yield
    loads[name] = (before, load_average()[0])


def run(config: ExtractBenchConfig, out_dir: Path) -> dict:
    """Runs (a)–(d) and the memory run, writes `out_dir/extract.json`, returns the same result."""
    work = out_dir / NAME
    load_before = load_average()
    started = time.perf_counter()
    paths = make_videos(
        out_dir / "videos" / config.video.folder_name(),
        config.video,
        config.num_videos,
        num_workers=config.processes,
    )
    uris = [str(p.resolve()) for p in paths]
    small, large = work / "manifest-n.parquet", work / "manifest-scaled.parquet"
    write_bench_manifest(paths, small, copies=1)
    if config.scale > 1:
        write_bench_manifest(paths, large, copies=config.scale)
    small_config = extract_config(config, small, work / "store-n")
    large_config = extract_config(config, large, work / "store-scaled")
    plan = plan_extract(small_config)
    settings = decode_settings(plan)
    frames_per_video = len(_decoded_rgb(uris[0], settings))
    log.info("benchmark videos ready in %.1f s", time.perf_counter() - started)

    loads: dict[str, tuple[float, float]] = {}
    with _phase(loads, "model"):
        model = bench_model(
            plan, uris, num_threads=config.processes, min_seconds=config.model_seconds
        )
    log.info("(a) model only: %.1f frames/s", model.per_second)
    with _phase(loads, "decode"):
        decode = bench_decode(settings, uris, num_processes=config.processes)
    log.info("(b) decode only: %.1f frames/s", decode.per_second)
    with _phase(loads, "naive"):
        naive = bench_naive(plan, uris, num_threads=config.processes)
    log.info("(d) naive: %.1f frames/s", naive.per_second)
    with _phase(loads, "end_to_end_n"):
        small_run = bench_end_to_end(
            small_config,
            expected_frames=config.num_videos * frames_per_video,
            log_path=work / "logs" / "extract-n.log",
            timeout_s=config.timeout_s,
        )
    log.info("(c) end to end, N: %.1f frames/s steady", small_run["steady_fps"])
    if config.scale == 1:
        # 1×N is the N job itself: a second launch would only measure it again.
        large_run, loads["end_to_end_scaled"] = small_run, loads["end_to_end_n"]
    else:
        with _phase(loads, "end_to_end_scaled"):
            large_run = bench_end_to_end(
                large_config,
                expected_frames=config.scale * config.num_videos * frames_per_video,
                log_path=work / "logs" / "extract-scaled.log",
                timeout_s=config.timeout_s,
            )
    log.info("(c) end to end, %dN: %.1f frames/s steady", config.scale, large_run["steady_fps"])

    bound = harmonic_bound(model.per_second, decode.per_second)
    stages_cpu_ms = model.cpu_ms_per_item + decode.cpu_ms_per_item
    marginal = marginal_rate(small_run, large_run) if config.scale > 1 else None
    # The targets read the marginal rate where there is one: the steady state counted from the
    # first commit flatters the job, whose decoders run ahead while the first batch is embedded.
    measured = marginal if marginal is not None else large_run["steady_fps"]
    gap = 1 - measured / bound
    speedup = measured / naive.per_second
    growth = large_run["peak_rss_bytes"] / small_run["peak_rss_bytes"]
    job = plan.config
    num_decoders = job.num_decoders or default_decoders(usable_cores(), job.concurrency, 0.0)
    result = {
        "benchmark": NAME,
        "machine": machine_info(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "phase_load_1min": loads,  # (at its start, at its end); our own processes count too
        "elapsed_s": time.perf_counter() - started,
        "settings": {
            "video": {**asdict(config.video), "description": config.video.describe()},
            "num_videos": config.num_videos,
            "scale": config.scale,
            "frames_per_video": frames_per_video,
            "sampling": plan.spec.sampling,
            "decoder": job.decoder,
            "backbone": plan.spec.backbone,
            "weights": plan.spec.weights,
            "input_size": plan.spec.input_size,
            "resize_size": plan.spec.resize_size,
            "precision": plan.spec.precision,
            "batch_size": job.batch_size,
            "processes": config.processes,
            "job_decode_actors": num_decoders,
            "job_model_actors": job.concurrency,
            "job_model_threads": max(1, usable_cores() // job.concurrency),
            "command": " ".join(command_line(small_config)[1:]),
        },
        "figures": {
            "model_only_fps": model.per_second,
            "model_only_s": model.seconds,
            "decode_only_fps": decode.per_second,
            "decode_only_s": decode.seconds,
            "naive_fps": naive.per_second,
            "naive_decode_s": naive.decode_s,
            "naive_model_s": naive.model_s,
            "bound_fps": bound,
            "model_only_cpu_ms_per_frame": model.cpu_ms_per_item,
            "decode_only_cpu_ms_per_frame": decode.cpu_ms_per_item,
            "naive_cpu_ms_per_frame": 1000.0 * naive.cpu_s / naive.num_frames,
            # Frames/s if the job's cores did nothing but decode and the CNN, load or not.
            "cpu_bound_fps": 1000.0 * usable_cores() / stages_cpu_ms,
            "end_to_end_n": small_run,
            "end_to_end_scaled": large_run,
            # (scale-1)·N more videos over the extra wall time: start-up and fill cancel out
            "marginal_fps": marginal,
        },
        "ratios": {
            "steady_over_bound": large_run["steady_fps"] / bound,
            "gap": gap,
            "steady_over_naive": large_run["steady_fps"] / naive.per_second,
            "marginal_over_bound": None if marginal is None else marginal / bound,
            "marginal_over_naive": None if marginal is None else marginal / naive.per_second,
            "target_basis": "marginal" if marginal is not None else "steady",
            "wall_over_naive": large_run["wall_fps"] / naive.per_second,
            "peak_rss_scaled_over_n": growth,
            "job_cpu_over_stages_cpu": large_run["steady_cpu_ms_per_frame"] / stages_cpu_ms,
        },
        "targets": {
            "gap": {"value": gap, "max": MAX_GAP, "met": gap <= MAX_GAP},
            "speedup": {"value": speedup, "min": MIN_SPEEDUP, "met": speedup >= MIN_SPEEDUP},
            "memory_growth": {
                "value": growth,
                "max": MAX_MEMORY_GROWTH,
                "met": growth <= MAX_MEMORY_GROWTH,
            },
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULT_FILE).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


# ---------------------------------------------------------------- the report


def format_report(result: dict) -> str:
    """The result as the text `make bench` prints: machine, settings, figures, targets, limits."""
    machine, settings, figures = result["machine"], result["settings"], result["figures"]
    ratios, targets = result["ratios"], result["targets"]
    small, large = figures["end_to_end_n"], figures["end_to_end_scaled"]
    n, scale = settings["num_videos"], settings["scale"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    naive_total = figures["naive_decode_s"] + figures["naive_model_s"]

    def fps(value: float) -> str:
        return f"{value:.1f}"

    def ms(value: float) -> str:
        return f"{value:.1f}"

    def load(phase: str) -> str:
        before, after = result["phase_load_1min"][phase]
        return f"{before:.1f}-{after:.1f}"

    def verdict(name: str) -> str:
        return "met" if targets[name]["met"] else "MISSED"

    basis = (
        f"marginal N->{scale}N"
        if ratios.get("target_basis") == "marginal"
        else f"{scale}N steady state"
    )

    lines = [
        "== stage 1: feature extraction (benchmarks/extract.py) ==",
        f"machine   {machine['cores']} cores ({machine['cpu_model']}), "
        f"{machine['memory_bytes'] / 2**30:.0f} GiB; load average (1/5/15 min) "
        f"{_load(result['load_average_before'])} before, {_load(result['load_average_after'])} after",
        f"versions  python {machine['python']}, {versions}",
        *busy_warning(result),
        f"videos    {n} files: {settings['video']['description']}; "
        + (
            f"the {scale}N run lists each file {scale} times"
            if scale > 1
            else "scale 1: the N run stands for the scale×N run (one launch)"
        ),
        f"model     {settings['backbone']} (random init, no weights file) at "
        f"{settings['input_size']} px, {settings['precision']}, {settings['sampling']} "
        f"({settings['frames_per_video']} frames/video), batch {settings['batch_size']} videos",
        f"job       {settings['command']}",
        f"          its defaults here: {settings['job_decode_actors']} decode actor(s), "
        f"{settings['job_model_actors']} CNN actor(s) with {settings['job_model_threads']} threads",
        "",
        format_table(
            [
                ["figure", "frames/s", "cpu ms/frame", "load", "how"],
                [
                    "(a) model only",
                    fps(figures["model_only_fps"]),
                    ms(figures["model_only_cpu_ms_per_frame"]),
                    load("model"),
                    f"pre-decoded frames, normalise + CNN, {settings['processes']} threads, "
                    f"{figures['model_only_s']:.1f} s",
                ],
                [
                    "(b) decode only",
                    fps(figures["decode_only_fps"]),
                    ms(figures["decode_only_cpu_ms_per_frame"]),
                    load("decode"),
                    f"DecodeStage (probe, seek, decode, resize, crop) in {settings['processes']} "
                    f"processes, {n} videos, {figures['decode_only_s']:.1f} s",
                ],
                [
                    "    bound 1/(1/a+1/b)",
                    fps(figures["bound_fps"]),
                    ms(
                        figures["model_only_cpu_ms_per_frame"]
                        + figures["decode_only_cpu_ms_per_frame"]
                    ),
                    "",
                    "decode and model sharing the same cores",
                ],
                [
                    f"(c) vidpipe extract, N={n}",
                    fps(small["steady_fps"]),
                    ms(small["steady_cpu_ms_per_frame"]),
                    load("end_to_end_n"),
                    f"steady state; wall {small['wall_s']:.1f} s = {fps(small['wall_fps'])} "
                    f"frames/s with start-up (first commit at {small['first_commit_s']:.1f} s)",
                ],
                [
                    f"(c) vidpipe extract, {scale}N={scale * n}",
                    fps(large["steady_fps"]),
                    ms(large["steady_cpu_ms_per_frame"]),
                    load("end_to_end_scaled"),
                    f"steady state; wall {large['wall_s']:.1f} s = {fps(large['wall_fps'])} "
                    f"frames/s with start-up (first commit at {large['first_commit_s']:.1f} s)",
                ],
                *(
                    [
                        [
                            f"(c) marginal, N->{scale}N",
                            fps(figures["marginal_fps"]),
                            "",
                            "",
                            f"{(scale - 1) * n} more videos over "
                            f"{large['wall_s'] - small['wall_s']:.1f} s more wall time: start-up "
                            "and fill cancel out",
                        ]
                    ]
                    if figures.get("marginal_fps") is not None
                    else []
                ),
                [
                    "(d) naive",
                    fps(figures["naive_fps"]),
                    ms(figures["naive_cpu_ms_per_frame"]),
                    load("naive"),
                    f"1 process: PyAV decodes every frame, CNN per video; "
                    f"{figures['naive_decode_s'] / naive_total:.0%} of its time decoding",
                ],
            ]
        ),
        "cpu ms/frame: CPU time of every process involved (all threads) per frame; less moved by "
        "other work than frames/s",
        "load: the 1-minute load average at the start and end of each figure (ours included)",
        "",
        format_table(
            [
                ["target", "value", "goal", "verdict"],
                [
                    f"gap to bound, 1 - c/bound ({basis})",
                    f"{ratios['gap']:.1%}",
                    f"<= {MAX_GAP:.0%}",
                    verdict("gap"),
                ],
                [
                    f"c/d ({basis} over naive)",
                    f"{targets['speedup']['value']:.2f}x",
                    f">= {MIN_SPEEDUP:g}x",
                    verdict("speedup"),
                ],
                [
                    f"peak RSS {scale}N / N (whole job)",
                    f"{ratios['peak_rss_scaled_over_n']:.2f}",
                    f"<= {MAX_MEMORY_GROWTH:g} (flat)",
                    verdict("memory_growth"),
                ],
            ]
        ),
        f"peak RSS of the job's process tree: N {format_bytes(small['peak_rss_bytes'])}, "
        f"{scale}N {format_bytes(large['peak_rss_bytes'])} (summed RSS counts shared pages once "
        f"per process; summed PSS: {format_bytes(small['peak_pss_bytes'])}, "
        f"{format_bytes(large['peak_pss_bytes'])}; up to {large['max_processes']} processes)",
        f"c/d with start-up (wall rate of the {scale}N run over naive): "
        f"{ratios['wall_over_naive']:.2f}x",
        "",
        "what limits it:",
        *limits(result),
    ]
    return "\n".join(lines)


def busy_warning(result: dict) -> list[str]:
    """A warning line when other work was running before the benchmark started, else nothing."""
    cores, before = result["machine"]["cores"], result["load_average_before"][0]
    if before <= BUSY_LOAD_PER_CORE * cores:
        return []
    return [
        f"WARNING   the machine was busy before the benchmark started (1-minute load {before:.2f} "
        f"on {cores} cores): other work shares the cores, so figures and ratios are unreliable"
    ]


def limits(result: dict) -> list[str]:
    """Numbers that say where the end-to-end rate goes, for a reader deciding what to fix."""
    settings, figures = result["settings"], result["figures"]
    small, large = figures["end_to_end_n"], figures["end_to_end_scaled"]
    a, b, d = figures["model_only_fps"], figures["decode_only_fps"], figures["naive_fps"]
    bound = figures["bound_fps"]
    processes, decoders = settings["processes"], settings["job_decode_actors"]
    cores = result["machine"]["cores"]  # what Ray gives the job, whatever `processes` is
    k, n = settings["frames_per_video"], settings["num_videos"]
    num_frames = settings["video"]["fps"] * settings["video"]["duration_s"]
    # Seconds of one core per video: each stage measured on all cores.
    decode_core_s = processes * k / b
    model_core_s = processes * k / a
    naive_decode_s = figures["naive_decode_s"] / n
    model_share = b / (a + b)  # of the cores, when both stages run at the bound
    stages_ms = figures["model_only_cpu_ms_per_frame"] + figures["decode_only_cpu_ms_per_frame"]
    return [
        f"- start-up: first part committed {small['first_commit_s']:.1f} s after launch in the "
        f"N run, {large['first_commit_s']:.1f} s in the {settings['scale']}N run (interpreter, "
        f"plan, Ray, actors, first batch): {small['first_commit_s'] / small['wall_s']:.0%} and "
        f"{large['first_commit_s'] / large['wall_s']:.0%} of their wall times",
        f"- decode stage: {decode_core_s:.2f} core-s per video (probe, seek, decode {k} frames, "
        f"resize), {decode_core_s / naive_decode_s:.2f}x the {naive_decode_s:.2f} s in which "
        f"the naive loop decodes all {num_frames:.0f} frames with PyAV",
        f"- CNN: {model_core_s:.2f} core-s per video in batches of {settings['batch_size']} "
        f"videos; the naive loop takes {figures['naive_model_s'] / n:.2f} s per video "
        f"({k} frames per call, {processes} threads)",
        f"- at the bound the CNN needs {model_share:.0%} of the cores and decoding "
        f"{1 - model_share:.0%}; the job gives decoding {decoders} of its {cores} cores "
        f"({decoders / cores:.0%}), so decoding alone caps it near "
        f"{b / processes * decoders:.1f} frames/s",
        f"- ceiling: a pipeline running exactly at the bound would be {bound / d:.2f}x the naive "
        f"loop (target {MIN_SPEEDUP:g}x)",
        f"- CPU per frame: the job uses {large['steady_cpu_ms_per_frame']:.1f} ms (all its "
        f"processes, steady state), decode and CNN alone {stages_ms:.1f} ms: "
        f"{large['steady_cpu_ms_per_frame'] / stages_ms - 1:+.0%} for Ray, transfers, Parquet "
        f"and idle spinning; {figures['cpu_bound_fps']:.1f} frames/s if {cores} cores did only "
        "decode and CNN work",
    ]


def _load(values: Sequence[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    defaults = ExtractBenchConfig()
    video = defaults.video
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.extract",
        description="Stage-1 benchmark: model-only, decode-only, vidpipe extract end to end, "
        "a naive loop, and peak memory at N and scale×N videos.",
    )
    p.add_argument("--out", default="bench-output", help="output folder (default: bench-output)")
    p.add_argument("--num-videos", type=int, default=defaults.num_videos, help="N distinct videos")
    p.add_argument(
        "--scale", type=int, default=defaults.scale, help="the memory run has scale×N videos"
    )
    p.add_argument("--width", type=int, default=video.width, help="video width in pixels")
    p.add_argument("--height", type=int, default=video.height, help="video height in pixels")
    p.add_argument("--fps", type=float, default=video.fps, help="video frame rate")
    p.add_argument(
        "--duration", type=float, default=video.duration_s, help="video length in seconds"
    )
    p.add_argument(
        "--gop", type=int, default=video.gop, help="frames between keyframes (0: x264's own)"
    )
    p.add_argument("--sampling", default=defaults.sampling, help="frame sampling spec")
    p.add_argument(
        "--decoder", default=defaults.decoder, choices=DECODERS, help="as vidpipe extract's"
    )
    p.add_argument("--backbone", default=defaults.backbone, help="CNN backbone")
    p.add_argument("--input-size", type=int, default=defaults.input_size, help="crop size")
    p.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="videos per model call"
    )
    p.add_argument(
        "--processes", type=int, default=None, help="decode-only processes (default: all cores)"
    )
    p.add_argument(
        "--model-seconds",
        type=float,
        default=defaults.model_seconds,
        help="seconds to time the model alone",
    )
    return p


def config_from_args(args: argparse.Namespace) -> ExtractBenchConfig:
    video = VideoSpec(
        width=args.width,
        height=args.height,
        fps=args.fps,
        duration_s=args.duration,
        gop=args.gop or None,
    )
    return ExtractBenchConfig(
        num_videos=args.num_videos,
        scale=args.scale,
        video=video,
        sampling=args.sampling,
        decoder=args.decoder,
        backbone=args.backbone,
        input_size=args.input_size,
        batch_size=args.batch_size,
        num_processes=args.processes,
        model_seconds=args.model_seconds,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark with flags `argv`, prints its report; 2 for bad flags."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    result = run(config, Path(args.out))
    print(format_report(result))
    print(f"\nwritten: {Path(args.out) / RESULT_FILE}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sys.exit(main())
