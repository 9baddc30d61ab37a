"""Stage 1 end to end on real Ray: good and bad videos, both streams, re-runs, new videos."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.datasets.video_writer import write_video
from schemas import manifest_table, read_manifest, write_manifest
from workers import store
from workers.extract import default_decoders, model_actor_cpus, plan_extract, run_extract
from workers.extract_config import ExtractConfig

BAD = {
    "zero-bytes": ("empty_file", "probe"),
    "random-bytes": ("invalid_data", "probe"),
    "truncated": ("invalid_data", "probe"),
    "missing": ("not_found", "probe"),
}


@pytest.fixture(scope="module")
def mixed_manifest(synth_small, tmp_path_factory):
    """The synthetic videos plus one of each bad kind and an AV1 file decord cannot open."""
    root = tmp_path_factory.mktemp("mixed")
    shutil.copytree(synth_small / "videos", root / "videos")
    rows = read_manifest(str(synth_small / "manifest.parquet")).to_pylist()[:6]
    (root / "videos" / "zero-bytes.mp4").write_bytes(b"")
    (root / "videos" / "random-bytes.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    good = (root / "videos" / f"{rows[0]['video_id']}.mp4").read_bytes()
    (root / "videos" / "truncated.mp4").write_bytes(good[: len(good) // 2])
    frames = np.zeros((12, 32, 32, 3), np.uint8)
    frames[:, 8:24, 8:24] = (200, 40, 40)
    write_video(root / "videos" / "av1-only.mp4", frames, fps=12, codec="av1")
    extra = [{"video_id": name, "uri": f"videos/{name}.mp4", "split": "test"} for name in BAD] + [
        {"video_id": "av1-only", "uri": "videos/av1-only.mp4", "split": "test"}
    ]
    write_manifest(manifest_table(rows + extra), str(root / "manifest.parquet"))
    return root


def config_for(manifest_dir, out, **overrides):
    values = dict(
        manifest=str(manifest_dir / "manifest.parquet"),
        root=str(out),
        sampling="uniform:4",
        backbone="small_cnn",
        input_size=32,
        streams=("rgb", "flow"),
        batch_size=3,
        decode_timeout_s=60.0,
        progress=False,
    )
    values.update(overrides)
    return ExtractConfig(**values)


@pytest.fixture(scope="module")
def first_run(ray_local, mixed_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    plan = plan_extract(config_for(mixed_manifest, out))
    summary = run_extract(plan)
    return plan, summary


def test_good_videos_get_features_and_bad_ones_error_rows(first_run):
    plan, summary = first_run
    assert (summary.num_extracted, summary.num_failed, summary.num_already_done) == (7, 4, 0)
    table = store.read_features_table(plan.feature_set_uri)
    assert table.num_rows == 7 * 4 * 2  # videos × sampled frames × streams
    rows = table.to_pylist()
    keys = [(r["video_id"], r["stream"], r["frame_index"]) for r in rows]
    assert len(set(keys)) == len(keys)
    rgb = sorted(
        (r["video_id"], r["frame_index"], r["timestamp_s"]) for r in rows if r["stream"] == "rgb"
    )
    flow = sorted(
        (r["video_id"], r["frame_index"], r["timestamp_s"]) for r in rows if r["stream"] == "flow"
    )
    assert rgb == flow
    # uniform:4 over 12 frames takes the centres of four bins.
    assert sorted({r["frame_index"] for r in rows}) == [1, 4, 7, 10]
    decoders = {r["video_id"]: r["decoder"] for r in rows}
    assert decoders["av1-only"] == "pyav"
    assert {d for v, d in decoders.items() if v != "av1-only"} == {"decord"}
    errors = {r["video_id"]: r for r in store.read_errors_table(plan.feature_set_uri).to_pylist()}
    assert {v: (e["error_type"], e["stage"]) for v, e in errors.items()} == BAD
    assert all(e["message"] and e["attempts"] >= 1 for e in errors.values())


def test_features_are_finite_and_streams_differ(first_run):
    plan, _ = first_run
    rgb = store.load_video_features(plan.feature_set_uri, stream="rgb")
    flow = store.load_video_features(plan.feature_set_uri, stream="flow")
    assert sorted(rgb) == sorted(flow) and len(rgb) == 7
    for video_id, features in rgb.items():
        assert features.feature.shape == (4, 128) and np.isfinite(features.feature).all()
        assert not np.allclose(features.feature, flow[video_id].feature)


def test_lineage_is_in_the_folder_and_every_part(first_run):
    plan, _ = first_run
    record = store.read_feature_set_record(plan.feature_set_uri)
    assert record["feature_set_id"] == plan.spec.feature_set_id
    assert record["spec"]["streams"] == ["rgb", "flow"] and record["spec"]["flow"].startswith(
        "farneback"
    )
    for part in store.part_paths(plan.feature_set_uri):
        metadata = pq.read_schema(part).metadata
        assert b"vidpipe.lineage" in metadata and b"vidpipe.video_ids" in metadata


def test_second_run_writes_nothing(first_run):
    plan, _ = first_run
    before = {
        p: (p and __import__("os").stat(p).st_mtime_ns)
        for p in store.part_paths(plan.feature_set_uri)
    }
    again = run_extract(plan_extract(plan.config))
    assert (again.num_extracted, again.num_failed, again.num_already_done) == (0, 0, 11)
    assert again.num_failed_total == 4
    after = {
        p: __import__("os").stat(p).st_mtime_ns for p in store.part_paths(plan.feature_set_uri)
    }
    assert after == before


def test_only_new_videos_are_processed(ray_local, synth_small, tmp_path):
    out = tmp_path / "store"
    rows = read_manifest(str(synth_small / "manifest.parquet")).to_pylist()
    for count in (4, 6):
        write_manifest(manifest_table(rows[:count]), str(synth_small / f"first{count}.parquet"))
    first = run_extract(
        plan_extract(
            config_for(
                synth_small, out, manifest=str(synth_small / "first4.parquet"), streams=("rgb",)
            )
        )
    )
    second = run_extract(
        plan_extract(
            config_for(
                synth_small, out, manifest=str(synth_small / "first6.parquet"), streams=("rgb",)
            )
        )
    )
    assert (first.num_extracted, second.num_extracted, second.num_already_done) == (4, 2, 4)
    table = store.read_features_table(second.feature_set_uri)
    assert table.num_rows == 6 * 4


def test_weights_file_reaches_the_cnn_actors(ray_local, synth_small, tmp_path):
    """Weights from a file give the features of the same weights built in place."""
    import safetensors.torch

    from hybrid_models.backbones import build_backbone

    weights = build_backbone("small_cnn", weights=None, seed=5).model.state_dict()
    path = tmp_path / "small_cnn.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in weights.items()}, str(path))
    rows = read_manifest(str(synth_small / "manifest.parquet")).to_pylist()[:2]
    write_manifest(manifest_table(rows), str(synth_small / "two.parquet"))
    common = dict(manifest=str(synth_small / "two.parquet"), streams=("rgb",))
    from_file = run_extract(
        plan_extract(config_for(synth_small, tmp_path / "a", weights=str(path), **common))
    )
    seeded = run_extract(plan_extract(config_for(synth_small, tmp_path / "b", seed=5, **common)))
    assert from_file.feature_set_id != seeded.feature_set_id  # a digest, not a seed, names them
    a = store.load_video_features(from_file.feature_set_uri)
    b = store.load_video_features(seeded.feature_set_uri)
    assert sorted(a) == sorted(b) and len(a) == 2
    for video_id in a:
        np.testing.assert_allclose(a[video_id].feature, b[video_id].feature, rtol=1e-5, atol=1e-6)


def test_decoders_take_every_core_when_the_model_runs_on_cpu():
    # On CPU the model actors hold no core of their own (their threads share the decoders');
    # with a GPU each model actor keeps one core to feed it.
    assert model_actor_cpus(0.0) == 0 and model_actor_cpus(0.5) == 1
    assert default_decoders(2, 1, 0.0) == 2
    assert default_decoders(8, 2, 1.0) == 6
    assert default_decoders(1, 2, 1.0) == 1  # never fewer than one decoder
