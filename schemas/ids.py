"""Ids that are safe to use as file names, and content-hash ids.

Video ids come from user manifests and end up in paths, so they are
untrusted until `id_problem` says otherwise.
"""

import hashlib
import json
import re
import unicodedata
from typing import Any

MAX_ID_BYTES = 200
_SEPARATORS = ("/", "\\")
_PLAIN_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._=+-]*$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")


def id_problem(video_id: object) -> str | None:
    """Why `video_id` is not safe as a file name, or None when it is."""
    if (
        isinstance(video_id, str)
        and len(video_id) <= MAX_ID_BYTES
        and _PLAIN_ID.match(video_id)
        and ".." not in video_id
    ):
        return None  # the common case, decided without a per-character scan
    if not isinstance(video_id, str):
        return f"id must be a string, got {type(video_id).__name__}"
    if not video_id.strip():
        return "id is empty"
    if any(sep in video_id for sep in _SEPARATORS):
        return f"id {video_id!r} contains a path separator"
    if video_id in (".", "..") or ".." in video_id:
        return f"id {video_id!r} contains '..'"
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in video_id):
        return f"id {video_id!r} contains a control character"
    if video_id != video_id.strip():
        return f"id {video_id!r} has leading or trailing white space"
    if video_id.startswith("."):
        return f"id {video_id!r} starts with '.' (a hidden file name)"
    if ":" in video_id:
        return f"id {video_id!r} contains ':' (a drive or scheme separator)"
    if len(video_id.encode()) > MAX_ID_BYTES:
        return f"id is longer than {MAX_ID_BYTES} bytes"
    return None


def check_id(video_id: object) -> str:
    """`video_id` itself when it is safe as a file name; ValueError otherwise."""
    problem = id_problem(video_id)
    if problem is not None:
        raise ValueError(problem)
    return video_id  # type: ignore[return-value]


def slug(text: str) -> str:
    """`text` reduced to characters safe in a file name (for readable id prefixes)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return cleaned or "x"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spacing: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def content_hash(value: Any, length: int = 16) -> str:
    """Hex sha256 of `value`'s canonical JSON, cut to `length` characters."""
    if not 8 <= length <= 64:
        raise ValueError(f"length ({length}) must be between 8 and 64")
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


def is_plain_name(name: str) -> bool:
    """True for names made only of letters, digits and ._=+- (ids we mint ourselves)."""
    return bool(_SAFE_NAME.match(name))
