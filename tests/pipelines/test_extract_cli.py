"""`vidpipe extract` refuses bad input with one line and exit code 2, before writing anything."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--sampling", "uniform:0"],
            "vidpipe extract: error: sampling 'uniform:0': K must be > 0",
        ),
        (
            ["--backbone", "alexnet"],
            "vidpipe extract: error: backbone 'alexnet' is not one of resnet18, resnet34",
        ),
        (
            ["--streams", "rgb,depth"],
            "vidpipe extract: error: streams 'rgb,depth' must be a non-empty subset of rgb,flow",
        ),
        (["--weights", "/no/such/weights.safetensors"], "vidpipe extract: error: "),
        (["--batch-size", "0"], "vidpipe extract: error: batch_size (0) must be > 0"),
    ],
)
def test_bad_flags(synth_small, tmp_path, capsys, flags, message):
    out = tmp_path / "store"
    code = main(
        ["extract", "--manifest", str(synth_small / "manifest.parquet"), "--out", str(out), *flags]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and err.count("\n") == 1
    assert not out.exists()


def test_missing_and_invalid_manifests(tmp_path, capsys):
    out = tmp_path / "store"
    assert main(["extract", "--manifest", str(tmp_path / "absent.parquet"), "--out", str(out)]) == 2
    assert "manifest not found" in capsys.readouterr().err
    rows = {"video_id": ["a", "a", "../x"], "uri": ["a.mp4", "b.mp4", None], "split": ["train"] * 3}
    pq.write_table(pa.table(rows), tmp_path / "bad.parquet")
    assert main(["extract", "--manifest", str(tmp_path / "bad.parquet"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "duplicate id 'a'" in err and "(and 2 more)" in err
    assert not out.exists()


def test_uncached_torchvision_weights_are_a_clear_error(synth_small, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv(
        "https_proxy", "http://127.0.0.1:9"
    )  # no download, even where there is internet
    out = tmp_path / "store"
    code = main(
        [
            "extract",
            "--manifest",
            str(synth_small / "manifest.parquet"),
            "--out",
            str(out),
            "--weights",
            "IMAGENET1K_V1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "IMAGENET1K_V1" in err and "torch-home" in err
    assert not out.exists()
