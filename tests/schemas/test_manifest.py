import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas import (
    MANIFEST_SCHEMA,
    ManifestError,
    conform,
    manifest_table,
    read_manifest,
    resolve_uri,
    schema_version,
    validate_manifest,
)


def good_row(video_id="v1", **overrides):
    row = {
        "video_id": video_id,
        "uri": f"videos/{video_id}.mp4",
        "split": "train",
        "label": "move_left",
        "captions": ["a red circle moves left"],
        "questions": [{"question": "what colour?", "answer": "red", "question_type": "colour"}],
    }
    row.update(overrides)
    return row


def messages(table):
    return [str(p) for p in validate_manifest(table)]


def test_valid_manifest_has_no_problems():
    table = manifest_table([good_row("a"), good_row("b", split="test")])
    assert validate_manifest(table) == []
    assert schema_version(table.schema) == ("manifest", 1)


def test_duplicate_traversal_and_missing_uri_are_all_named():
    table = manifest_table(
        [good_row("a"), good_row("a"), good_row("../x"), good_row("c", uri=None)]
    )
    assert messages(table) == [
        "row 1, column video_id: duplicate id 'a' (first at row 0)",
        "row 2, column video_id: id '../x' contains a path separator",
        "row 3, column uri: uri is missing or empty",
    ]


@pytest.mark.parametrize(
    ("video_id", "expected"),
    [
        ("..", "id '..' contains '..'"),
        ("a\\b", "id 'a\\\\b' contains a path separator"),
        ("a\x00b", "id 'a\\x00b' contains a control character"),
        ("", "id is empty"),
        (".hidden", "id '.hidden' starts with '.' (a hidden file name)"),
        ("c:evil", "id 'c:evil' contains ':' (a drive or scheme separator)"),
    ],
)
def test_unsafe_ids(video_id, expected):
    row = good_row(video_id, uri="videos/x.mp4")
    assert messages(manifest_table([row])) == [f"row 0, column video_id: {expected}"]


def test_youtube_style_ids_are_safe():
    assert validate_manifest(manifest_table([good_row("-4wsuPCjDBc_5_15")])) == []


def test_split_captions_questions_and_times():
    rows = [
        good_row("a", split="dev"),
        good_row("b", captions=["ok", "  "]),
        good_row("c", captions=[]),
        good_row("d", questions=[{"question": "q", "answer": "", "question_type": "colour"}]),
        good_row("e", start_s=3.0, end_s=2.0),
    ]
    assert messages(manifest_table(rows)) == [
        "row 0, column split: unknown split 'dev'; expected one of train, val, test",
        "row 1, column captions: caption 1 is empty",
        "row 2, column captions: captions is an empty list (use null for videos without captions)",
        "row 3, column questions: question 0 has an empty answer",
        "row 4, column end_s: end_s (2.0) must be > start_s (3.0)",
    ]


def test_wrong_types_and_missing_columns():
    table = pa.table({"video_id": [1, 2], "split": ["train", "val"], "label": [3, 4]})
    assert messages(table) == [
        "column label: expected string, got int64",
        "column uri: required column is missing",
        "column video_id: expected string, got int64",
    ]


def test_read_manifest_formats_and_errors(tmp_path):
    rows = [good_row("a"), good_row("b")]
    pq.write_table(manifest_table(rows), tmp_path / "m.parquet")
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    for name in ("m.parquet", "m.jsonl"):
        table = read_manifest(str(tmp_path / name))
        assert table.schema.equals(MANIFEST_SCHEMA)
        assert table.column("video_id").to_pylist() == ["a", "b"]

    (tmp_path / "bad.jsonl").write_text(
        json.dumps(good_row("a")) + "\n" + json.dumps(good_row("a"))
    )
    with pytest.raises(ManifestError, match=r"row 1, column video_id: duplicate id 'a'"):
        read_manifest(str(tmp_path / "bad.jsonl"))
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(ManifestError, match="unreadable"):
        read_manifest(str(tmp_path / "junk.parquet"))
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        read_manifest(str(tmp_path / "absent.parquet"))


def test_conform_fills_optional_columns():
    table = pa.table({"video_id": ["a"], "uri": ["x.mp4"], "split": ["test"], "extra": [1]})
    conformed = conform(table)
    assert conformed.schema.equals(MANIFEST_SCHEMA)
    assert conformed.column("captions").to_pylist() == [None]


def test_resolve_uri():
    assert resolve_uri("videos/a.mp4", "/data/set/manifest.parquet") == "/data/set/videos/a.mp4"
    assert resolve_uri("/abs/a.mp4", "/data/manifest.parquet") == "/abs/a.mp4"
    assert resolve_uri("a.mp4", "memory://d/manifest.parquet") == "memory://d/a.mp4"
    assert resolve_uri("s3://b/a.mp4", "/data/manifest.parquet") == "s3://b/a.mp4"


def test_write_manifest_round_trips_and_refuses_invalid(tmp_path):
    from schemas import write_manifest

    target = str(tmp_path / "sub" / "m.parquet")
    write_manifest(manifest_table([good_row("a")]), target)
    assert read_manifest(target).column("video_id").to_pylist() == ["a"]
    with pytest.raises(ManifestError, match="duplicate id"):
        write_manifest(manifest_table([good_row("b"), good_row("b")]), str(tmp_path / "n.parquet"))
    assert not (tmp_path / "n.parquet").exists()


def test_plain_looking_ids_with_double_dots_are_still_refused():
    from schemas import id_problem

    assert id_problem("a..b") == "id 'a..b' contains '..'"
    assert id_problem("v_ApplyEyeMakeup_g08_c01") is None
