"""Reading and writing report.json and report.html through fsspec (local paths, memory://, s3://).

Each file is written under a temporary name and then moved into place, so a
scheduled job that polls for report.json never reads half of one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import fsspec
import numpy as np

from pipelines.report.document import REPORT_HTML, REPORT_JSON, validate_report
from pipelines.report.page import render_html

logger = logging.getLogger(__name__)


def report_to_json(report: dict[str, Any]) -> str:
    """Strict JSON (no NaN) with stable indentation, for people diffing files too."""
    return json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_report(
    report: dict[str, Any],
    out_dir: str,
    *,
    frames: Mapping[str, np.ndarray] | None = None,
) -> tuple[str, str]:
    """Validates `report` and writes report.json and report.html into `out_dir`.

    `frames` maps a video id to its sampled frames (T, H, W, 3) uint8, drawn
    under the attention weights. Returns the two files' paths (URLs keep
    their protocol).
    """
    # Rendered first: an invalid report or a bad frame array writes nothing.
    page = render_html(report, frames=frames)
    fs, root = fsspec.core.url_to_fs(str(out_dir))
    fs.makedirs(root, exist_ok=True)
    _put(fs, f"{root.rstrip('/')}/{REPORT_HTML}", page.encode())
    _put(fs, f"{root.rstrip('/')}/{REPORT_JSON}", report_to_json(report).encode())
    # Paths as the caller spelled the folder: a local path stays one, a URL keeps its protocol.
    folder = str(out_dir).rstrip("/")
    json_path, html_path = f"{folder}/{REPORT_JSON}", f"{folder}/{REPORT_HTML}"
    logger.info("wrote %s and %s", json_path, html_path)
    return json_path, html_path


def _put(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    temporary = f"{path}.tmp"
    with fs.open(temporary, "wb") as file:
        file.write(data)
    fs.mv(temporary, path)


def report_json_path(path_or_dir: str) -> str:
    """`path_or_dir` itself when it names a file, its report.json when it names a folder."""
    fs, path = fsspec.core.url_to_fs(str(path_or_dir))
    if fs.isdir(path):
        return f"{str(path_or_dir).rstrip('/')}/{REPORT_JSON}"
    return str(path_or_dir)


def read_report(path_or_dir: str, *, validate: bool = True) -> dict[str, Any]:
    """The report in a report.json (or in the report.json of a folder).

    FileNotFoundError when there is none; ValueError when it is not JSON or,
    with `validate`, breaks the contract of `pipelines.report.document`.
    """
    path = report_json_path(path_or_dir)
    with fsspec.open(path, "rb") as file:
        data = file.read()
    try:
        report = json.loads(data, parse_constant=_reject_constant)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError and NaN alike
        raise ValueError(f"{path} is not JSON: {error}") from error
    if validate:
        problems = validate_report(report)
        if problems:
            raise ValueError(
                f"{path} is not a valid report: {problems[0]} ({len(problems)} problems)"
            )
    return report


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a report")
