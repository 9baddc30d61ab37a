"""Kinetics-400/600/700 annotation CSVs (`label,youtube_id,time_start,time_end,split`) as a manifest.

https://github.com/cvdfoundation/kinetics-dataset. Test CSVs may lack the
label column and some releases add `is_cc`; extra columns are ignored.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from pipelines.datasets.importers._common import (
    build_manifest,
    check_span,
    check_video_root,
    checked_name,
    join_uri,
    read_csv,
)
from schemas import columns as c

logger = logging.getLogger(__name__)

# Kinetics-700 writes "validate", the 2020 Kinetics-400 re-release "val".
_SPLITS = {"train": "train", "validate": "val", "val": "val", "test": "test"}
_REQUIRED = ("youtube_id", "time_start", "time_end", "split")
# Looked for, in this order, when the source is a folder.
_FOLDER_FILES = ("train.csv", "validate.csv", "val.csv", "test.csv")


def import_kinetics(src: Path, *, video_root: str = "videos") -> pa.Table:
    """The manifest of one Kinetics CSV, or of train/validate|val/test.csv in a folder.

    video_id is `{youtube_id}_{time_start:06d}_{time_end:06d}`, the name the
    CVDF archives and the official downloader give each clip; uris are
    `<video_root>/<split>/<video_id>.mp4` (split: train, val or test, the
    folders of the CVDF archives). start_s/end_s stay null: in the manifest they
    mean a window inside the file at `uri`, and these files are already cut
    to the clip (the clip's times in the source video are checked, not kept).
    """
    check_video_root(video_root)
    if src.is_dir():
        paths = [src / name for name in _FOLDER_FILES if (src / name).is_file()]
        if not paths:
            raise ValueError(f"no {', '.join(_FOLDER_FILES)} in {src.name}")
    else:
        paths = [src]
    rows = [row for path in paths for row in _read_csv(path, video_root)]
    logger.info("kinetics: %d clips from %s", len(rows), ", ".join(p.name for p in paths))
    return build_manifest(rows, src)


def _read_csv(path: Path, video_root: str) -> list[tuple[str, dict]]:
    rows = []
    for place, record in read_csv(path, _REQUIRED):
        youtube_id = checked_name(record["youtube_id"].strip(), place, "youtube_id")
        start, end = (_whole_seconds(record[n], place, n) for n in ("time_start", "time_end"))
        check_span(start, end, place)
        split = record["split"].strip()
        if split not in _SPLITS:
            raise ValueError(f"{place}: split {split!r} must be one of {', '.join(_SPLITS)}")
        video_id = checked_name(f"{youtube_id}_{start:06d}_{end:06d}", place)
        label = (record.get("label") or "").strip() or None
        row = {
            c.VIDEO_ID: video_id,
            c.URI: join_uri(video_root, _SPLITS[split], f"{video_id}.mp4"),
            c.SPLIT: _SPLITS[split],
            c.LABEL: label,
            c.START_S: None,
            c.END_S: None,
        }
        rows.append((place, row))
    return rows


def _whole_seconds(text: str, place: str, name: str) -> int:
    """Kinetics times are whole seconds; the clip name depends on it (`%06d`)."""
    text = text.strip()
    if not text.isdigit():
        raise ValueError(f"{place}: {name} {text!r} must be a whole number of seconds")
    return int(text)
