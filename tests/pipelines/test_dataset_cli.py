"""`vidpipe dataset import` and `vidpipe dataset validate` end to end, through `pipelines.cli.main`."""

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.datasets.video_writer import write_video
from schemas import columns as c
from schemas import read_manifest, resolve_uri


def write_ucf_lists(folder, train_line="ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classInd.txt").write_bytes(b"1 ApplyEyeMakeup\r\n2 ApplyLipstick\r\n")
    (folder / "trainlist01.txt").write_bytes(
        f"{train_line}\r\nApplyLipstick/v_ApplyLipstick_g09_c03.avi 2\r\n".encode()
    )
    (folder / "testlist01.txt").write_bytes(b"ApplyLipstick/v_ApplyLipstick_g01_c01.avi\r\n")
    return folder


def test_import_writes_a_manifest_whose_uris_reach_the_videos(tmp_path, capsys):
    lists = write_ucf_lists(tmp_path / "ucfTrainTestlist")
    # A real MJPEG AVI where UCF101's layout puts the first clip, beside the manifest.
    frames = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    video = tmp_path / "out" / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01.avi"
    video.parent.mkdir(parents=True)
    write_video(video, frames, fps=25.0, codec="mjpeg")
    out = tmp_path / "out" / "manifest.parquet"

    code = main(
        ["dataset", "import", "ucf101", str(lists), "--out", str(out), "--video-root", "UCF-101"]
    )

    assert code == 0
    assert capsys.readouterr().out == f"wrote 3 videos to {out}\n"
    table = read_manifest(str(out))
    assert table.column(c.VIDEO_ID).to_pylist() == [
        "v_ApplyEyeMakeup_g08_c01",
        "v_ApplyLipstick_g09_c03",
        "v_ApplyLipstick_g01_c01",
    ]
    assert table.column(c.SPLIT).to_pylist() == ["train", "train", "test"]
    resolved = resolve_uri(table.column(c.URI)[0].as_py(), str(out))
    assert resolved == str(video)
    with av.open(resolved) as container:
        assert sum(1 for _ in container.decode(video=0)) == 4


def test_import_with_split_options(tmp_path):
    lists = write_ucf_lists(tmp_path / "lists")
    out = tmp_path / "m.parquet"
    argv = ["dataset", "import", "ucf101", str(lists), "--out", str(out), "--val-groups", "1"]
    assert main(argv) == 0
    # Training groups are 8 and 9; group 9 is held out.
    assert read_manifest(str(out)).column(c.SPLIT).to_pylist() == ["train", "val", "test"]


@pytest.mark.parametrize(
    ("extra_args", "train_line", "expected"),
    [
        (
            [],
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2",
            "cannot import {src} as ucf101: trainlist01.txt line 1: class index '2' does not "
            "match classInd.txt's 1 for 'ApplyEyeMakeup'",
        ),
        (
            [],
            "ApplyEyeMakeup/v_Apply\u202eEyeMakeup_g08_c01.avi 1",
            "cannot import {src} as ucf101: trainlist01.txt line 1: unsafe file name: id "
            "'v_Apply\\u202eEyeMakeup_g08_c01.avi' contains a control character",
        ),
        (
            ["--split-number", "5"],
            None,
            "cannot import {src} as ucf101: split_number (5) must be 1, 2 or 3",
        ),
    ],
)
def test_import_errors_are_one_line_and_write_nothing(
    tmp_path, capsys, extra_args, train_line, expected
):
    lists = write_ucf_lists(tmp_path / "lists", *([train_line] if train_line else []))
    out = tmp_path / "out" / "manifest.parquet"

    code = main(["dataset", "import", "ucf101", str(lists), "--out", str(out), *extra_args])

    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"vidpipe dataset: error: {expected.format(src=lists)}\n"
    assert not out.parent.exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["youtube8m", "{src}"],
            "unknown format 'youtube8m'; expected one of ucf101, hmdb51, kinetics, charades, "
            "msvd, msrvtt, msvd-qa, msrvtt-qa",
        ),
        (["kinetics", "{src}/absent.csv"], "{src}/absent.csv does not exist"),
        (
            ["kinetics", "{src}", "--split-number", "2"],
            "cannot import {src} as kinetics: split_number applies to ucf101 and hmdb51, "
            "not kinetics",
        ),
        (
            ["msrvtt", "{src}"],
            "cannot import {src} as msrvtt: no train_val_videodatainfo.json or "
            "test_videodatainfo.json in {name}",
        ),
    ],
)
def test_usage_errors(tmp_path, capsys, argv, expected):
    out = tmp_path / "m.parquet"
    argv = [arg.format(src=tmp_path) for arg in argv]
    assert main(["dataset", "import", *argv, "--out", str(out)]) == 2
    message = expected.format(src=tmp_path, name=tmp_path.name)
    assert capsys.readouterr().err == f"vidpipe dataset: error: {message}\n"
    assert not out.exists()


def test_import_refuses_a_non_parquet_out(tmp_path, capsys):
    lists = write_ucf_lists(tmp_path / "lists")
    assert main(["dataset", "import", "ucf101", str(lists), "--out", "m.jsonl"]) == 2
    assert capsys.readouterr().err == (
        "vidpipe dataset: error: --out 'm.jsonl' must end with .parquet\n"
    )


def test_validate_prints_every_problem(tmp_path, capsys):
    path = tmp_path / "bad.parquet"
    # Written with pyarrow directly: write_manifest would refuse it.
    table = pa.table(
        {
            c.VIDEO_ID: ["a", "a", "../x", "c"],
            c.URI: ["videos/a.mp4", "videos/a2.mp4", "videos/x.mp4", None],
            c.SPLIT: ["train", "train", "test", "val"],
        }
    )
    pq.write_table(table, path)

    assert main(["dataset", "validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"{path}: row 1, column video_id: duplicate id 'a' (first at row 0)",
        f"{path}: row 2, column video_id: id '../x' contains a path separator",
        f"{path}: row 3, column uri: uri is missing or empty",
    ]
    assert captured.err == "3 problems in 4 rows\n"


def test_validate_accepts_an_imported_manifest(tmp_path, capsys):
    lists = write_ucf_lists(tmp_path / "lists")
    out = tmp_path / "m.parquet"
    assert main(["dataset", "import", "ucf101", str(lists), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["dataset", "validate", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}: valid, 3 videos\n"
