"""The manifest: one row per video, with its labels, captions and questions.

Every stage starts from a manifest, and manifests come from users and
importers, so `validate_manifest` reports every problem (row and column)
instead of stopping at the first.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass

import pyarrow as pa

from schemas import columns as c
from schemas._meta import versioned
from schemas.ids import id_problem

SPLITS = ("train", "val", "test")

QA_STRUCT = pa.struct(
    [
        pa.field(c.QUESTION, pa.string(), nullable=False),
        pa.field(c.ANSWER, pa.string(), nullable=False),
        pa.field(c.QUESTION_TYPE, pa.string(), nullable=False),
    ]
)

MANIFEST_SCHEMA = versioned(
    "manifest",
    1,
    [
        pa.field(c.VIDEO_ID, pa.string(), nullable=False),
        pa.field(c.URI, pa.string(), nullable=False),
        pa.field(c.SPLIT, pa.string(), nullable=False),
        pa.field(c.LABEL, pa.string()),
        pa.field(c.LABELS, pa.list_(pa.string())),
        pa.field(c.CAPTIONS, pa.list_(pa.string())),
        pa.field(c.QUESTIONS, pa.list_(QA_STRUCT)),
        # A window inside the file at `uri`, in seconds; null means the whole file.
        pa.field(c.START_S, pa.float64()),
        pa.field(c.END_S, pa.float64()),
    ],
)

REQUIRED_COLUMNS = (c.VIDEO_ID, c.URI, c.SPLIT)


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong with a manifest; `row` is None for whole-column problems."""

    row: int | None
    column: str
    message: str

    def __str__(self) -> str:
        where = (
            f"column {self.column}" if self.row is None else f"row {self.row}, column {self.column}"
        )
        return f"{where}: {self.message}"


def manifest_table(rows: list[dict]) -> pa.Table:
    """A manifest table from row dicts; missing optional columns become nulls."""
    full = [{name: row.get(name) for name in MANIFEST_SCHEMA.names} for row in rows]
    return pa.Table.from_pylist(full, schema=MANIFEST_SCHEMA)


def validate_manifest(table: pa.Table) -> list[ManifestProblem]:
    """Every problem in `table`, in row order; an empty list means it is valid."""
    problems = _column_problems(table)
    bad_columns = {p.column for p in problems}
    rows = table.to_pylist()
    first_seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        problems += _row_problems(index, row, bad_columns, first_seen)
    return sorted(problems, key=lambda p: (-1 if p.row is None else p.row, p.column))


def _column_problems(table: pa.Table) -> list[ManifestProblem]:
    problems = []
    for name in REQUIRED_COLUMNS:
        if name not in table.column_names:
            problems.append(ManifestProblem(None, name, "required column is missing"))
    for name in table.column_names:
        if name not in MANIFEST_SCHEMA.names:
            continue  # extra columns are the user's business and pass through
        expected = MANIFEST_SCHEMA.field(name).type
        actual = table.schema.field(name).type
        if not _type_fits(actual, expected):
            problems.append(ManifestProblem(None, name, f"expected {expected}, got {actual}"))
    return problems


