"""HMDB51's `testTrainMulti_7030_splits/` (`<action>_test_split<N>.txt`) as a manifest.

https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/.
Each line is "<video>.avi <id>": 1 = train, 2 = test, 0 = left out of
this split by the authors.
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
    read_lines,
    where,
)
from schemas import columns as c

logger = logging.getLogger(__name__)

NUM_SPLITS = 3
# 0 is excluded, not mapped to val: the authors picked the 70/30 clips so that
# no source video is on both sides and promised nothing for the clips marked 0,
# so a val split of them could share source videos with train and test.
_SPLIT_OF_ID = {"1": "train", "2": "test"}
_UNUSED_ID = "0"
_SPLIT_FILE = re.compile(r"^(?P<action>.+)_test_split(?P<number>\d+)\.txt$")


def import_hmdb51(src: Path, *, video_root: str = "videos", split_number: int = 1) -> pa.Table:
    """The manifest of official split `split_number` (1-3) of HMDB51 (clips marked 0 excluded).

    `src` is the split folder. Labels are the action names of the file names
    (`brush_hair`); uris are `<video_root>/<action>/<video>.avi`, the layout
    of the extracted hmdb51_org archives.
    """
    check_video_root(video_root)
    if split_number not in range(1, NUM_SPLITS + 1):
        raise ValueError(f"split_number ({split_number}) must be 1, 2 or 3")
    if not src.is_dir():
        raise ValueError(f"{src.name} is not a folder; expected testTrainMulti_7030_splits/")
    split_files = []
    for path in sorted(src.iterdir()):
        match = _SPLIT_FILE.match(path.name)
        if match and int(match["number"]) == split_number:
            split_files.append((match["action"], path))
    if not split_files:
        raise ValueError(f"no <action>_test_split{split_number}.txt files in {src.name}")

    rows = []
    num_unused = 0
    for action, path in split_files:
        checked_name(action, path.name, "action name")
        for number, line in read_lines(path):
            place = where(path, number)
            parts = line.split()
            if len(parts) != 2 or not parts[0].endswith(".avi"):
                raise ValueError(f"{place}: expected '<video>.avi <0|1|2>', got {line!r}")
            file_name, split_id = parts
            checked_name(file_name, place, "file name")
            if split_id == _UNUSED_ID:
                num_unused += 1
                continue
            if split_id not in _SPLIT_OF_ID:
                raise ValueError(f"{place}: split id {split_id!r} must be 0, 1 or 2")
            row = {
                c.VIDEO_ID: file_name.removesuffix(".avi"),
                c.URI: join_uri(video_root, action, file_name),
                c.SPLIT: _SPLIT_OF_ID[split_id],
                c.LABEL: action,
            }
            rows.append((place, row))
    logger.info(
        "hmdb51 split %d: %d clips from %d actions, %d marked 0 (unused) left out",
        split_number,
        len(rows),
        len(split_files),
        num_unused,
    )
    return build_manifest(rows, src)
