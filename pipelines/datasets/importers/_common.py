"""Shared parsing helpers for the importers: numbered lines, located errors, untrusted ids.

Every error names the file and the line (or JSON path) it comes from, so a
user with a 13,000-line split file can find the bad row.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from schemas import columns as c
from schemas import id_problem, manifest_table


def where(path: Path, line: int) -> str:
    """How errors name a line of a file."""
    return f"{path.name} line {line}"


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-blank lines of a UTF-8 text file.

    Accepts CRLF line ends (UCF101's lists are Windows text files) and a
    byte-order mark. Only "\n" ends a line, so that a stray separator such as
    U+2028 inside a caption cannot shift the line numbers of later errors.
    """
    return [
        (number, line.strip())
        for number, line in enumerate(read_text(path).split("\n"), start=1)
        if line.strip()
    ]


def read_text(path: Path) -> str:
    """The whole text of `path`; ValueError naming the line of the first non-UTF-8 byte."""
    if not path.is_file():
        raise ValueError(f"{path.name} not found in {path.parent}")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(f"{where(path, line)}: not UTF-8 text") from None


def read_json(path: Path) -> Any:
    """The parsed JSON document at `path`; ValueError naming the line of a syntax error."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where(path, error.lineno)}: invalid JSON: {error.msg}") from None


def read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[str, dict[str, str]]]:
    """(place, record) per row of a CSV file with a header that has the `required` columns.

    A place names the record's first line (quoted fields may span lines); a
    row with more or fewer fields than the header is an error.
    """
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""), strict=True)
    records = []
    try:
        header = reader.fieldnames or []
        missing = [name for name in required if name not in header]
        if missing:
            raise ValueError(f"{where(path, 1)}: header lacks column {', '.join(missing)}")
        last_line = 1
        for record in reader:
            place = where(path, last_line + 1)
            last_line = reader.line_num
            if None in record or any(record[name] is None for name in header):
                raise ValueError(f"{place}: expected {len(header)} fields like the header")
            records.append((place, record))
    except csv.Error as error:
        raise ValueError(f"{where(path, reader.line_num)}: bad CSV: {error}") from None
    return records


def checked_name(value: str, place: str, what: str = "video id") -> str:
    """`value` when it is safe as a file name; otherwise ValueError naming `place`.

    Ids in published files are untrusted: they become paths, so a bad one is
    an error rather than something silently rewritten.
    """
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(f"{place}: unsafe {what}: {problem}")
    return value


def join_uri(video_root: str, *parts: str) -> str:
    """`video_root/part/...` with forward slashes, for local folders and URLs alike."""
    return "/".join([video_root.rstrip("/"), *parts])


def check_video_root(video_root: str) -> None:
    if not video_root.strip():
        raise ValueError("video_root is empty")


def parse_seconds(text: str, place: str, name: str) -> float:
    """`text` as a finite, non-negative number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{place}: {name} {text!r} is not a number") from None
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"{place}: {name} {text!r} must be a finite number >= 0")
    return seconds


def check_span(start_s: float, end_s: float, place: str) -> None:
    if end_s <= start_s:
        raise ValueError(f"{place}: end ({end_s:g}) must be after start ({start_s:g})")


def build_manifest(rows: list[tuple[str, dict]], source: Path) -> pa.Table:
    """A manifest from (place, row) pairs; a repeated video id is an error naming both places."""
    first_place: dict[str, str] = {}
    for place, row in rows:
        video_id = row[c.VIDEO_ID]
        if video_id in first_place:
            raise ValueError(
                f"{place}: duplicate video id {video_id!r} (first at {first_place[video_id]})"
            )
        first_place[video_id] = place
    if not rows:
        raise ValueError(f"no videos found in {source.name}")
    return manifest_table([row for _, row in rows])
