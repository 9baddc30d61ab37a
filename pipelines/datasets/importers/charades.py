"""Charades' Charades_v1_train.csv / Charades_v1_test.csv (+ Charades_v1_classes.txt) as a manifest.

https://prior.allenai.org/projects/charades. Multi-label: `actions` is
"c092 11.90 21.20;c147 0.00 12.60", and a video's labels are its classes.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pyarrow as pa

from pipelines.datasets.importers._common import (
    build_manifest,
    check_video_root,
    checked_name,
    join_uri,
    parse_seconds,
    read_csv,
    read_lines,
    where,
)
from schemas import columns as c

logger = logging.getLogger(__name__)

CLASSES_FILE = "Charades_v1_classes.txt"
_SPLIT_FILES = {"Charades_v1_train.csv": "train", "Charades_v1_test.csv": "test"}
_REQUIRED = ("id", "descriptions", "actions")
_CLASS_ID = re.compile(r"^c\d{3}$")


def import_charades(src: Path, *, video_root: str = "videos") -> pa.Table:
    """The manifest of Charades_v1_train.csv and/or Charades_v1_test.csv.

    `src` is one of the CSVs or the folder holding them. `labels` are the
    class names from Charades_v1_classes.txt beside them (the class ids,
    "c092", when that file is absent), unique and in class-id order; `label`
    is null. Captions are the `descriptions` (written afterwards by people who
    watched the video, ";"-separated); `script` is left out because it is
    the prompt the actor was given, not a description of what was filmed.
    The per-action times are not kept: the manifest has no column for them.
    Uris are `<video_root>/<id>.mp4`, the layout of Charades_v1_480.zip.
    """
    check_video_root(video_root)
    if src.is_dir():
        paths = [src / name for name in _SPLIT_FILES if (src / name).is_file()]
        if not paths:
            raise ValueError(f"no {' or '.join(_SPLIT_FILES)} in {src.name}")
        folder = src
    else:
        if src.name not in _SPLIT_FILES:
            raise ValueError(
                f"cannot tell the split of {src.name}; expected {' or '.join(_SPLIT_FILES)}"
            )
        paths = [src]
        folder = src.parent
    classes_path = folder / CLASSES_FILE
    classes = _read_classes(classes_path) if classes_path.is_file() else None
    if classes is None:
        logger.warning("no %s beside %s: labels are class ids", CLASSES_FILE, src.name)
    rows = [row for path in paths for row in _read_csv(path, classes, video_root)]
    return build_manifest(rows, src)


def _read_classes(path: Path) -> dict[str, str]:
    """Class id -> name from lines "c000 Holding some clothes"."""
    classes = {}
    for number, line in read_lines(path):
        class_id, _, name = line.partition(" ")
        if not _CLASS_ID.match(class_id) or not name.strip():
            raise ValueError(f"{where(path, number)}: expected 'c<NNN> <name>', got {line!r}")
        if class_id in classes:
            raise ValueError(f"{where(path, number)}: class {class_id} is listed twice")
        classes[class_id] = name.strip()
    return classes


def _read_csv(
    path: Path, classes: dict[str, str] | None, video_root: str
) -> list[tuple[str, dict]]:
    rows = []
    for place, record in read_csv(path, _REQUIRED):
        video_id = checked_name(record["id"].strip(), place)
        class_ids = sorted({_action_class(a, place) for a in _items(record["actions"])})
        if classes is not None:
            unknown = [class_id for class_id in class_ids if class_id not in classes]
            if unknown:
                raise ValueError(f"{place}: class {unknown[0]} is not in {CLASSES_FILE}")
        captions = [" ".join(text.split()) for text in _items(record["descriptions"])]
        row = {
            c.VIDEO_ID: video_id,
            c.URI: join_uri(video_root, f"{video_id}.mp4"),
            c.SPLIT: _SPLIT_FILES[path.name],
            c.LABELS: [classes[i] for i in class_ids] if classes is not None else class_ids,
            c.CAPTIONS: captions or None,
        }
        rows.append((place, row))
    return rows


def _items(field: str) -> list[str]:
    """The non-empty ";"-separated items of a field."""
    return [item.strip() for item in field.split(";") if item.strip()]


def _action_class(action: str, place: str) -> str:
    """The class id of one "c092 11.90 21.20" action, after checking its times."""
    parts = action.split()
    if len(parts) != 3 or not _CLASS_ID.match(parts[0]):
        raise ValueError(f"{place}: action {action!r} is not 'c<NNN> <start> <end>'")
    # Only parsed: the times are not kept, so their order is not this importer's to police.
    parse_seconds(parts[1], place, "action start")
    parse_seconds(parts[2], place, "action end")
    return parts[0]
