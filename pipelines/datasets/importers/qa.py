"""MSRVTT-QA and MSVD-QA (Xu et al. 2017) {train,val,test}_qa.json as manifests with questions.

https://github.com/xudejing/video-question-answering. Items are
{"answer", "id", "question", "video_id"}; question_type is the question's
first word (what, who, how, when, where), the convention of the paper.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from pipelines.datasets.importers._common import (
    build_manifest,
    check_video_root,
    checked_name,
    join_uri,
    read_json,
)
from pipelines.datasets.importers.msvd import MAPPING_FILE, clip_span, read_vid_numbers
from schemas import columns as c

logger = logging.getLogger(__name__)

QA_FILES = {"train_qa.json": "train", "val_qa.json": "val", "test_qa.json": "test"}


def import_msrvtt_qa(src: Path, *, video_root: str = "videos") -> pa.Table:
    """The manifest of MSRVTT-QA: video_id `video<N>`, uri `<video_root>/video<N>.mp4`.

    `src` is the folder of the QA files or one of them; the split is the
    file's (train_qa.json -> train). Only questions are filled: import
    MSR-VTT itself for captions.
    """
    check_video_root(video_root)

    def describe(number: int, place: str) -> dict:
        video_id = f"video{number}"
        return {c.VIDEO_ID: video_id, c.URI: join_uri(video_root, f"{video_id}.mp4")}

    return _import_qa(src, describe)


def import_msvd_qa(src: Path, *, video_root: str = "videos") -> pa.Table:
    """The manifest of MSVD-QA, whose video_id numbers are the vid numbers of youtube_mapping.txt.

    youtube_mapping.txt must sit beside the QA files. video_id and uri are
    those of the `msvd` importer (the clip name; start_s/end_s stay null). The split
    is the QA file's, MSVD-QA's own, which need not match the 1200/100/670
    captioning split that `msvd` applies.
    """
    check_video_root(video_root)
    folder = src if src.is_dir() else src.parent
    mapping_path = folder / MAPPING_FILE
    if not mapping_path.is_file():
        raise ValueError(f"no {MAPPING_FILE} in {folder.name}; MSVD-QA names videos by vid number")
    clip_of = {vid: clip for clip, vid in read_vid_numbers(mapping_path).items()}

    def describe(number: int, place: str) -> dict:
        if number not in clip_of:
            raise ValueError(f"{place}: video_id {number} (vid{number}) is not in {MAPPING_FILE}")
        clip = clip_of[number]
        clip_span(clip, place)
        return {
            c.VIDEO_ID: clip,
            c.URI: join_uri(video_root, f"{clip}.avi"),
            c.START_S: None,
            c.END_S: None,
        }

    return _import_qa(src, describe)


def _import_qa(src: Path, describe: Callable[[int, str], dict]) -> pa.Table:
    if src.is_dir():
        paths = [src / name for name in QA_FILES if (src / name).is_file()]
        if not paths:
            raise ValueError(f"no {', '.join(QA_FILES)} in {src.name}")
    elif src.name in QA_FILES:
        paths = [src]
    else:
        raise ValueError(f"cannot tell the split of {src.name}; expected {', '.join(QA_FILES)}")

    rows: dict[str, tuple[str, dict]] = {}
    for path in paths:
        items = read_json(path)
        if not isinstance(items, list):
            raise ValueError(f"{path.name}: expected a list of question-answer items")
        split = QA_FILES[path.name]
        for index, item in enumerate(items):
            place = f"{path.name} [{index}]"
            number, qa = _question(item, place)
            video = describe(number, place)
            video_id = checked_name(video[c.VIDEO_ID], place)
            if video_id not in rows:
                rows[video_id] = (place, {**video, c.SPLIT: split, c.QUESTIONS: []})
            first_place, row = rows[video_id]
            if row[c.SPLIT] != split:
                raise ValueError(
                    f"{place}: video {video_id!r} is also in split {row[c.SPLIT]} ({first_place})"
                )
            row[c.QUESTIONS].append(qa)
    logger.info(
        "%d questions on %d videos", sum(len(r[c.QUESTIONS]) for _, r in rows.values()), len(rows)
    )
    return build_manifest(list(rows.values()), src)


def _question(item: object, place: str) -> tuple[int, dict]:
    """(video number, question struct) of one item."""
    if not isinstance(item, dict):
        raise ValueError(f"{place}: expected an object, got {type(item).__name__}")
    for key in ("question", "answer"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise ValueError(f"{place}: {key!r} must be a non-empty string")
    number = item.get("video_id")
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ValueError(f"{place}: 'video_id' must be an integer >= 0, got {number!r}")
    question = " ".join(item["question"].split())
    qa = {
        c.QUESTION: question,
        c.ANSWER: " ".join(item["answer"].split()),
        c.QUESTION_TYPE: question.split()[0].lower(),
    }
    return number, qa