def _type_fits(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Whether `actual` holds the same kind of values as `expected` (all-null columns fit anything)."""
    if pa.types.is_null(actual) or actual == expected:
        return True
    if pa.types.is_large_string(actual) or pa.types.is_string_view(actual):
        return pa.types.is_string(expected)
    if pa.types.is_floating(expected):
        return pa.types.is_floating(actual) or pa.types.is_integer(actual)
    if pa.types.is_list(expected) and (pa.types.is_list(actual) or pa.types.is_large_list(actual)):
        return _type_fits(actual.value_type, expected.value_type)
    if pa.types.is_struct(expected) and pa.types.is_struct(actual):
        names = {actual.field(i).name: actual.field(i).type for i in range(actual.num_fields)}
        return all(
            f.name in names and _type_fits(names[f.name], f.type)
            for f in (expected.field(i) for i in range(expected.num_fields))
        )
    return False


def _row_problems(
    index: int, row: dict, bad_columns: set[str], first_seen: dict[str, int]
) -> list[ManifestProblem]:
    problems: list[ManifestProblem] = []

    def add(column: str, message: str) -> None:
        problems.append(ManifestProblem(index, column, message))

    if c.VIDEO_ID in row and c.VIDEO_ID not in bad_columns:
        video_id = row[c.VIDEO_ID]
        problem = id_problem(video_id) if video_id is not None else "id is missing"
        if problem:
            add(c.VIDEO_ID, problem)
        elif video_id in first_seen:
            add(c.VIDEO_ID, f"duplicate id {video_id!r} (first at row {first_seen[video_id]})")
        else:
            first_seen[video_id] = index
    if c.URI in row and c.URI not in bad_columns:
        uri = row[c.URI]
        if uri is None or not uri.strip():
            add(c.URI, "uri is missing or empty")
        elif any(ord(ch) < 32 for ch in uri):
            add(c.URI, f"uri {uri!r} contains a control character")
    if c.SPLIT in row and c.SPLIT not in bad_columns and row[c.SPLIT] not in SPLITS:
        add(c.SPLIT, f"unknown split {row[c.SPLIT]!r}; expected one of {', '.join(SPLITS)}")
    if c.LABEL not in bad_columns and row.get(c.LABEL) is not None and not row[c.LABEL].strip():
        add(c.LABEL, "label is an empty string (use null for unlabelled videos)")
    if c.LABELS not in bad_columns:
        for label in row.get(c.LABELS) or []:
            if label is None or not label.strip():
                add(c.LABELS, "labels contains an empty label")
                break
    if c.CAPTIONS not in bad_columns:
        captions = row.get(c.CAPTIONS)
        if captions is not None and len(captions) == 0:
            add(c.CAPTIONS, "captions is an empty list (use null for videos without captions)")
        for number, caption in enumerate(captions or []):
            if caption is None or not caption.strip():
                add(c.CAPTIONS, f"caption {number} is empty")
    if c.QUESTIONS not in bad_columns:
        for number, qa in enumerate(row.get(c.QUESTIONS) or []):
            for key in (c.QUESTION, c.ANSWER, c.QUESTION_TYPE):
                value = (qa or {}).get(key)
                if value is None or not str(value).strip():
                    add(c.QUESTIONS, f"question {number} has an empty {key}")
    start, end = row.get(c.START_S), row.get(c.END_S)
    if c.START_S not in bad_columns and start is not None and start < 0:
        add(c.START_S, f"start_s ({start}) must be >= 0")
    if (
        c.START_S not in bad_columns
        and c.END_S not in bad_columns
        and start is not None
        and end is not None
        and end <= start
    ):
        add(c.END_S, f"end_s ({end}) must be > start_s ({start})")
    return problems


def resolve_uri(uri: str, manifest_uri: str) -> str:
    """`uri` made absolute: relative paths are taken from the manifest's folder."""
    if "://" in uri or uri.startswith("/"):
        return uri
    base = manifest_uri.rsplit("/", 1)[0] if "/" in manifest_uri else "."
    return posixpath.normpath(posixpath.join(base, uri)) if "://" not in base else f"{base}/{uri}"


class ManifestError(ValueError):
    """A manifest that cannot be read or fails validation; `problems` lists why."""

    def __init__(self, uri: str, problems: list[ManifestProblem]):
        self.uri = uri
        self.problems = problems
        first = str(problems[0]) if problems else "invalid"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"invalid manifest {uri}: {first}{more}")


def read_manifest(uri: str, *, validate: bool = True) -> pa.Table:
    """The manifest at `uri` (Parquet, JSON Lines or CSV, by suffix), conformed to the schema.

    Raises ManifestError naming every problem; FileNotFoundError when it is absent.
    """
    table = _read_raw(uri)
    problems = validate_manifest(table) if validate else []
    if problems:
        raise ManifestError(uri, problems)
    return conform(table)


def read_manifest_unvalidated(uri: str) -> pa.Table:
    """The table as stored, for reporting its problems."""
    return _read_raw(uri)


def conform(table: pa.Table) -> pa.Table:
    """`table` cast to MANIFEST_SCHEMA, with absent optional columns as nulls and extras dropped."""
    arrays = []
    for field in MANIFEST_SCHEMA:
        if field.name in table.column_names:
            arrays.append(table.column(field.name).cast(field.type))
        else:
            arrays.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(arrays, schema=MANIFEST_SCHEMA)


def _read_raw(uri: str) -> pa.Table:
    import fsspec
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        raise FileNotFoundError(f"manifest not found: {uri}")
    try:
        if path.endswith(".jsonl") or path.endswith(".json"):
            with fs.open(path, "r") as f:
                rows = [json.loads(line) for line in f if line.strip()]
            return pa.Table.from_pylist(rows)
        if path.endswith(".csv"):
            with fs.open(path, "rb") as f:
                return pacsv.read_csv(f)
        with fs.open(path, "rb") as f:
            return pq.read_table(f)
    except (pa.ArrowInvalid, pa.ArrowTypeError, json.JSONDecodeError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ManifestError(uri, [ManifestProblem(None, "*", f"unreadable: {reason}")]) from error


def write_manifest(table: pa.Table, uri: str) -> None:
    """Write a validated manifest to `uri` as Parquet, atomically (temporary name, then rename).

    Raises ManifestError when `table` is invalid, so an invalid manifest is never written.
    """
    import fsspec
    import pyarrow.parquet as pq

    problems = validate_manifest(table)
    if problems:
        raise ManifestError(uri, problems)
    fs, path = fsspec.core.url_to_fs(uri)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    temporary = f"{path}.tmp-writing"
    with fs.open(temporary, "wb") as f:
        pq.write_table(conform(table), f, compression="zstd")
    fs.mv(temporary, path)
