"""What `vidpipe run` recorded about a job's stages (ROOT/jobs/<job>/state.json), and the keys and
output digests that decide whether a stage is up to date: same command, same inputs, outputs intact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import fsspec

from schemas import content_hash

STATE_VERSION = 1
RUNNING = "running"  # written before a stage starts: its outputs are the job's, even half-made
DONE = "done"
FAILED = "failed"
STATUSES = (RUNNING, DONE, FAILED)


@dataclass(frozen=True, kw_only=True)
class StageRecord:
    """One stage's last run: its key, where its outputs are, and their digest when it finished."""

    key: str
    status: str
    output: str
    digest: str | None = None
    exit_code: int | None = None
    seconds: float | None = None
    finished_at: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")


def stage_key(argv: Sequence[str], inputs: Mapping[str, str | None]) -> str:
    """The fingerprint of a stage: its command line and the digests of the outputs it reads.

    An upstream stage that ran again changes its digest, so everything downstream runs again.
    """
    return content_hash({"argv": list(argv), "inputs": dict(inputs)}, length=32)


def is_up_to_date(record: StageRecord | None, key: str, digest: str | None) -> bool:
    """True when the stage finished with this key and its outputs still have the recorded digest."""
    return (
        record is not None
        and record.status == DONE
        and record.key == key
        and digest is not None
        and record.digest == digest
    )


def read_state(uri: str) -> dict[str, StageRecord]:
    """The records of state.json by stage id; {} when there is none. ValueError when unreadable."""
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        return {}
    try:
        with fs.open(path, "rb") as f:
            data = json.load(f)
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"version {data.get('version')!r} is not {STATE_VERSION}")
        return {stage: StageRecord(**record) for stage, record in data["stages"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{uri} is not a job state file: {error}") from error


def write_state(uri: str, records: Mapping[str, StageRecord]) -> None:
    """Write state.json atomically (a temporary name, then a rename): a kill leaves the old one."""
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    body = {"version": STATE_VERSION, "stages": {k: asdict(r) for k, r in records.items()}}
    temporary = f"{path}.{uuid.uuid4().hex}.tmp-writing"
    with fs.open(temporary, "wb") as f:
        f.write(json.dumps(body, indent=2, sort_keys=True).encode())
    fs.mv(temporary, path)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def exists(uri: str) -> bool:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs.exists(path)


def remove(uri: str) -> None:
    """Remove the file or folder at `uri` (outputs of this job that are out of date)."""
    fs, path = fsspec.core.url_to_fs(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def _file_digest(uri: str, extra: Iterable[str] = ()) -> str | None:
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        return None
    digest = hashlib.sha256()
    with fs.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    for item in extra:
        digest.update(b"\0" + item.encode())
    return digest.hexdigest()[:32]


def output_digest(kind: str, output: str) -> str | None:
    """A digest of a stage's outputs at `output`, or None while its completion marker is missing.

    Markers are the files each command writes last: the manifest, a feature set's
    feature_set.json (plus the videos committed to it), model.json, predictions.json and
    report.json.
    """
    if kind == "dataset":
        return _file_digest(output)
    if kind == "extract":
        from workers import store

        if not exists(f"{output}/{store.FEATURE_SET_FILE}"):
            return None
        done, failed = store.committed_video_ids(output)
        committed = [f"ok:{v}" for v in sorted(done)] + [f"error:{v}" for v in sorted(failed)]
        return _file_digest(f"{output}/{store.FEATURE_SET_FILE}", committed)
    if kind == "train":
        from pipelines.artifacts import META_FILE

        return _file_digest(f"{output}/{META_FILE}")
    if kind == "infer":
        from pipelines.inference.pipeline import SUMMARY_FILE

        return _file_digest(f"{output}/{SUMMARY_FILE}")
    if kind == "evaluate":
        from pipelines.report import REPORT_JSON

        return _file_digest(f"{output}/{REPORT_JSON}")
    raise ValueError(f"kind {kind!r} has no outputs we know of")


def covers(feature_set_uri: str, video_ids: Iterable[str]) -> bool:
    """True when every one of `video_ids` is committed to the feature set (features or error)."""
    from workers import store

    done, failed = store.committed_video_ids(feature_set_uri)
    return set(video_ids) <= done | failed
