"""Smoke test of the stage-2 benchmark: a whole run on a tiny feature set, both contenders.

Timings are never asserted; that Beam and the plain loop wrote the same predictions, the
counts, and the pure helpers are.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.infer import (
    RESULT_FILE,
    InferBenchConfig,
    format_report,
    marginal_rate,
    run,
)
from pipelines.inference.rows import class_names_of
from schemas import columns as c

TINY = InferBenchConfig(
    num_videos=12,
    scale=1,  # one launch of each contender: each start imports torch (and Beam)
    frames_per_video=4,
    feature_dim=8,
    num_classes=3,
    hidden_dim=8,
    videos_per_part=5,  # the last part holds 2 videos
    batch_size=4,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-infer")
    return out, run(TINY, out)


def _rows(folder) -> pa.Table:
    tables = [pq.read_table(path) for path in sorted(folder.glob("part-*.parquet"))]
    return pa.concat_tables(tables).sort_by(c.VIDEO_ID)


def test_both_contenders_predicted_every_video_with_the_same_scores(tiny_run):
    out, _ = tiny_run
    beam = _rows(out / "infer" / "out" / "beam_n")
    loop = _rows(out / "infer" / "out" / "loop_n")
    assert beam.num_rows == loop.num_rows == 12
    assert beam.schema.equals(loop.schema)
    assert (
        class_names_of(beam.schema)
        == class_names_of(loop.schema)
        == ["class_00", "class_01", "class_02"]
    )
    for name in (c.VIDEO_ID, c.PREDICTED_LABEL, c.TOP_K_LABELS, c.FRAME_INDICES, c.NUM_FRAMES):
        assert beam.column(name).to_pylist() == loop.column(name).to_pylist(), name
    np.testing.assert_allclose(
        np.asarray(beam.column(c.SCORES).to_pylist()),
        np.asarray(loop.column(c.SCORES).to_pylist()),
        rtol=1e-5,
        atol=1e-6,
    )
    assert beam.column(c.FRAME_INDICES)[0].as_py() == [0, 15, 30, 45]


def test_every_figure_is_present_and_positive(tiny_run):
    _, result = tiny_run
    for name in ("beam_n", "loop_n", "beam_scaled", "loop_scaled"):
        figures = result["best"][name]
        assert figures["num_videos"] == 12
        for key in ("wall_s", "wall_videos_per_s", "work_s", "cpu_s", "peak_rss_bytes"):
            assert math.isfinite(figures[key]) and figures[key] > 0, (name, key)
    # Scale 1: the scaled runs are the N runs, so nothing grows and no marginal rate exists.
    assert result["ratios"]["peak_rss_scaled_over_n"] == {"beam": 1.0, "loop": 1.0}
    assert result["videos_per_s"]["beam"]["marginal"] is None
    assert set(result["targets"]) == {"throughput", "memory_growth"}
    assert all(isinstance(t["met"], bool) for t in result["targets"].values())


def test_json_file_is_the_result_and_the_report_shows_every_figure(tiny_run):
    out, result = tiny_run
    assert json.loads((out / RESULT_FILE).read_text()) == json.loads(json.dumps(result))
    report = format_report(result)
    for label in ("beam_N", "loop_N", "beam / loop videos/s", "beam peak RSS 1N / N", "n/a"):
        assert label in report, label


def test_marginal_rate_is_the_extra_videos_over_the_extra_time():
    small = {"num_videos": 100, "wall_s": 10.0}
    assert marginal_rate(small, {"num_videos": 500, "wall_s": 18.0}) == 50.0
    assert marginal_rate(small, {"num_videos": 500, "wall_s": 9.0}) is None
    assert marginal_rate(small, small) is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_videos": 0}, r"^num_videos \(0\) must be >= 1$"),
        ({"threads": 0}, r"^threads \(0\) must be >= 1$"),
        ({"timeout_s": 0.0}, r"^timeout_s \(0.0\) must be > 0$"),
    ],
)
def test_config_errors_name_the_bad_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        InferBenchConfig(**overrides)
