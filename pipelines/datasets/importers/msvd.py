"""MSVD (YouTube2Text): AllVideoDescriptions.txt (+ youtube_mapping.txt) as a manifest.

https://www.cs.utexas.edu/users/ml/clamp/videoDescription/. The standard
captioning split (Venugopalan et al. 2015; Yao et al. 2015) is by the vid
number of youtube_mapping.txt: vid1-1200 train, vid1201-1300 val, the rest test.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pyarrow as pa

from pipelines.datasets.importers._common import (
    build_manifest,
    check_span,
    check_video_root,
    checked_name,
    join_uri,
    read_lines,
    where,
)
from schemas import columns as c

logger = logging.getLogger(__name__)

DESCRIPTIONS_FILE = "AllVideoDescriptions.txt"
MAPPING_FILE = "youtube_mapping.txt"
LAST_TRAIN_VID = 1200
LAST_VAL_VID = 1300
# <youtube id>_<start>_<end>; YouTube ids may themselves contain "_" and "-".
_CLIP = re.compile(r"^(?P<youtube_id>.+)_(?P<start>\d+)_(?P<end>\d+)$")
_VID = re.compile(r"^vid(\d+)$")


def import_msvd(src: Path, *, video_root: str = "videos") -> pa.Table:
    """The manifest of AllVideoDescriptions.txt, captions grouped per clip in file order.

    `src` is the file or its folder. video_id is the clip name
    ("-4wsuPCjDBc_5_15"); the seconds in its name (times in the source
    YouTube video) are checked but not kept as start_s/end_s, since the .avi
    is already cut to the clip; uris are `<video_root>/<clip>.avi`, the
    layout of YouTubeClips.tar. The split follows youtube_mapping.txt beside
    the descriptions; without that file every clip goes to `train` and a
    warning says so, since no split can be recovered from the descriptions.
    """
    check_video_root(video_root)
    path = src / DESCRIPTIONS_FILE if src.is_dir() else src
    captions: dict[str, list[str]] = {}
    first_place: dict[str, str] = {}
    for number, line in read_lines(path):
        if line.startswith("#"):
            continue
        place = where(path, number)
        clip, _, caption = line.partition(" ")
        checked_name(clip, place)
        if not caption.strip():
            raise ValueError(f"{place}: clip {clip!r} has no caption")
        if clip not in captions:
            clip_span(clip, place)
            first_place[clip] = place
            captions[clip] = []
        captions[clip].append(caption.strip())

    mapping_path = path.parent / MAPPING_FILE
    if mapping_path.is_file():
        split_of = _read_mapping(mapping_path)
    else:
        logger.warning(
            "no %s beside %s: all %d clips are in split train",
            MAPPING_FILE,
            path.name,
            len(captions),
        )
        split_of = dict.fromkeys(captions, "train")
    rows = []
    for clip, texts in captions.items():
        if clip not in split_of:
            raise ValueError(f"{first_place[clip]}: clip {clip!r} is not in {MAPPING_FILE}")
        row = {
            c.VIDEO_ID: clip,
            c.URI: join_uri(video_root, f"{clip}.avi"),
            c.SPLIT: split_of[clip],
            c.CAPTIONS: texts,
            c.START_S: None,
            c.END_S: None,
        }
        rows.append((first_place[clip], row))
    return build_manifest(rows, path)


def read_vid_numbers(path: Path) -> dict[str, int]:
    """Clip name -> vid number from youtube_mapping.txt lines "-4wsuPCjDBc_5_15 vid1"."""
    numbers: dict[str, int] = {}
    seen: dict[int, str] = {}
    for number, line in read_lines(path):
        place = where(path, number)
        parts = line.split()
        match = _VID.match(parts[1]) if len(parts) == 2 else None
        if match is None or int(match.group(1)) == 0:
            raise ValueError(f"{place}: expected '<clip> vid<N>' with N >= 1, got {line!r}")
        clip, vid = checked_name(parts[0], place), int(match.group(1))
        if clip in numbers or vid in seen:
            raise ValueError(f"{place}: clip {clip!r} or vid{vid} is mapped twice")
        numbers[clip] = vid
        seen[vid] = clip
    return numbers


def _read_mapping(path: Path) -> dict[str, str]:
    """Clip name -> split, by vid number."""
    return {clip: _split_of_vid(vid) for clip, vid in read_vid_numbers(path).items()}


def _split_of_vid(vid: int) -> str:
    if vid <= LAST_TRAIN_VID:
        return "train"
    return "val" if vid <= LAST_VAL_VID else "test"


def clip_span(clip: str, place: str) -> tuple[float, float]:
    """(start_s, end_s) from a clip name "<youtube id>_<start>_<end>"."""
    match = _CLIP.match(clip)
    if match is None:
        raise ValueError(f"{place}: clip {clip!r} is not '<youtube id>_<start>_<end>'")
    start_s, end_s = float(match["start"]), float(match["end"])
    check_span(start_s, end_s, place)
    return start_s, end_s
