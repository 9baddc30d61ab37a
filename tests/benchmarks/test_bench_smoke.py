"""Smoke test of the stage-1 benchmark: a whole run on tiny videos gives every figure, all positive.

Timings are never asserted (they follow the machine and its load); structure, frame
counts and the small pure helpers, which do not, are.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from benchmarks import __main__ as runner
from benchmarks.common import (
    Rate,
    VideoSpec,
    cpu_between,
    descendants,
    format_table,
    harmonic_bound,
    make_videos,
    render_frames,
    repeat_for,
    sample_tree,
)
from benchmarks.extract import (
    RESULT_FILE,
    ExtractBenchConfig,
    build_extractor,
    decode_settings,
    extract_config,
    format_report,
    marginal_rate,
    naive_video,
    run,
    steady_state,
    write_bench_manifest,
)
from hybrid_models.backbones import extract
from workers.decoding import decode_video
from workers.extract import plan_extract
from workers.preprocess import normalize
from workers.sampling import parse_sampling
from workers.stages import RGB, clip_to_row

TINY_VIDEO = VideoSpec(width=64, height=48, fps=12.0, duration_s=1.0, gop=4)
TINY = ExtractBenchConfig(
    num_videos=2,
    scale=1,  # one `vidpipe extract` launch: each starts Ray, the bulk of this test's time
    video=TINY_VIDEO,
    sampling="uniform:4",
    backbone="small_cnn",
    input_size=32,
    batch_size=1,
    num_processes=1,
    model_seconds=0.05,
)
RATES = (
    "model_only_fps",
    "decode_only_fps",
    "naive_fps",
    "bound_fps",
    "cpu_bound_fps",
    "model_only_cpu_ms_per_frame",
    "decode_only_cpu_ms_per_frame",
    "naive_cpu_ms_per_frame",
)
SECONDS = ("model_only_s", "decode_only_s", "naive_decode_s", "naive_model_s")
RUN_FIGURES = (
    "wall_s",
    "wall_fps",
    "first_commit_s",
    "steady_s",
    "steady_fps",
    "steady_cpu_ms_per_frame",
    "cpu_s",
    "peak_rss_bytes",
    "peak_pss_bytes",
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return out, run(TINY, out)


def test_every_figure_is_present_and_positive(tiny_run):
    _, result = tiny_run
    figures = result["figures"]
    for name in RATES + SECONDS:
        assert math.isfinite(figures[name]) and figures[name] > 0, name
    for key in ("end_to_end_n", "end_to_end_scaled"):
        for name in RUN_FIGURES:
            value = figures[key][name]
            assert math.isfinite(value) and value > 0, (key, name)
    for name in (
        "steady_over_bound",
        "steady_over_naive",
        "wall_over_naive",
        "job_cpu_over_stages_cpu",
    ):
        assert result["ratios"][name] > 0, name
    assert set(result["targets"]) == {"gap", "speedup", "memory_growth"}
    # Scale 1 has no second run: the targets read the steady state, not a marginal rate.
    assert figures["marginal_fps"] is None and result["ratios"]["target_basis"] == "steady"
    assert all(isinstance(t["met"], bool) for t in result["targets"].values())
    assert len(result["load_average_before"]) == 3 and result["machine"]["cores"] >= 1


def test_the_job_stored_every_sampled_frame_and_one_part_per_batch(tiny_run):
    _, result = tiny_run
    # uniform:4 of 12 frames; batch_size 1, so every video is its own part.
    assert result["settings"]["frames_per_video"] == 4
    small, large = result["figures"]["end_to_end_n"], result["figures"]["end_to_end_scaled"]
    assert (small["num_videos"], small["num_frames"], small["num_parts"]) == (2, 8, 2)
    # Scale 1: the N run is the scaled run, so memory growth is exactly 1.
    assert large == small and result["ratios"]["peak_rss_scaled_over_n"] == 1.0


def test_job_memory_counts_ray_processes_not_just_the_driver(tiny_run):
    _, result = tiny_run
    for key in ("end_to_end_n", "end_to_end_scaled"):
        run_figures = result["figures"][key]
        # driver, Ray's own processes, a decode actor, its decoding child, a CNN actor
        assert run_figures["max_processes"] >= 5, run_figures
        assert run_figures["peak_pss_bytes"] <= run_figures["peak_rss_bytes"]


def test_json_file_is_the_result_and_the_report_shows_every_figure(tiny_run):
    out, result = tiny_run
    assert json.loads((out / RESULT_FILE).read_text()) == json.loads(json.dumps(result))
    report = format_report(result)
    for label in (
        "(a) model only",
        "(b) decode only",
        "bound 1/(1/a+1/b)",
        "(c) vidpipe extract, N=2",
        "(c) vidpipe extract, 1N=2",
        "(d) naive",
        "gap to bound",
        "c/d (1N steady state over naive)",
        "peak RSS 1N / N",
        "scale 1: the N run stands for the scale×N run (one launch)",
        "what limits it:",
        "load average",
        "1-minute load average at the start and end of each figure",
    ):
        assert label in report, label
    verdicts = [t["met"] for t in result["targets"].values()]
    assert report.count(" met") + report.count("MISSED") >= len(verdicts)


def test_naive_baseline_embeds_the_frames_the_job_embeds(tmp_path):
    (path,) = make_videos(tmp_path / "videos", TINY_VIDEO, 1, num_workers=1)
    manifest = tmp_path / "manifest.parquet"
    write_bench_manifest([path], manifest, copies=1)
    plan = plan_extract(extract_config(TINY, manifest, tmp_path / "store"))
    settings = decode_settings(plan)
    extractor = build_extractor(plan.spec, plan.config.seed)
    naive, _, _ = naive_video(str(path), extractor, parse_sampling(TINY.sampling), plan.spec)
    clip = decode_video(str(path), settings.sampling, decoder="pyav")
    rgb = torch.from_numpy(clip_to_row(clip, settings)[RGB])  # (4, 3, 32, 32) uint8
    images = normalize(rgb, mean=plan.spec.mean, std=plan.spec.std)
    job, _ = extract(extractor, images)
    assert clip.frame_indices.tolist() == [1, 4, 7, 10]
    np.testing.assert_allclose(naive, job, rtol=1e-5, atol=1e-5)


def test_steady_state_counts_rows_after_the_first_commit():
    rate = steady_state([(10.0, 4), (12.0, 8), (14.5, 6)])
    assert rate == Rate(num_items=14, seconds=4.5)
    with pytest.raises(ValueError, match=r"^steady state needs at least 2 committed parts, got 1$"):
        steady_state([(10.0, 4)])


def test_marginal_rate_is_the_extra_frames_over_the_extra_wall_time():
    small = {"num_frames": 384, "wall_s": 40.0}
    assert marginal_rate(small, {"num_frames": 1920, "wall_s": 88.0}) == 32.0
    assert marginal_rate(small, {"num_frames": 1920, "wall_s": 39.0}) is None  # noise won
    assert marginal_rate(small, small) is None


def test_harmonic_bound():
    assert harmonic_bound(100.0, 100.0) == 50.0
    assert harmonic_bound(300.0, 100.0) == 75.0
    with pytest.raises(ValueError, match=r"^rates \(100.0, 0.0\) must be finite and > 0$"):
        harmonic_bound(100.0, 0.0)


def test_repeat_for_counts_only_calls_after_warm_up():
    calls = []
    rate = repeat_for(lambda: calls.append(1) or 5, min_seconds=0, min_calls=3, warmup_calls=2)
    assert len(calls) == 5 and rate.num_items == 15


def test_tree_sample_sees_a_child_process_and_its_cpu(tmp_path):
    # The child burns CPU, then sleeps until killed.
    code = "import time\nsum(range(3_000_000))\nopen(%r, 'w').close()\ntime.sleep(30)"
    flag = tmp_path / "busy-done"
    child = subprocess.Popen([sys.executable, "-c", code % str(flag)])
    try:
        while not flag.exists():
            assert child.poll() is None, "the child ended before its busy loop did"
            time.sleep(0.01)
        assert child.pid in descendants(os.getpid())
        mine = sample_tree(os.getpid())
        alone = sample_tree(child.pid)
        assert mine.num_processes >= 2 and mine.rss_bytes > alone.rss_bytes > 0
        assert mine.pss_bytes is None or 0 < mine.pss_bytes <= mine.rss_bytes
        assert set(alone.cpu_s) == {child.pid} and alone.cpu_s[child.pid] > 0
        below = sample_tree(os.getpid(), include_self=False).cpu_s
        assert child.pid in below and os.getpid() not in below
    finally:
        child.kill()
        child.wait()


def test_cpu_between_interpolates_samples():
    series = [(10.0, 1.0), (12.0, 3.0), (14.0, 4.0)]
    assert cpu_between(series, 11.0, 13.0) == 1.5  # 2.0 at 11 s, 3.5 at 13 s
    with pytest.raises(ValueError, match=r"^series has 1 samples; at least 2 are needed$"):
        cpu_between(series[:1], 10.0, 11.0)


def test_render_frames_is_deterministic_and_moves():
    first = render_frames(TINY_VIDEO, 0)
    assert first.shape == (12, 48, 64, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, render_frames(TINY_VIDEO, 0))
    assert not np.array_equal(first, render_frames(TINY_VIDEO, 1))
    assert not np.array_equal(first[0], first[-1])


def test_cached_videos_are_not_encoded_again(tmp_path):
    (path,) = make_videos(tmp_path, TINY_VIDEO, 1, num_workers=1)
    before = path.stat().st_mtime_ns
    assert make_videos(tmp_path, TINY_VIDEO, 1, num_workers=1) == [path]
    assert path.stat().st_mtime_ns == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left


def test_format_table_aligns_columns():
    text = format_table([["a", "bb"], ["ccc", "d"]])
    assert text == "a    bb\n---  --\nccc  d"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"num_videos": 1, "batch_size": 1},
            "num_videos (1) must be > batch_size (1) so that the job commits at least two parts",
        ),
        ({"scale": 0}, "scale (0) must be >= 1"),
        ({"batch_size": 0}, "batch_size (0) must be >= 1"),
        ({"model_seconds": 0.0}, "model_seconds (0.0) must be > 0"),
        ({"backbone": "nope"}, "backbone 'nope' is not one of"),
    ],
)
def test_config_errors_name_the_bad_value(overrides, message):
    values = {"num_videos": 4, "batch_size": 2, **overrides}
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        ExtractBenchConfig(**values)


def test_video_spec_errors_name_the_bad_value():
    with pytest.raises(ValueError, match=r"^width \(63\) must be an even integer >= 32$"):
        VideoSpec(width=63)
    with pytest.raises(ValueError, match=r"^gop \(0\) must be >= 1$"):
        VideoSpec(gop=0)


def test_runner_lists_the_extract_benchmark_and_refuses_unknown_ones(capsys):
    assert runner.BENCHMARKS[0] == "extract"
    with pytest.raises(SystemExit) as exit_info:
        runner.main(["--only", "nope"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
