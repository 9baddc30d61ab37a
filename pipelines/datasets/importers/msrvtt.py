"""MSR-VTT's train_val_videodatainfo.json / test_videodatainfo.json as a manifest.

https://www.microsoft.com/en-us/research/publication/msr-vtt-a-large-video-description-dataset-for-bridging-video-and-language/.
Each file holds {"videos": [...], "sentences": [...]}; captions are grouped per video.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipelines.datasets.importers._common import (
    build_manifest,
    check_span,
    check_video_root,
    checked_name,
    join_uri,
    read_json,
)
from schemas import columns as c

logger = logging.getLogger(__name__)

FILES = ("train_val_videodatainfo.json", "test_videodatainfo.json")
_SPLITS = {"train": "train", "validate": "val", "test": "test"}


def import_msrvtt(src: Path, *, video_root: str = "videos") -> pa.Table:
    """The manifest of one MSR-VTT info file, or of both in a folder.

    label is the category number as a string ("9"); the "start time"/"end time"
    (times in the source YouTube video) are checked but not kept, since
    video<N>.mp4 is already cut and start_s/end_s mean a window inside it; uris
    are `<video_root>/<video_id>.mp4` (video0.mp4 ...). Captions keep the
    file's order; a video without sentences has null captions.
    """
    check_video_root(video_root)
    if src.is_dir():
        paths = [src / name for name in FILES if (src / name).is_file()]
        if not paths:
            raise ValueError(f"no {' or '.join(FILES)} in {src.name}")
    else:
        paths = [src]
    rows = [row for path in paths for row in _read_info(path, video_root)]
    return build_manifest(rows, src)


def _read_info(path: Path, video_root: str) -> list[tuple[str, dict]]:
    document = read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("videos"), list):
        raise ValueError(f"{path.name}: expected an object with a 'videos' list")
    sentences = document.get("sentences", [])
    if not isinstance(sentences, list):
        raise ValueError(f"{path.name}: 'sentences' must be a list")

    rows: dict[str, tuple[str, dict]] = {}
    for index, video in enumerate(document["videos"]):
        place = f"{path.name} videos[{index}]"
        video_id = checked_name(_field(video, "video_id", str, place), place)
        split = _field(video, "split", str, place)
        if split not in _SPLITS:
            raise ValueError(f"{place}: split {split!r} must be one of {', '.join(_SPLITS)}")
        category = _field(video, "category", int, place)
        start_s = _seconds(video, "start time", place)
        end_s = _seconds(video, "end time", place)
        check_span(start_s, end_s, place)
        if video_id in rows:
            raise ValueError(
                f"{place}: duplicate video id {video_id!r} (first at {rows[video_id][0]})"
            )
        row = {
            c.VIDEO_ID: video_id,
            c.URI: join_uri(video_root, f"{video_id}.mp4"),
            c.SPLIT: _SPLITS[split],
            c.LABEL: str(category),
            c.START_S: None,
            c.END_S: None,
        }
        rows[video_id] = (place, row)

    captions: dict[str, list[str]] = {}
    for index, sentence in enumerate(sentences):
        place = f"{path.name} sentences[{index}]"
        video_id = _field(sentence, "video_id", str, place)
        caption = _field(sentence, "caption", str, place).strip()
        if video_id not in rows:
            raise ValueError(f"{place}: video {video_id!r} is not in this file's videos")
        if not caption:
            raise ValueError(f"{place}: caption is empty")
        captions.setdefault(video_id, []).append(caption)
    return [
        (place, {**row, c.CAPTIONS: captions.get(video_id)})
        for video_id, (place, row) in rows.items()
    ]


def _field(record: Any, key: str, kind: type, place: str) -> Any:
    if not isinstance(record, dict) or key not in record:
        raise ValueError(f"{place}: missing {key!r}")
    value = record[key]
    # bool is an int in Python but never a category.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{place}: {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _seconds(record: Any, key: str, place: str) -> float:
    if not isinstance(record, dict) or key not in record:
        raise ValueError(f"{place}: missing {key!r}")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{place}: {key!r} must be a number, got {value!r}")
    if value < 0:
        raise ValueError(f"{place}: {key!r} ({value}) must be >= 0")
    return float(value)
