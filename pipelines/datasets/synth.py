"""Generate the synthetic dataset: encoded videos of moving shapes, their scenes and a manifest.

The plan (classes, splits, scenes, captions, questions) is a pure function of
the config; only writing files is I/O, and the manifest is written last so
that it never points at videos that are not there.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipelines.datasets import video_writer
from pipelines.datasets.language import QuestionAnswer, captions, labels, questions
from pipelines.datasets.render import render_frames
from pipelines.datasets.scene import ACTIONS, Scene, sample_scene
from schemas import SPLITS, manifest_table, write_manifest
from schemas import columns as c

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.parquet"
SCENES_NAME = "scenes.jsonl"
SCENE_KEY = "scene"  # in each line of scenes.jsonl, beside video_id and split
CONFIG_NAME = "synth_config.json"
VIDEOS_DIR = "videos"
ID_PREFIX = "synth-"
_CONTAINERS = "|".join(sorted({codec.container for codec in video_writer.CODECS.values()}))
_OUR_VIDEO = re.compile(rf"^{ID_PREFIX}\d+\.({_CONTAINERS})$")
_PARTIAL = re.compile(rf"^\.{ID_PREFIX}\d+\.partial\.({_CONTAINERS})$")

# Independent random streams per purpose, so that e.g. rewording captions
# never changes a scene: default_rng([seed, stream, index]).
_PLAN_STREAM = 0
_SCENE_STREAM = 1
_LANGUAGE_STREAM = 2

# A worker process takes about a second to start; below this many videos each it does not pay.
_VIDEOS_PER_WORKER = 64


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    """Everything that determines a synthetic dataset; equal configs give equal datasets."""

    num_videos: int
    seed: int = 0
    size: int = 64
    fps: float = 12.0
    duration_s: float = 2.0
    codec: str = "h264"
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train, val, test

    def __post_init__(self) -> None:
        if isinstance(self.num_videos, bool) or not isinstance(self.num_videos, int):
            raise ValueError(f"num_videos ({self.num_videos!r}) must be an integer")
        if self.num_videos <= 0:
            raise ValueError(f"num_videos ({self.num_videos}) must be > 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed ({self.seed!r}) must be an integer >= 0")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise ValueError(f"size ({self.size!r}) must be an integer")
        if self.size < 32 or self.size % 2:
            raise ValueError(f"size ({self.size}) must be even and >= 32")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps ({self.fps}) must be > 0")
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"duration_s ({self.duration_s}) must be > 0")
        if self.num_frames < 2:
            raise ValueError(
                f"fps ({self.fps}) x duration_s ({self.duration_s}) gives "
                f"{self.num_frames} frames; at least 2 are needed"
            )
        if self.codec not in video_writer.CODECS:
            raise ValueError(f"codec {self.codec!r} is not one of {', '.join(video_writer.CODECS)}")
        fractions = self.split_fractions
        if (
            len(fractions) != len(SPLITS)
            or any(not (math.isfinite(f) and f >= 0) for f in fractions)
            or abs(sum(fractions) - 1) > 1e-6
        ):
            raise ValueError(
                f"split_fractions {fractions} must be {len(SPLITS)} values >= 0 "
                f"({', '.join(SPLITS)}) that sum to 1"
            )

    @property
    def num_frames(self) -> int:
        return round(self.fps * self.duration_s)

    @property
    def extension(self) -> str:
        return video_writer.extension(self.codec)


@dataclass(frozen=True, kw_only=True)
class SynthVideo:
    """One planned video: its scene and everything the manifest says about it."""

    video_id: str
    split: str
    scene: Scene
    captions: tuple[str, ...]
    questions: tuple[QuestionAnswer, ...]
    labels: tuple[str, ...]

    def uri(self, extension: str) -> str:
        return f"{VIDEOS_DIR}/{self.video_id}.{extension}"

    def manifest_row(self, extension: str) -> dict:
        return {
            c.VIDEO_ID: self.video_id,
            c.URI: self.uri(extension),
            c.SPLIT: self.split,
            c.LABEL: self.scene.action,
            c.LABELS: list(self.labels),
            c.CAPTIONS: list(self.captions),
            c.QUESTIONS: [
                {c.QUESTION: qa.question, c.ANSWER: qa.answer, c.QUESTION_TYPE: qa.question_type}
                for qa in self.questions
            ],
        }


@dataclass(frozen=True, kw_only=True)
class SynthSummary:
    """What `generate_dataset` wrote, for people (`describe`) and tests."""

    config: SynthConfig
    out_dir: Path
    manifest_path: Path
    scenes_path: Path
    config_path: Path
    videos_dir: Path
    counts: dict[str, dict[str, int]]  # split -> action -> number of videos

    def split_counts(self) -> dict[str, int]:
        return {split: sum(by_action.values()) for split, by_action in self.counts.items()}

    def class_counts(self) -> dict[str, int]:
        return {a: sum(self.counts[s][a] for s in SPLITS) for a in ACTIONS}

    def describe(self) -> str:
        cfg = self.config
        lines = [
            f"wrote {cfg.num_videos} synthetic videos (seed {cfg.seed}) to {self.out_dir}",
            f"  videos:   {self.videos_dir}/*.{cfg.extension} ({cfg.codec}, {cfg.size}x{cfg.size}, "
            f"{cfg.fps:g} fps, {cfg.num_frames} frames)",
            f"  manifest: {self.manifest_path}",
            f"  scenes:   {self.scenes_path}",
            f"  config:   {self.config_path}",
            f"  {'class':<12}" + "".join(f"{s:>7}" for s in SPLITS),
        ]
        for action in ACTIONS:
            lines.append(
                f"  {action:<12}" + "".join(f"{self.counts[s][action]:>7}" for s in SPLITS)
            )
        totals = self.split_counts()
        lines.append(f"  {'total':<12}" + "".join(f"{totals[s]:>7}" for s in SPLITS))
        return "\n".join(lines)


def plan_dataset(config: SynthConfig) -> list[SynthVideo]:
    """Every video of the dataset, in id order; a pure function of `config`."""
    num = config.num_videos
    plan_rng = np.random.default_rng([config.seed, _PLAN_STREAM])
    # Balanced classes (counts differ by at most one), in a seeded order so that
    # ids say nothing about labels.
    actions = [ACTIONS[k % len(ACTIONS)] for k in plan_rng.permutation(num)]
    splits = assign_splits(actions, config.split_fractions, plan_rng)
    width = max(5, len(str(num - 1)))
    videos = []
    for index in range(num):
        scene = sample_scene(
            actions[index],
            np.random.default_rng([config.seed, _SCENE_STREAM, index]),
            size=config.size,
            num_frames=config.num_frames,
        )
        language_rng = np.random.default_rng([config.seed, _LANGUAGE_STREAM, index])
        videos.append(
            SynthVideo(
                video_id=f"{ID_PREFIX}{index:0{width}d}",
                split=splits[index],
                scene=scene,
                captions=tuple(captions(scene, language_rng)),
                questions=tuple(questions(scene, language_rng)),
                labels=tuple(labels(scene)),
            )
        )
    return videos


def assign_splits(
    classes: Sequence[str], fractions: Sequence[float], rng: np.random.Generator
) -> list[str]:
    """A split per item, stratified: each class's split counts are within one of its share.

    Within a class each split gets the floor of its share; the few left over go to
    the splits furthest below their share of all items so far, so totals track the
    fractions and small datasets still fill every split with a positive fraction.
    """
    if len(fractions) != len(SPLITS):
        raise ValueError(f"fractions {tuple(fractions)} must have one value per split {SPLITS}")
    totals = [0] * len(SPLITS)
    done = 0  # items assigned so far
    result: list[str] = [""] * len(classes)
    for cls in sorted(set(classes), key=list(classes).index):
        members = [i for i, other in enumerate(classes) if other == cls]
        members = [members[k] for k in rng.permutation(len(members))]
        done += len(members)
        # The epsilon keeps e.g. 0.7 * 30 = 20.999999999999996 from losing an item.
        quota = [math.floor(f * len(members) + 1e-9) for f in fractions]
        left_over = len(members) - sum(quota)
        deficits = [fractions[s] * done - totals[s] - quota[s] for s in range(len(SPLITS))]
        candidates = sorted(
            (s for s in range(len(SPLITS)) if fractions[s] > 0), key=lambda s: (-deficits[s], s)
        )
        for s in candidates[:left_over]:
            quota[s] += 1
        position = 0
        for s, count in enumerate(quota):
            for member in members[position : position + count]:
                result[member] = SPLITS[s]
            position += count
            totals[s] += count
    return result


def generate_dataset(
    config: SynthConfig, out_dir: str | Path, *, num_workers: int | None = None
) -> SynthSummary:
    """Write `out_dir/videos/*`, `scenes.jsonl`, `synth_config.json` and, last, `manifest.parquet`.

    Replaces a dataset already in `out_dir`; its manifest is removed first, so an
    interrupted run leaves no manifest. `num_workers` processes encode the videos
    (default: one per 64 videos, at most one per CPU) and the files do not depend
    on it. They are spawned, so a script calling this with more than one worker
    needs Python's `if __name__ == "__main__":` guard.
    """
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"num_workers ({num_workers}) must be >= 1")
    out = Path(out_dir)
    videos_dir = out / VIDEOS_DIR
    manifest_path = out / MANIFEST_NAME
    scenes_path = out / SCENES_NAME
    config_path = out / CONFIG_NAME
    for previous in (manifest_path, scenes_path, config_path):
        previous.unlink(missing_ok=True)
    videos_dir.mkdir(parents=True, exist_ok=True)
    for path in videos_dir.iterdir():
        if _PARTIAL.match(path.name):
            path.unlink()  # left by an interrupted run

    videos = plan_dataset(config)
    extension = config.extension
    jobs = [(v.scene, str(out / v.uri(extension)), config.fps, config.codec) for v in videos]
    workers = _num_workers(len(jobs)) if num_workers is None else num_workers
    logger.info("encoding %d videos with %d worker(s) into %s", len(jobs), workers, videos_dir)
    _encode_all(jobs, workers)

    wanted = {f"{v.video_id}.{extension}" for v in videos}
    for path in videos_dir.iterdir():
        if _OUR_VIDEO.match(path.name) and path.name not in wanted:
            path.unlink()  # left by an earlier, larger or other-codec dataset here
    scene_lines = [
        json.dumps({c.VIDEO_ID: v.video_id, c.SPLIT: v.split, SCENE_KEY: v.scene.to_json()})
        for v in videos
    ]
    _write_text(scenes_path, "\n".join(scene_lines) + "\n")
    _write_text(config_path, json.dumps(asdict(config), indent=2) + "\n")
    write_manifest(manifest_table([v.manifest_row(extension) for v in videos]), str(manifest_path))

    counts = {s: dict.fromkeys(ACTIONS, 0) for s in SPLITS}
    for v in videos:
        counts[v.split][v.scene.action] += 1
    for split, fraction in zip(SPLITS, config.split_fractions, strict=True):
        if fraction > 0 and not any(counts[split].values()):
            logger.warning("split %s is empty: %d videos are too few", split, config.num_videos)
    return SynthSummary(
        config=config,
        out_dir=out,
        manifest_path=manifest_path,
        scenes_path=scenes_path,
        config_path=config_path,
        videos_dir=videos_dir,
        counts=counts,
    )


def _encode_all(jobs: list[tuple[Scene, str, float, str]], workers: int) -> None:
    if workers == 1:
        for job in jobs:
            _write_video_job(job)
        return
    # spawn, not fork: the caller may hold threads (Arrow, torch) that fork would copy mid-use.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        chunk = max(1, len(jobs) // (4 * workers))
        for _ in pool.map(_write_video_job, jobs, chunksize=chunk):
            pass  # map raises a worker's exception here


def _num_workers(num_videos: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, num_videos // _VIDEOS_PER_WORKER))


def _write_video_job(job: tuple[Scene, str, float, str]) -> None:
    """Render and encode one video under a temporary name, then rename it into place."""
    scene, path, fps, codec = job
    final = Path(path)
    stem, suffix = final.name.split(".", 1)
    # The container is chosen from the suffix, so the temporary name keeps it.
    partial = final.with_name(f".{stem}.partial.{suffix}")
    video_writer.write_video(partial, render_frames(scene), fps=fps, codec=codec)
    os.replace(partial, final)


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)
