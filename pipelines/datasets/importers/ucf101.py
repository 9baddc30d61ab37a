"""UCF101's `ucfTrainTestlist/` (classInd.txt, trainlist0N.txt, testlist0N.txt) as a manifest.

https://www.crcv.ucf.edu/data/UCF101.php. Clips of one group (`_gNN_`) are
cut from one long video, so UCF101's rule is that a group never straddles
splits; the optional val split is carved from whole training groups.
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
# v_<Class>_g<group>_c<clip>.avi; the class part may differ in case from the
# folder (HandstandPushups/v_HandStandPushups_g01_c01.avi), so it is not compared.
_FILE_NAME = re.compile(r"^v_[A-Za-z0-9]+_g(\d+)_c(\d+)\.avi$")


def import_ucf101(
    src: Path, *, video_root: str = "videos", split_number: int = 1, val_groups: int = 0
) -> pa.Table:
    """The manifest of official split `split_number` (1-3) of UCF101.

    `src` is the `ucfTrainTestlist/` folder. Labels are the class names of
    classInd.txt; uris are `<video_root>/<Class>/<file>.avi`, the layout of
    the UCF-101 archive. With `val_groups` K > 0, the K highest-numbered
    groups among this split's training groups become `val` (for split 1,
    K=3 holds out groups 23-25 of every class); test stays the official one.
    """
    check_video_root(video_root)
    if split_number not in range(1, NUM_SPLITS + 1):
        raise ValueError(f"split_number ({split_number}) must be 1, 2 or 3")
    if val_groups < 0:
        raise ValueError(f"val_groups ({val_groups}) must be >= 0")
    if not src.is_dir():
        raise ValueError(f"{src.name} is not a folder; expected ucfTrainTestlist/")
    classes = _read_class_index(src / "classInd.txt")
    train = _read_list(src / f"trainlist{split_number:02d}.txt", classes, labelled=True)
    test = _read_list(src / f"testlist{split_number:02d}.txt", classes, labelled=False)

    held_out = _val_groups(train, val_groups, split_number)
    rows = []
    for place, class_name, file_name, group in train:
        split = "val" if group in held_out else "train"
        rows.append((place, _row(class_name, file_name, split, video_root)))
    for place, class_name, file_name, _ in test:
        rows.append((place, _row(class_name, file_name, "test", video_root)))
    logger.info(
        "ucf101 split %d: %d train, %d val (groups %s), %d test clips",
        split_number,
        sum(1 for _, _, _, group in train if group not in held_out),
        sum(1 for _, _, _, group in train if group in held_out),
        sorted(held_out),
        len(test),
    )
    return build_manifest(rows, src)


def _row(class_name: str, file_name: str, split: str, video_root: str) -> dict:
    return {
        c.VIDEO_ID: file_name.removesuffix(".avi"),
        c.URI: join_uri(video_root, class_name, file_name),
        c.SPLIT: split,
        c.LABEL: class_name,
    }


def _read_class_index(path: Path) -> dict[str, int]:
    """Class name -> index from lines "1 ApplyEyeMakeup"."""
    classes: dict[str, int] = {}
    for number, line in read_lines(path):
        place = where(path, number)
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{place}: expected '<index> <ClassName>', got {line!r}")
        index, name = int(parts[0]), checked_name(parts[1], place, "class name")
        if name in classes:
            raise ValueError(f"{place}: class {name!r} is listed twice")
        if index in classes.values():
            raise ValueError(f"{place}: class index {index} is listed twice")
        classes[name] = index
    if not classes:
        raise ValueError(f"{path.name} lists no classes")
    return classes


def _read_list(
    path: Path, classes: dict[str, int], *, labelled: bool
) -> list[tuple[str, str, str, int]]:
    """(place, class, file name, group) per line of a train list ("Class/file.avi 1") or test list."""
    entries = []
    for number, line in read_lines(path):
        place = where(path, number)
        parts = line.split()
        expected = "'<Class>/<file>.avi <index>'" if labelled else "'<Class>/<file>.avi'"
        if len(parts) != (2 if labelled else 1) or parts[0].count("/") != 1:
            raise ValueError(f"{place}: expected {expected}, got {line!r}")
        class_name, file_name = parts[0].split("/")
        checked_name(class_name, place, "class folder")
        checked_name(file_name, place, "file name")
        if class_name not in classes:
            raise ValueError(f"{place}: class {class_name!r} is not in classInd.txt")
        if labelled and parts[1] != str(classes[class_name]):
            raise ValueError(
                f"{place}: class index {parts[1]!r} does not match classInd.txt's "
                f"{classes[class_name]} for {class_name!r}"
            )
        match = _FILE_NAME.match(file_name)
        if match is None:
            raise ValueError(f"{place}: file name {file_name!r} is not v_<Class>_gNN_cNN.avi")
        entries.append((place, class_name, file_name, int(match.group(1))))
    return entries


def _val_groups(
    train: list[tuple[str, str, str, int]], num_val_groups: int, split_number: int
) -> set[int]:
    groups = sorted({group for _, _, _, group in train})
    if num_val_groups >= len(groups):
        raise ValueError(
            f"val_groups ({num_val_groups}) must be less than the {len(groups)} "
            f"training groups of split {split_number}"
        )
    return set(groups[len(groups) - num_val_groups :])
